"""Fixtures for tests that boot real VMs.

One cocoon state dir for the session (images are loaded once), the real
cache dir (kernel and accelerator verdict built by setup.sh), the guest agent
built from this working tree, a check after every test that no VM it
started is still running, and one after the session that the host itself
got no bridge or TAP.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns import new_netns
from oci import Layer, busybox_layer, write_layout
from procs import monitors_of, vms_of

BUSYBOX = "localhost/busybox:latest"
GUEST = Path(__file__).resolve().parents[1] / "guest"


class Cocoon:
    """Runs the real `cocoon` command against the test's state dir."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.state = Path(env["COCOON_STATE_DIR"])
        self.run_dir = Path(env["COCOON_RUN_DIR"])

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cocoon.cli.main", *args]

    def __call__(self, *args: str, input: bytes | None = None, timeout: float = 300):
        return subprocess.run(
            self.argv(*args), env=self.env, input=input, capture_output=True, timeout=timeout
        )

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=self.env, **kw)

    def vms(self) -> list[int]:
        return vms_of(self.state)

    def load_layout(self, tmp: Path, layers: list[Layer], ref: str, **config) -> None:
        layout = tmp / ref.replace("/", "_").replace(":", "_")
        write_layout(layout, layers, ref=ref, config=config or None)
        result = self("image", "load", str(layout))
        assert result.returncode == 0, result.stderr.decode()


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def cocoon() -> Iterator[Cocoon]:
    # The agent under test is the working tree's, never the one setup.sh cached.
    subprocess.run(["make", "-s", "-C", str(GUEST)], check=True)
    # Removed at the end: rootfs and writable disks are large.
    state = Path(tempfile.mkdtemp(prefix="cocoon-test-state-"))
    # Unix socket paths are short; pytest's tmp dirs can be long.
    run_dir = Path(tempfile.mkdtemp(prefix="cct-", dir="/tmp"))
    keys = ("COCOON_STATE_DIR", "COCOON_RUN_DIR", "COCOON_NETWORK", "COCOON_AGENT")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(COCOON_STATE_DIR=str(state), COCOON_RUN_DIR=str(run_dir))
    os.environ["COCOON_AGENT"] = str(GUEST / "build" / "cocoon-agent")
    # As root the default network is a bridge with NAT: only in a netns the
    # test made (the netns fixture), never on the host itself.
    os.environ["COCOON_NETWORK"] = "none"
    env = dict(os.environ)
    try:
        yield Cocoon(env)
    finally:
        _kill_all(monitors_of(state) + vms_of(state))
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(autouse=True)
def no_vm_left_behind(request) -> Iterator[None]:
    yield
    if "cocoon" not in request.fixturenames:
        return
    state = Path(os.environ["COCOON_STATE_DIR"])
    deadline = time.monotonic() + 5
    while (left := vms_of(state) + monitors_of(state)) and time.monotonic() < deadline:
        time.sleep(0.1)
    _kill_all(left)
    assert not left, f"VMs or monitors left running after the test: {left}"


# A cleanup of many VMs under software emulation on a loaded host.
CLEANUP_TIMEOUT = 600


def ok(result: subprocess.CompletedProcess) -> str:
    """What a command printed, once it has succeeded; its words in the failure otherwise."""
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    return result.stdout.decode()


def one_line_125(result: subprocess.CompletedProcess, needle: str) -> None:
    """A refusal as the CLI gives one: exit 125 and one line naming ``needle``."""
    err = result.stderr.decode()
    assert result.returncode == 125, err
    assert err.count("\n") == 1 and needle in err, err


def records(cocoon: Cocoon) -> set[Path]:
    """The container records in the test's state folder."""
    return set((cocoon.state / "containers").glob("*/container.json"))


def remove_containers(cocoon: Cocoon, *flags: str) -> None:
    """Remove every container the session's state holds (``flags``: e.g. -v)."""
    ids = cocoon("ls", "-a", "-q").stdout.decode().split()
    if ids:
        cocoon("rm", "-f", *flags, *ids, timeout=CLEANUP_TIMEOUT)


@pytest.fixture
def cc(cocoon) -> Iterator[Cocoon]:
    """The cocoon command, plus removal of every container the test left."""
    yield cocoon
    remove_containers(cocoon)


@pytest.fixture(scope="session")
def busybox(cocoon, tmp_path_factory) -> str:
    cocoon.load_layout(tmp_path_factory.mktemp("img"), [busybox_layer()], BUSYBOX)
    return BUSYBOX


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of the test's own (lo up); deleted, with all it holds, after."""
    with new_netns() as name:
        yield name


def _cocoon_links() -> set[str]:
    """The host's links named as cocoon names its bridges (cocoon*) and TAPs (cc*)."""
    return {p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(("cocoon", "cc"))}


@pytest.fixture(scope="session", autouse=True)
def host_links_untouched() -> Iterator[None]:
    """Bridges and TAPs belong in the tests' namespaces: the host has the same ones after."""
    before = _cocoon_links()
    yield
    made = _cocoon_links() - before
    assert not made, f"links made outside the test network namespaces: {sorted(made)}"
