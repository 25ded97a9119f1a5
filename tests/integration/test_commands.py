"""Commands beside run and the container lifecycle: ps, stats, exec -t, image tag and
save, system, and cocoon run by an unprivileged user. Each test boots a real VM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sysconfig
import tarfile
import tempfile
from pathlib import Path

import pytest
from oci import busybox_layer, write_layout
from procs import monitors_of, vms_of
from ptys import Terminal
from vm_fixtures import ok

import cocoon as cocoon_lib

pytestmark = pytest.mark.vm


def test_ps_stats_stream_and_exec_tty(cc, busybox):
    cid = ok(cc("run", "-d", "--name", "busy", busybox, "sleep", "1000")).strip()
    assert ok(cc("ps", "-q")) == ok(cc("ls", "-q")) == f"{cid[:12]}\n"
    (row,) = json.loads(ok(cc("ps", "--format", "json")))
    assert (row["id"], row["name"], row["state"]) == (cid, "busy", "running")

    # Without --no-stream, samples keep coming: a header and a row each time.
    stats = cc.popen("stats", "busy", stdout=subprocess.PIPE)
    try:
        lines = [stats.stdout.readline().decode() for _ in range(4)]
    finally:
        stats.send_signal(signal.SIGINT)
        stats.wait(60)
    assert [line.split()[0] for line in lines] == ["CONTAINER", cid[:12]] * 2
    assert lines[1].split()[1] == "busy"

    term = Terminal(cc, "exec", "-t", "busy", "sh", "-c", "tty; stty size", rows=30, cols=90)
    code, out = term.finish()
    assert code == 0
    assert out[0].startswith("/dev/pts/") and out[1] == "30 90"


def test_image_tag_and_save(cc, busybox, tmp_path):
    ok(cc("image", "tag", busybox, "localhost/tagged:2"))
    (image,) = json.loads(ok(cc("image", "inspect", "--format", "json", "localhost/tagged:2")))
    (original,) = json.loads(ok(cc("image", "inspect", "--format", "json", busybox)))
    assert image["Id"] == original["Id"]
    assert {busybox, "localhost/tagged:2"} <= set(image["RepoTags"])
    assert ok(cc("run", "--rm", "localhost/tagged:2", "echo", "tagged")) == "tagged\n"

    archive = tmp_path / "saved.tar"
    assert ok(cc("image", "save", "-o", str(archive), "localhost/tagged:2")) == ""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = index["manifests"]
    assert entry["digest"] == image["Digest"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "localhost/tagged:2"

    ok(cc("image", "rm", "localhost/tagged:2"))
    assert cc("image", "inspect", "localhost/tagged:2").returncode == 125
    ok(cc("image", "load", str(archive)))
    (loaded,) = json.loads(ok(cc("image", "inspect", "--format", "json", "localhost/tagged:2")))
    assert loaded["Id"] == image["Id"]
    ok(cc("image", "rm", "localhost/tagged:2"))


def test_system_info_and_kernel(cc, busybox):
    info = json.loads(ok(cc("system", "info", "--format", "json")))
    assert info["state_dir"] == str(cc.state)
    assert Path(info["kernel"]).is_file() and Path(info["initrd"]).is_file()
    kernel = json.loads(ok(cc("system", "kernel", "--format", "json")))
    assert kernel["path"] == info["kernel"]
    assert kernel["format"] == "PVH vmlinux (uncompressed)"
    # What `auto` settles on is what a container then runs with.
    ok(cc("run", "-d", "--name", "probe", busybox, "sleep", "1000"))
    (details,) = json.loads(ok(cc("inspect", "probe")))
    assert details["Cocoon"]["Accel"] == info["accelerator"]
    if Path("/sys/module/kvm_pvm").exists():  # a paravirtual KVM: standard guests hang
        assert info["accelerator"] == "tcg"
    forced = json.loads(ok(cc("system", "info", "--accel", "tcg", "--format", "json")))
    assert forced["accelerator"] == "tcg"


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]


def test_unprivileged_user_runs_on_user_networking(cocoon):
    """Without CAP_NET_ADMIN the default network is QEMU's user mode, and it works."""
    root = Path(tempfile.mkdtemp(prefix="cocoon-nobody-"))
    env = {k: v for k, v in cocoon.env.items() if k != "COCOON_NETWORK"}
    env.update(HOME=str(root), COCOON_STATE_DIR=str(root / "state"),
               COCOON_RUN_DIR=str(root / "run"), COCOON_CACHE_DIR=str(root / "cache"))  # fmt: skip
    write_layout(root / "layout", [busybox_layer()], ref="localhost/busybox:latest")
    shutil.chown(root, 65534, 65534)
    for path in root.rglob("*"):
        shutil.chown(path, 65534, 65534)

    # The venv's interpreter may live where nobody cannot reach (pyenv under
    # /root): Debian's runs the same cocoon and the venv's packages.
    source = Path(cocoon_lib.__file__).parent.parent
    env["PYTHONPATH"] = f"{source}:{sysconfig.get_paths()['purelib']}"

    def as_nobody(*args: str) -> subprocess.CompletedProcess:
        argv = [*NOBODY, "/usr/bin/python3", "-m", "cocoon.cli.main", *args]
        return subprocess.run(argv, env=env, capture_output=True, timeout=300)

    try:
        ok(as_nobody("image", "load", str(root / "layout")))
        result = as_nobody("--debug", "run", "--rm", "localhost/busybox", "sh", "-c",
                           "ip -4 -o addr show eth0 | awk '{print $4}'")  # fmt: skip
        assert (result.returncode, result.stdout) == (0, b"10.0.2.15/24\n"), result.stderr
        assert b"cocoon: network mode user for " in result.stderr
    finally:
        for pid in vms_of(root) + monitors_of(root / "state"):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
