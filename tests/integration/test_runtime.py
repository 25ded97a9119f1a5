"""cocoon-runtime driven by real engines: podman (with conmon) and containerd's runc shim.

Every engine here has private state under a temp folder; every container is
a real VM whose root is the bundle's root over 9p.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns import new_netns
from oci import busybox_layer, make_bundle, write_layout
from procs import vms_of
from ptys import Terminal
from runtime_fixtures import Runtime

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "podman"], capture_output=True).returncode != 0,
    reason="podman is not installed",
)
IMAGE = "localhost/busybox:latest"


class Podman:
    def __init__(self, folder: Path, runtime: Runtime) -> None:
        self.runtime = runtime
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
    assert podman.runtime.containers() == []


def test_podman_stdin_user_env_cwd_hostname_limits(podman: Podman) -> None:
    # The VM's memory is the limit: under 200,000 kB of MemTotal for 192m.
    memory = "awk '/MemTotal/ {print ($2 < 200000)}' /proc/meminfo"
    script = f"cat; id -u; id -g; pwd; echo $FOO; hostname; nproc; {memory}"
    result = subprocess.run(
        [*podman.base, *run_args("--rm", "-i", "--user", "1000:50", "-w", "/home/app", "-e",
                                 "FOO=bar", "--hostname", "hh", "--memory", "192m", "--cpus", "1.5",
                                 IMAGE, "sh", "-c", script)],
        input="from-stdin\n", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cpus = str(min(2, os.cpu_count() or 1))  # 1.5 rounded up, at most the host's
    assert result.stdout.split() == [
        "from-stdin",
        "1000",
        "50",
        "/home/app",
        "bar",
        "hh",
        cpus,
        "1",
    ]


def test_podman_ulimit_and_group_add(podman: Podman) -> None:
    # config.json's process.rlimits and user.additionalGids, as podman writes them.
    result = podman(*run_args("--rm", "--ulimit", "nofile=256:512", "--ulimit", "core=0:0",
                              "--user", "1000:1000", "--group-add", "4242", IMAGE, "sh", "-c",
                              "ulimit -n; ulimit -H -n; ulimit -c; id -G"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["256", "512", "0"]
    assert "4242" in lines[3].split()


def test_podman_binds_tmpfs_read_only(podman: Podman, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from-host\n")
    script = (
        "cat /data/in; echo from-guest > /data/out; "
        "mount | grep -c 'on /scratch type tmpfs'; touch /f 2>/dev/null || echo read-only"
    )
    result = podman(*run_args("--rm", "--read-only", "-v", f"{shared}:/data", "--tmpfs",
                              "/scratch", IMAGE, "sh", "-c", script))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-host", "1", "read-only"]
    assert (shared / "out").read_text() == "from-guest\n"


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
    assert podman.runtime.containers() == []


def test_podman_pause_unpause(podman: Podman) -> None:
    name = podman.ok(*run_args("-d", IMAGE, "sleep", "1000")).strip()
    podman.ok("pause", name)
    assert json.loads(podman.ok("inspect", name))[0]["State"]["Status"] == "paused"
    podman.ok("unpause", name)
    assert json.loads(podman.ok("inspect", name))[0]["State"]["Status"] == "running"
    assert podman.ok("exec", name, "echo", "thawed") == "thawed\n"
    podman.ok("rm", "--force", "--time", "0", name)
    assert podman.runtime.containers() == []


class _Spawner:
    """What ptys.Terminal needs: a way to start the engine."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def popen(self, *args: str, **kw: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*self.argv, *args], **kw)  # type: ignore[call-overload]


def test_podman_interactive_tty(podman: Podman) -> None:
    term = Terminal(_Spawner(podman.base), *run_args("--rm", "-it", IMAGE, "sh"), rows=40, cols=100)
    term.expect(b"# ")
    term.type(b"stty size; echo hi-$((1+2)); exit 4\r")
    code, lines = term.finish()
    assert code == 4
    assert "40 100" in lines  # the engine's terminal size reached the guest's pty
    assert "hi-3" in lines


def test_podman_exec_tty(podman: Podman) -> None:
    name = podman.ok(*run_args("-d", IMAGE, "sleep", "1000")).strip()
    term = Terminal(_Spawner(podman.base), "exec", "-it", name, "sh", rows=33, cols=77)
    term.expect(b"# ")
    term.type(b"stty size; tty; exit 6\r")
    code, lines = term.finish()
    assert (code, "33 77" in lines, "/dev/pts/0" in lines) == (6, True, True), lines
    podman.ok("rm", "--force", "--time", "0", name)


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
    # The shim adds the namespace to --runc-root: the runtime kept its state there.
    assert (ctr.runtime.root / Containerd.NAMESPACE / ".cocoon").is_dir()
    assert ctr.runtime.containers(ctr.runtime.root / Containerd.NAMESPACE) == []


def test_containerd_host_network_is_user_mode_nat(ctr: Containerd) -> None:
    # No traffic: only that the VM got a NIC with the user-mode stack's address.
    script = "ip -o -4 addr show eth0 | grep -o 'inet [0-9.]*'"
    result = subprocess.run(ctr.run_argv("--rm", "--net-host", IMAGE, "c4", "sh", "-c", script),
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("inet 10.")


def test_containerd_default_rlimit_reaches_the_vm(ctr: Containerd) -> None:
    # containerd's default spec limits open files to 1024 (soft and hard);
    # the guest's own default is different, so this is config.json's value.
    result = subprocess.run(ctr.run_argv("--rm", IMAGE, "c6", "sh", "-c", "ulimit -n; ulimit -Hn"),
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "1024\n1024\n"), result.stderr


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


def test_containerd_pause_resume(ctr: Containerd) -> None:
    started = subprocess.run(ctr.run_argv("-d", IMAGE, "c5", "sleep", "1000"),
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert started.returncode == 0, started.stderr

    def status() -> str:
        rows = [line.split() for line in ctr.ok("tasks", "ls").splitlines()[1:]]
        return next(row[2] for row in rows if row[0] == "c5")

    ctr.ok("tasks", "pause", "c5")
    assert status() == "PAUSED"
    ctr.ok("tasks", "resume", "c5")
    assert status() == "RUNNING"
    result = ctr("tasks", "exec", "--exec-id", "e1", "c5", "echo", "thawed")
    assert (result.returncode, result.stdout) == (0, "thawed\n")
    ctr.ok("tasks", "pause", "c5")
    ctr.ok("tasks", "kill", "--signal", "SIGKILL", "c5")  # a frozen VM is thawed to die
    deadline = time.monotonic() + 60
    while status() != "STOPPED":
        assert time.monotonic() < deadline, "the paused container did not die"
        time.sleep(0.2)
    ctr.ok("tasks", "delete", "c5")
    ctr.ok("containers", "delete", "c5")


# -- the runtime called directly: OCI errors, nothing left behind -----------------


class Direct:
    """cocoon-runtime as an engine calls it, with --log in JSON."""

    def __init__(self, runtime: Runtime, folder: Path) -> None:
        self.runtime = runtime
        self.folder = folder
        self.log = folder / "log.json"

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        # The container's process keeps the stdio create is given: files,
        # so this call does not wait for the container to end.
        with (self.folder / "out").open("a") as out, (self.folder / "err").open("w+") as err:
            code = subprocess.run([str(self.runtime.path), "--log", str(self.log),
                                   "--log-format", "json", *args], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err, timeout=300).returncode  # fmt: skip
            err.seek(0)
            return subprocess.CompletedProcess(args, code, "", err.read())

    def fails(self, *args: str, says: str) -> None:
        before = self.log.read_text() if self.log.exists() else ""
        result = self(*args)
        assert result.returncode != 0
        assert says in result.stderr
        line = json.loads(self.log.read_text()[len(before) :].splitlines()[-1])
        assert line["level"] == "error" and says in line["msg"]

    def state(self, container_id: str) -> dict[str, object]:
        result = subprocess.run([str(self.runtime.path), "state", container_id],
                                capture_output=True, text=True, check=True)  # fmt: skip
        return json.loads(result.stdout)

    def nothing_left(self) -> None:
        assert [p.name for p in self.runtime.root.iterdir() if not p.name.startswith(".")] == []
        records = self.runtime.root / ".cocoon" / "containers"
        assert not records.exists() or [p.name for p in records.iterdir() if p.is_dir()] == []
        assert self.runtime.leftovers() == []


@pytest.fixture
def direct(runtime: Runtime, tmp_path: Path) -> Direct:
    return Direct(runtime, tmp_path)


def test_bad_bundles_leave_nothing(direct: Direct, tmp_path: Path) -> None:
    good = make_bundle(tmp_path / "good", ["true"])
    direct("create", "--bundle", str(good), "probe")  # makes the root's folders
    direct("delete", "--force", "probe")
    empty = tmp_path / "empty"
    empty.mkdir()
    direct.fails("create", "--bundle", str(empty), "b1", says="no config.json")
    broken = make_bundle(tmp_path / "broken", ["true"])
    (broken / "config.json").write_text("{not json")
    direct.fails("create", "--bundle", str(broken), "b2", says="not valid JSON")
    future = make_bundle(tmp_path / "future", ["true"], ociVersion="2.0.0")
    direct.fails("create", "--bundle", str(future), "b3", says="ociVersion '2.0.0'")
    rootless = make_bundle(tmp_path / "rootless", ["true"], root={"path": "missing"})
    direct.fails("create", "--bundle", str(rootless), "b4", says="is not a folder")
    direct.fails("create", "--bundle", str(good), "../x", says="invalid container id")
    direct.nothing_left()
    # runc's leniency that engines rely on.
    assert direct("delete", "--force", "never-made").returncode == 0
    direct.fails("delete", "never-made", says="does not exist")


def test_lifecycle_errors(direct: Direct, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", ["sleep", "1000"])
    assert direct("create", "--bundle", str(bundle), "c1").returncode == 0
    assert direct.state("c1")["status"] == "created"
    direct.fails("create", "--bundle", str(bundle), "c1", says="already exists")
    assert direct.state("c1")["status"] == "created"  # the first one is untouched
    assert direct("start", "c1").returncode == 0
    direct.fails("start", "c1", says="cannot start")
    direct.fails("delete", "c1", says="not stopped")
    assert direct("kill", "c1", "KILL").returncode == 0
    deadline = time.monotonic() + 60
    while direct.state("c1")["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not stop"
        time.sleep(0.1)
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["true"], "cwd": "/"}))
    direct.fails("exec", "--process", str(process), "c1", says="not running")
    direct.fails("kill", "c1", "TERM", says="not running")
    assert direct("kill", "--all", "c1", "KILL").returncode == 0
    assert direct("delete", "c1").returncode == 0
    direct.nothing_left()


def test_kill_before_start_ends_the_vm(direct: Direct, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", ["echo", "never"])
    assert direct("create", "--bundle", str(bundle), "c1").returncode == 0
    assert direct("delete", "--force", "c1").returncode == 0
    direct.nothing_left()
    assert "never" not in (tmp_path / "out").read_text()


def test_a_container_process_killed_mid_boot_takes_its_vm_along(
    direct: Direct, tmp_path: Path
) -> None:
    # create returns while the VM boots: an engine may SIGKILL the pid then,
    # before the VM is in any record that delete could read. The VMM is
    # stopped first, as a hung one: the VM must go without any help from it.
    bundle = make_bundle(tmp_path / "b", ["echo", "never"])
    pid_file = tmp_path / "pid"
    created = direct("create", "--bundle", str(bundle), "--pid-file", str(pid_file), "k1")
    assert created.returncode == 0
    deadline = time.monotonic() + 60
    while not (vms := vms_of(direct.runtime.root)):
        assert time.monotonic() < deadline, "no VM started"
        time.sleep(0.01)
    os.kill(vms[0], signal.SIGSTOP)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while vms_of(direct.runtime.root):
        assert time.monotonic() < deadline, "the VM outlived the container's process"
        time.sleep(0.05)
    while direct.state("k1")["status"] != "stopped":  # until the dead process is reaped
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert direct("delete", "k1").returncode == 0
    direct.nothing_left()
    assert "never" not in (tmp_path / "out").read_text()


def test_a_signal_mid_boot_ends_the_container_once_its_vm_is_up(
    direct: Direct, tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "b", ["echo", "never"])
    assert direct("create", "--bundle", str(bundle), "t1").returncode == 0
    assert direct("kill", "t1", "TERM").returncode == 0
    deadline = time.monotonic() + 60
    while direct.state("t1")["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not stop"
        time.sleep(0.05)
    # Held, not fatal: the process ended the VM and removed its record itself.
    assert direct.runtime.leftovers() == []
    records = direct.runtime.root / ".cocoon" / "containers"
    assert [p.name for p in records.iterdir() if p.is_dir()] == []
    direct.fails("start", "t1", says="cannot start")
    assert direct("delete", "t1").returncode == 0
    direct.nothing_left()
    assert "never" not in (tmp_path / "out").read_text()


def test_containerd_tty(ctr: Containerd) -> None:
    term = Terminal(_Spawner(ctr.run_argv()), "--rm", "-t", IMAGE, "c3", "sh", rows=30, cols=90)
    term.expect(b"# ")
    term.type(b"stty size; echo hi-$((1+2)); exit 4\r")
    code, lines = term.finish()
    assert (code, "30 90" in lines, "hi-3" in lines) == (4, True, True), lines


def test_delete_ends_the_vm_of_a_killed_container_process(direct: Direct, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", ["sleep", "1000"])
    assert direct("create", "--bundle", str(bundle), "c1").returncode == 0
    assert direct("start", "c1").returncode == 0
    os.kill(int(direct.state("c1")["pid"]), signal.SIGKILL)  # as an engine might
    deadline = time.monotonic() + 30
    while direct.state("c1")["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert direct("delete", "c1").returncode == 0
    direct.nothing_left()


def test_a_namespace_made_by_the_engine_lends_the_vm_its_veth(
    direct: Direct, tmp_path: Path
) -> None:
    # As podman's network or a CNI plugin leaves it: a veth with an address
    # and a default route in the container's namespace, its peer elsewhere.
    with new_netns("c") as inner, new_netns("p") as peer:

        def ip(ns: str, *args: str) -> str:
            return subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True,
                                  text=True).stdout  # fmt: skip

        ip(inner, "link", "add", "eth0", "type", "veth", "peer", "name", "host0", "netns", peer)
        ip(inner, "addr", "add", "10.89.7.2/24", "dev", "eth0")
        ip(inner, "link", "set", "eth0", "up")
        ip(inner, "route", "add", "default", "via", "10.89.7.1")
        ip(peer, "addr", "add", "10.89.7.1/24", "dev", "host0")
        ip(peer, "link", "set", "host0", "up")
        mac = json.loads(ip(inner, "-j", "link", "show", "eth0"))[0]["address"]
        script = "cat /sys/class/net/eth0/address; ip -o -4 addr show eth0; sleep 1000"
        bundle = make_bundle(tmp_path / "b", ["sh", "-c", script], linux={"namespaces": [
            {"type": "network", "path": f"/run/netns/{inner}"}]})  # fmt: skip
        assert direct("create", "--bundle", str(bundle), "n1").returncode == 0
        try:
            assert direct("start", "n1").returncode == 0
            ping = ["ip", "netns", "exec", peer, "busybox", "ping", "-c", "1", "-W", "2",
                    "10.89.7.2"]  # fmt: skip
            deadline = time.monotonic() + 60
            while subprocess.run(ping, capture_output=True).returncode != 0:
                assert time.monotonic() < deadline, "the VM never answered on the veth's address"
                time.sleep(0.2)
            while "inet" not in (out := (tmp_path / "out").read_text()):
                assert time.monotonic() < deadline, f"no output: {out!r}"
                time.sleep(0.1)
            assert out.splitlines()[0] == mac
            assert "inet 10.89.7.2/24" in out
        finally:
            direct("delete", "--force", "n1")
    direct.nothing_left()


def test_a_pod_sandbox_is_a_host_process_without_a_vm(direct: Direct, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", ["/pause"],
                         annotations={"io.kubernetes.cri.container-type": "sandbox"})  # fmt: skip
    pid_file = tmp_path / "pid"
    assert (
        direct("create", "--bundle", str(bundle), "--pid-file", str(pid_file), "s1").returncode == 0
    )
    pid = int(pid_file.read_text())
    assert direct.state("s1")["pid"] == pid and direct.state("s1")["status"] == "created"
    assert direct("start", "s1").returncode == 0
    assert direct.state("s1")["status"] == "running"
    assert direct.runtime.leftovers() == [pid]  # no VM: only the holder
    direct.fails("exec", "--process", str(tmp_path / "none.json"), "s1", says="pod sandbox")
    assert direct("kill", "s1", "TERM").returncode == 0
    deadline = time.monotonic() + 30
    while direct.state("s1")["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert direct("delete", "s1").returncode == 0
    direct.nothing_left()


def test_pause_freezes_the_vm_and_resume_thaws_it(direct: Direct, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", ["sh", "-c", "while :; do echo tick; sleep 0.1; done"])
    direct.fails("pause", "p1", says="does not exist")
    assert direct("create", "--bundle", str(bundle), "p1").returncode == 0
    assert direct("start", "p1").returncode == 0
    out = tmp_path / "out"
    deadline = time.monotonic() + 60
    while "tick" not in out.read_text():
        assert time.monotonic() < deadline, "no output"
        time.sleep(0.1)
    direct.fails("resume", "p1", says="is running: cannot resume")
    assert direct("pause", "p1").returncode == 0
    assert direct.state("p1")["status"] == "paused"
    listed = subprocess.run([str(direct.runtime.path), "list", "--format", "json"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert [s["status"] for s in json.loads(listed)] == ["paused"]
    direct.fails("pause", "p1", says="is paused: cannot pause")
    direct.fails("start", "p1", says="cannot start")
    frozen = out.read_text()
    time.sleep(1.5)  # ten ticks' worth: a frozen guest writes none
    assert out.read_text() == frozen
    assert direct("resume", "p1").returncode == 0
    assert direct.state("p1")["status"] == "running"
    while out.read_text() == frozen:
        assert time.monotonic() < deadline, "the resumed container wrote nothing"
        time.sleep(0.1)
    assert direct("pause", "p1").returncode == 0
    assert direct("kill", "p1", "KILL").returncode == 0  # thawed to die
    while direct.state("p1")["status"] != "stopped":
        assert time.monotonic() < deadline, "the paused container did not die"
        time.sleep(0.1)
    direct.fails("pause", "p1", says="is stopped: cannot pause")
    direct.fails("resume", "p1", says="is stopped: cannot resume")
    assert direct("delete", "p1").returncode == 0
    direct.nothing_left()
