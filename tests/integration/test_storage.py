"""--storage-opt size=: a container's disk larger than its image's, never smaller (issue 10.6)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.vm


def _root_kib(cocoon, *flags: str) -> int:
    result = cocoon("run", "--rm", *flags, "localhost/busybox:latest", "df", "-k", "/")
    assert result.returncode == 0, result.stderr.decode()
    return int(result.stdout.decode().splitlines()[-1].split()[1])


def test_a_larger_disk_is_grown_to_fill_and_the_default_is_the_images(cocoon, busybox):
    default = _root_kib(cocoon)
    assert 7 << 20 < default <= 8 << 20  # the image's 8 GiB filesystem, less its overhead
    grown = _root_kib(cocoon, "--storage-opt", "size=12g")
    assert 11 << 20 < grown <= 12 << 20


@pytest.mark.parametrize(
    ("opt", "message"),
    [
        ("size=1g", "--storage-opt size=1024M: a container's disk is at least its image's, 8192M"),
        ("size=lots", "invalid size 'lots' (use e.g. 512m or 2g)"),
        ("quota=1g", "--storage-opt quota=1g: only size=SIZE is supported"),
    ],
)
def test_bad_storage_options_leave_nothing(cocoon, busybox, opt, message):
    containers = cocoon.state / "containers"
    before = sorted(containers.iterdir()) if containers.exists() else []
    result = cocoon("run", "--rm", "--storage-opt", opt, busybox, "true")
    assert (result.returncode, result.stderr.decode()) == (125, f"cocoon: {message}\n")
    assert (sorted(containers.iterdir()) if containers.exists() else []) == before


def test_arguments_as_large_as_linux_allows_reach_the_process(cocoon, busybox, tmp_path):
    """Eleven 100 KB arguments: over the old 1 MiB frame, within execve's 2 MiB (issue 10.5)."""
    big = ["x" * 100_000] * 11
    result = cocoon("run", "--rm", busybox, "sh", "-c", "echo $# ${#1}", "sh", *big)
    assert (result.returncode, result.stdout) == (0, b"11 100000\n"), result.stderr.decode()
    # More than execve takes: from a file, as the host's own execve would refuse it too.
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"V{i}={'y' * 100_000}\n" for i in range(21)))
    before = sorted((cocoon.state / "containers").iterdir())
    too_big = cocoon("run", "--rm", "--env-file", str(env_file), busybox, "true")
    assert too_big.returncode == 125
    said = too_big.stderr.decode()
    assert said.startswith("cocoon: arguments and environment take ") and said.endswith(
        " bytes; Linux allows 2097152\n"
    ), said
    assert sorted((cocoon.state / "containers").iterdir()) == before
