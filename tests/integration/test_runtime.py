"""cocoon-runtime driven by real engines: podman (with conmon) and containerd's runc shim.

Every engine here has private state under a temp folder; every container is
a real VM whose root is the bundle's root over 9p.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from oci import busybox_layer, write_layout
from runtime_fixtures import Runtime

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "podman"], capture_output=True).returncode != 0,
    reason="podman is not installed",
)
IMAGE = "localhost/busybox:latest"


class Podman:
    def __init__(self, folder: Path, runtime: Runtime) -> None:
        self.base = ["podman", "--cgroup-manager=cgroupfs", "--root", str(folder / "root"),
                     "--runroot", str(folder / "run"), "--runtime", str(runtime.path)]  # fmt: skip

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def podman(runtime: Runtime, tmp_path_factory) -> Iterator[Podman]:
    folder = tmp_path_factory.mktemp("podman")
    layout = folder / "layout"
    write_layout(layout, [busybox_layer()], ref=IMAGE)
    engine = Podman(folder, runtime)
    image_id = engine.ok("pull", "-q", f"oci:{layout}:{IMAGE}").strip()
    engine.ok("tag", image_id, IMAGE)
    try:
        yield engine
    finally:
        engine("rm", "--all", "--force", "--time", "0")


def run_args(*args: str) -> list[str]:
    return ["run", "--pull=never", "--network", "none", *args]


def test_podman_run_stdio_and_exit_code(podman: Podman) -> None:
    result = podman(*run_args("--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 7"))
    assert result.returncode == 7, result.stderr
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert podman.ok("ps", "--all", "--quiet") == ""


def test_podman_detached_exec_logs_stop(podman: Podman) -> None:
    # The trap runs between sleeps: the shell is PID 1 of its namespace.
    script = 'echo started; trap "echo bye; exit 3" TERM; while :; do sleep 0.2; done'
    name = podman.ok(*run_args("-d", IMAGE, "sh", "-c", script)).strip()
    result = podman("exec", name, "sh", "-c", "echo in-exec; echo e >&2; exit 5")
    assert (result.returncode, result.stdout, result.stderr) == (5, "in-exec\n", "e\n")
    inspect = json.loads(podman.ok("inspect", name))[0]
    assert inspect["State"]["Status"] == "running"
    podman.ok("stop", "--time", "30", name)
    inspect = json.loads(podman.ok("inspect", name))[0]
    assert inspect["State"]["ExitCode"] == 3
    assert podman.ok("logs", name) == "started\nbye\n"
    podman.ok("rm", name)
