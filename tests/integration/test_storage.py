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
