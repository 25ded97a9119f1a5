"""A container that halts or freezes its VM cannot hang cocoon (issue 10.3).

Inside the container, halt and poweroff end only its PID namespace. A guest
that stops answering anyway is frozen here for real, through QEMU's own
control socket (its vCPUs stop, exactly as a halted kernel's do): the
watchdog must notice, stop the VM and report the container as killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from cocoon.agent.keepalive import DEAD_AFTER, SILENT
from cocoon.vm.qmp import Qmp

pytestmark = pytest.mark.vm


def _freeze(cocoon, cid: str) -> None:
    """Stop the VM's CPUs through its VMM, as a halted guest kernel would be."""
    with Qmp(cocoon.run_dir / cid[:12] / "vmm.sock") as qmp:
        qmp.execute("stop")
        assert qmp.execute("query-status")["status"] == "paused"


def _record(cocoon, cid: str) -> dict:
    inspect = cocoon("inspect", cid)
    assert inspect.returncode == 0, inspect.stderr.decode()
    return json.loads(inspect.stdout)[0]


@pytest.mark.parametrize("command", ["halt -f", "poweroff -f", "reboot -f"])
def test_halting_inside_the_container_ends_only_the_container(cocoon, busybox, command):
    # The caller of reboot(2) exits; the rest of the namespace is killed.
    result = cocoon("run", "--rm", busybox, "sh", "-c", f"{command}; sleep 300", timeout=120)
    assert result.returncode == 128 + signal.SIGKILL, result.stderr.decode()
    assert not cocoon.vms()


def test_a_frozen_guest_ends_a_detached_container_and_its_exec(cocoon, busybox):
    started = cocoon("run", "-d", busybox, "sleep", "600")
    assert started.returncode == 0, started.stderr.decode()
    cid = started.stdout.decode().strip()
    try:
        exec_ = cocoon.popen("exec", cid, "sleep", "600", stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
        time.sleep(2)  # the exec has started before the guest freezes
        _freeze(cocoon, cid)
        waited = cocoon("wait", cid, timeout=DEAD_AFTER + 60)
        assert (waited.returncode, waited.stdout) == (0, b"137\n"), waited.stderr.decode()
        assert exec_.wait(timeout=30) == 137
        state = _record(cocoon, cid)["State"]
        assert (state["Status"], state["ExitCode"], state["Error"]) == ("exited", 137, SILENT)
        assert "Exited (137)" in cocoon("ls", "-a").stdout.decode()
    finally:
        cocoon("rm", "-f", cid)


def test_a_frozen_guest_ends_a_foreground_run(cocoon, busybox):
    run = cocoon.popen("run", "--name", "frozen", busybox, "sleep", "600",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while b"frozen" not in cocoon("ls").stdout:
            assert time.monotonic() < deadline, "the container never ran"
            time.sleep(0.2)
        _freeze(cocoon, _record(cocoon, "frozen")["Id"])
        _, err = run.communicate(timeout=DEAD_AFTER + 60)
        assert run.returncode == 137, err.decode()
        assert err.decode().strip() == f"cocoon: {SILENT}"
    finally:
        if run.poll() is None:
            run.kill()
        cocoon("rm", "-f", "frozen")


def test_a_second_interrupt_gets_the_user_out_of_a_frozen_guest(cocoon, busybox):
    run = cocoon.popen("run", "--rm", "--name", "stuck", busybox, "sh", "-c",
                       "trap '' INT; echo ready; sleep 600",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert run.stdout.readline() == b"ready\n"
        _freeze(cocoon, _record(cocoon, "stuck")["Id"])
        os.kill(run.pid, signal.SIGINT)  # forwarded into a guest that cannot act on it
        time.sleep(1)
        assert run.poll() is None
        os.kill(run.pid, signal.SIGINT)  # the second one is the user's way out
        assert run.wait(timeout=30) == 128 + signal.SIGINT
        assert not cocoon.vms()
        assert b"stuck" not in cocoon("ls", "-a").stdout  # --rm still removed it
    finally:
        if run.poll() is None:
            run.kill()
