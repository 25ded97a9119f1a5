"""The container's root can neither see the guest agent nor speak in its name (issue 10.4)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from oci import Layer, busybox_layer

pytestmark = pytest.mark.vm

FORGE = "localhost/forge:latest"


@pytest.fixture(scope="module")
def forge_image(cocoon, tmp_path_factory) -> str:
    """busybox plus /forge, a static build of forge.c."""
    tmp = tmp_path_factory.mktemp("forge")
    binary = tmp / "forge"
    source = Path(__file__).with_name("forge.c")
    # The agent's own toolchain: the session fixture has just built it.
    subprocess.run(["musl-gcc", "-static", "-O2", "-o", str(binary), str(source)], check=True)
    layer = Layer().file("forge", binary.read_bytes(), mode=0o755)
    cocoon.load_layout(tmp, [busybox_layer(), layer], FORGE)
    return FORGE


def test_forged_frames_do_not_reach_the_host(cocoon, forge_image):
    result = cocoon("run", "--rm", forge_image, "/forge")
    assert result.returncode == 7, result.stderr.decode()
    assert result.stdout == b"forge-done\n"
    assert b"forge: reached" in result.stderr


def test_forged_frames_do_not_reach_an_exec(cocoon, forge_image):
    started = cocoon("run", "-d", forge_image, "sleep", "300")
    assert started.returncode == 0, started.stderr.decode()
    cid = started.stdout.decode().strip()
    try:
        forged = cocoon("exec", cid, "/forge")
        assert forged.returncode == 7, forged.stderr.decode()
        assert forged.stdout == b"forge-done\n"
        after = cocoon("exec", cid, "sh", "-c", "echo after; exit 5")
        assert (after.returncode, after.stdout) == (5, b"after\n"), after.stderr.decode()
    finally:
        cocoon("rm", "-f", cid)


def test_agent_is_invisible(cocoon, busybox):
    script = (
        "echo pid=$$; cat /proc/1/comm; ls /proc/1/fd | wc -l; "
        "ls -l /proc/[0-9]*/fd/ 2>/dev/null | grep -c vport; ls -d /proc/[0-9]* | wc -l"
    )
    result = cocoon("run", "--rm", busybox, "sh", "-c", script)
    assert result.returncode == 0, result.stderr.decode()
    pid, init, init_fds, vports, procs = result.stdout.decode().split()
    assert pid == "pid=2"  # the main process; PID 1 is the namespace's init
    assert init == "cocoon-init"
    assert init_fds == "0"  # the init holds nothing of the agent's
    assert vports == "0"
    # init, sh, and the ls the shell runs (the `wc` of the pipe may show too)
    assert int(procs) <= 4
