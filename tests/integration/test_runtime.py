"""cocoon-runtime driven by real engines: podman (with conmon) and containerd's runc shim.

Every engine here has private state under a temp folder; every container is
a real VM whose root is the bundle's root over 9p.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
import time
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


# -- containerd -------------------------------------------------------------------


class Containerd:
    """containerd 1.6 with its own root, state and sockets; ``ctr`` against it."""

    NAMESPACE = "cocoon-test"

    def __init__(self, folder: Path, runtime: Runtime) -> None:
        self.folder = folder
        self.runtime = runtime
        self.socket = folder / "c.sock"
        config = folder / "config.toml"
        config.write_text(
            f'version = 2\nroot = "{folder / "root"}"\nstate = "{folder / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{folder / "c.sock.ttrpc"}"\n'
            f'[debug]\n  address = "{folder / "debug.sock"}"\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{folder / "opt"}"\n'
        )
        self.log = (folder / "containerd.log").open("wb")
        self.daemon = subprocess.Popen(["containerd", "--config", str(config)],
                                       stdout=self.log, stderr=self.log)  # fmt: skip

    def argv(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", self.NAMESPACE, *args]

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout)

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def run_argv(self, *args: str) -> list[str]:
        return self.argv("run", "--runc-binary", str(self.runtime.path),
                         "--runc-root", str(self.runtime.root), *args)  # fmt: skip

    def wait_up(self) -> None:
        deadline = time.monotonic() + 30
        while self("version").returncode != 0:
            assert self.daemon.poll() is None, "containerd exited"
            assert time.monotonic() < deadline, "containerd did not come up"
            time.sleep(0.1)

    def close(self) -> None:
        self.daemon.terminate()
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        self.log.close()


@pytest.fixture
def ctr(runtime: Runtime) -> Iterator[Containerd]:
    # Short: containerd's sockets live here.
    folder = Path(tempfile.mkdtemp(prefix="ccctd-", dir="/tmp"))
    engine = Containerd(folder, runtime)
    try:
        engine.wait_up()
        layout = folder / "layout"
        write_layout(layout, [busybox_layer()], ref=IMAGE)
        with tarfile.open(folder / "image.tar", "w") as tar:
            tar.add(layout, arcname=".")
        engine.ok("images", "import", str(folder / "image.tar"))
        yield engine
    finally:
        for task in engine("tasks", "ls", "--quiet").stdout.split():
            engine("tasks", "kill", "--signal", "SIGKILL", task)
            engine("tasks", "delete", "--force", task)
        for container in engine("containers", "ls", "--quiet").stdout.split():
            engine("containers", "delete", container)
        engine.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_containerd_run_stdio_and_exit_code(ctr: Containerd) -> None:
    result = subprocess.run(
        ctr.run_argv("--rm", IMAGE, "c1", "sh", "-c", "echo out; echo err >&2; exit 7"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    assert ctr.ok("containers", "ls", "--quiet") == ""


def test_containerd_exec_and_kill(ctr: Containerd) -> None:
    script = 'echo started; trap "echo bye; exit 3" TERM; while :; do sleep 0.2; done'
    main = subprocess.Popen(ctr.run_argv("--rm", IMAGE, "c2", "sh", "-c", script),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert main.stdout is not None
        assert main.stdout.readline() == "started\n"
        result = ctr("tasks", "exec", "--exec-id", "e1", "c2", "sh", "-c", "echo x; exit 5")
        assert (result.returncode, result.stdout) == (5, "x\n")
        ctr.ok("tasks", "kill", "c2")
        out, _ = main.communicate(timeout=120)
        assert (main.returncode, out) == (3, "bye\n")
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
