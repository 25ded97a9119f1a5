"""A foreground ``run --rm`` killed with SIGKILL is finished by the next command (issue 10.5)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.vm


def test_the_next_command_finishes_a_killed_run_rm(cocoon, busybox):
    run = cocoon.popen("run", "--rm", "--name", "doomed", busybox, "sh", "-c",
                       "echo ready; sleep 600", stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert run.stdout.readline() == b"ready\n"
        cid = json.loads(cocoon("inspect", "doomed").stdout)[0]["Id"]
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    deadline = time.monotonic() + 30
    while cocoon.vms():  # the orphaned VM is killed by the command that notices
        listed = cocoon("ls", "-a")
        assert listed.returncode == 0, listed.stderr.decode()
        assert time.monotonic() < deadline, "the orphaned VM was never stopped"
        time.sleep(0.2)
    assert b"doomed" not in cocoon("ls", "-a").stdout
    assert not (cocoon.state / "containers" / cid).exists()
    assert not (cocoon.run_dir / cid[:12]).exists()
    again = cocoon("run", "--rm", "--name", "doomed", busybox, "true")
    assert again.returncode == 0, again.stderr.decode()  # the name is free again
