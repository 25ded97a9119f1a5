"""Detached containers and their lifecycle, end to end: every test here boots real VMs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from oci import BUSYBOX, Layer
from procs import monitors_of
from vm_fixtures import ok

from cocoon.container import control, logs

pytestmark = pytest.mark.vm

TICK = "i=0; while :; do i=$((i+1)); echo out$i; echo err$i >&2; sleep 0.2; done"
LONG = 600  # generous: 10 VMs under software emulation on 2 cores are slow


def detached(cc, *args: str) -> str:
    return ok(cc("run", "-d", *args)).strip()


def inspect(cc, ref: str) -> dict:
    return json.loads(ok(cc("inspect", ref)))[0]


def wait_for_log(cc, ref: str, needle: bytes, timeout: float = 120) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cc("logs", ref).stdout
        if needle in out:
            return out
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} never showed up in the logs of {ref}")


def test_detached_logs_exec_stop_rm(cc, busybox):
    cid = detached(cc, "--name", "web", busybox, "sh", "-c", TICK)
    assert len(cid) == 64
    assert cc("ls").stdout.decode().splitlines()[1].split()[0] == cid[:12]
    assert "Up" in ok(cc("ls"))

    wait_for_log(cc, "web", b"out3\n")
    shown = cc("logs", "web")
    assert shown.stdout.startswith(b"out1\nout2\nout3\n")
    assert shown.stderr.startswith(b"err1\nerr2\nerr3\n")
    stamped = cc("logs", "--timestamps", "web").stdout.decode().splitlines()[0]
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z out1", stamped), stamped

    follow = cc.popen("logs", "-f", "web", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    seen = [follow.stdout.readline() for _ in range(6)]
    assert seen == [f"out{i}\n".encode() for i in range(1, 7)]

    ps = ok(cc("exec", "web", "ps"))
    assert "sh -c" in ps and "ps" in ps
    assert cc("exec", cid[:8], "sh", "-c", "exit 4").returncode == 4
    out = ok(cc("exec", "-e", "X=1", "-w", "/tmp/w", "-u", "app", "web",
                "sh", "-c", 'echo "$X $HOSTNAME"; pwd; id -un'))  # fmt: skip
    assert out.splitlines() == [f"1 {cid[:12]}", "/tmp/w", "app"]
    assert cc("exec", "-i", "web", "cat", input=b"piped\n").stdout == b"piped\n"
    missing = cc("exec", "web", "no-such-command")
    assert (missing.returncode, missing.stderr) == (
        127,
        b'cocoon: exec "no-such-command": executable file not found in $PATH\n',
    )

    ok(cc("stop", "web"))
    follow.wait(LONG)  # -f ends when the container does
    # Both streams count, as in Docker: the last two entries, whichever stream.
    last = logs.read(cid)[-2:]
    tail = cc("logs", "-n", "2", "web")
    assert tail.stdout == b"".join(e.data for e in last if e.stream == "stdout")
    assert tail.stderr == b"".join(e.data for e in last if e.stream == "stderr")
    details = inspect(cc, "web")
    assert details["State"]["Status"] == "exited"
    assert details["State"]["ExitCode"] == 128 + signal.SIGTERM
    assert details["State"]["FinishedAt"] >= details["State"]["StartedAt"]
    assert (details["Cocoon"]["Cpus"], details["Cocoon"]["MemoryMiB"]) == (1, 256)
    assert "Exited (143)" in ok(cc("ls", "-a"))
    assert ok(cc("wait", "web")).strip() == "143"
    assert cc("exec", "web", "true").returncode == 125

    ok(cc("rm", "web"))
    assert cc("inspect", "web").returncode == 125
    assert not (cc.state / "containers" / cid).exists()


def test_stop_escalates_when_the_signal_is_ignored(cc, busybox):
    detached(cc, "--name", "stubborn", busybox, "sh", "-c", "trap '' TERM; echo up; sleep 1000")
    wait_for_log(cc, "stubborn", b"up\n")
    ok(cc("stop", "-t", "1", "stubborn"))
    assert inspect(cc, "stubborn")["State"]["ExitCode"] == 128 + signal.SIGKILL


def test_stop_with_a_chosen_signal_and_kill(cc, busybox):
    script = "trap 'echo got-usr1; exit 9' USR1; echo up; while :; do sleep 0.2; done"
    detached(cc, "--name", "sig", busybox, "sh", "-c", script)
    wait_for_log(cc, "sig", b"up\n")
    ok(cc("stop", "-s", "USR1", "sig"))
    assert inspect(cc, "sig")["State"]["ExitCode"] == 9
    assert b"got-usr1" in cc("logs", "sig").stdout

    detached(cc, "--name", "victim", busybox, "sleep", "1000")
    ok(cc("kill", "victim"))
    assert ok(cc("wait", "victim")).strip() == str(128 + signal.SIGKILL)


def test_wrong_state_operations_are_refused(cc, busybox):
    detached(cc, "--name", "busy", busybox, "sleep", "1000")
    refused = cc("rm", "busy")
    assert (refused.returncode, refused.stderr) == (
        125,
        b"cocoon: cannot remove container busy, it is running: stop it first or use rm -f\n",
    )
    assert cc("start", "busy").returncode == 125
    ok(cc("rm", "-f", "busy"))
    assert cc("ls", "-a", "-q").stdout == b""

    ok(cc("create", "--name", "fresh", busybox, "true"))
    stopped = cc("stop", "fresh")
    assert (stopped.returncode, stopped.stderr) == (
        125,
        b"cocoon: cannot stop container fresh, it is created\n",
    )


def test_create_then_start(cc, busybox):
    count_runs = "echo x >> /runs; wc -l < /runs; echo oops >&2; exit 3"
    cid = ok(cc("create", "--name", "later", busybox, "sh", "-c", count_runs))
    assert "Created" in ok(cc("ls", "-a"))
    attached = cc("start", "-a", "later")
    assert (attached.returncode, attached.stdout, attached.stderr) == (3, b"1\n", b"oops\n")
    # start -a returns only once the record says exited (as docker start -a).
    assert inspect(cc, "later")["State"]["Status"] == "exited"
    # An exited container starts again, on the same disk: its file is kept.
    ok(cc("start", cid.strip()[:12]))
    assert ok(cc("wait", "later")).strip() == "3"
    assert cc("logs", "later").stdout == b"1\n2\n"

    ok(cc("create", "-i", "--name", "reader", busybox, "cat"))
    echoed = cc("start", "-a", "-i", "reader", input=b"from stdin\n")
    assert (echoed.returncode, echoed.stdout) == (0, b"from stdin\n")


def test_run_detached_rm_removes_on_exit(cc, busybox):
    cid = detached(cc, "--rm", busybox, "sh", "-c", "sleep 1")
    deadline = time.monotonic() + 120
    while (cc.state / "containers" / cid).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (cc.state / "containers" / cid).exists()


def test_names_and_id_prefixes(cc, busybox):
    cid = detached(cc, "--name", "uniq", busybox, "sleep", "1000")
    clash = cc("run", "-d", "--name", "uniq", busybox, "true")
    assert (clash.returncode, clash.stderr) == (
        125,
        b"cocoon: the container name 'uniq' is already in use\n",
    )
    assert inspect(cc, cid[:5])["Name"] == "/uniq"
    assert inspect(cc, cid)["State"]["Pid"] in monitors_of(cc.state)
    ok(cc("rm", "-f", cid[:6]))


@pytest.mark.parametrize("victim", ["vm", "monitor"])
def test_sigkill_recovery(cc, busybox, victim):
    cid = detached(cc, "--name", f"doomed-{victim}", busybox, "sleep", "1000")
    pids = inspect(cc, cid)["Cocoon"]
    os.kill(pids["VmPid" if victim == "vm" else "MonitorPid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while "Up" in ok(cc("ls", "-a")) and time.monotonic() < deadline:
        time.sleep(0.2)
    listed = json.loads(ok(cc("ls", "-a", "--format", "json")))
    assert [c["state"] for c in listed] == ["exited"]
    assert listed[0]["error"]
    assert "Exited" in ok(cc("ls", "-a"))
    ok(cc("rm", cid))
    # Nothing stale blocks the next container.
    detached(cc, "--name", f"doomed-{victim}", busybox, "true")


def test_stats(cc, busybox):
    detached(cc, "--name", "meter", "--memory", "256m", busybox, "sh", "-c",
             "while :; do :; done")  # fmt: skip
    table = ok(cc("stats", "--no-stream"))
    assert "meter" in table and "%" in table
    sample = json.loads(ok(cc("stats", "--no-stream", "--format", "json", "meter")))[0]
    assert 150 << 20 < sample["memory_total"] <= 256 << 20
    assert 0 < sample["memory_used"] < sample["memory_total"]
    assert sample["cpu_percent"] > 50  # a busy loop on its one CPU


def test_stats_need_nothing_from_the_image(cc, tmp_path):
    # Only the busybox binary: no `cat`, no shell on the PATH.
    bare = Layer().dir("bin").file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    cc.load_layout(tmp_path, [bare], "localhost/bare:1", Entrypoint=["/bin/busybox"])
    detached(cc, "--name", "bare", "localhost/bare:1", "sleep", "1000")
    sample = json.loads(ok(cc("stats", "--no-stream", "--format", "json", "bare")))[0]
    assert 0 < sample["memory_used"] < sample["memory_total"]
    assert sample["cpus"] == 1


def test_prune(cc, busybox):
    ok(cc("run", "--name", "done1", busybox, "true"))
    ok(cc("create", "--name", "done2", busybox, "true"))
    detached(cc, "--name", "alive", busybox, "sleep", "1000")
    assert len(ok(cc("prune")).split()) == 2
    assert ok(cc("ls", "-a", "--format", "json")).count('"name"') == 1


def test_ten_in_parallel(cc, busybox):
    names = [f"par{i}" for i in range(10)]
    script = "i=0; while :; do i=$((i+1)); echo {n}-$i; sleep 0.3; done"

    def launch(name: str):
        return cc("run", "-d", "--name", name, busybox, "sh", "-c", script.format(n=name),
                  timeout=LONG)  # fmt: skip

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(launch, names))
    assert [r.returncode for r in results] == [0] * 10, [r.stderr for r in results]
    listed = json.loads(ok(cc("ls", "--format", "json")))
    assert sorted(c["name"] for c in listed) == names
    assert {c["state"] for c in listed} == {"running"}
    for name in names:
        out = wait_for_log(cc, name, f"{name}-3\n".encode(), timeout=LONG)
        lines = out.decode().splitlines()
        assert all(line.startswith(f"{name}-") for line in lines), lines

    with ThreadPoolExecutor(10) as pool:
        removed = list(pool.map(lambda n: cc("rm", "-f", n, timeout=LONG), names))
    assert [r.returncode for r in removed] == [0] * 10, [r.stderr for r in removed]
    assert cc("ls", "-a", "-q").stdout == b""


GATED = "while [ ! -e /tmp/go ]; do sleep 0.2; done; "  # waits for `exec ... touch /tmp/go`


def test_logs_tail_and_follow(cc, busybox):
    script = GATED.replace("/tmp/go", "/tmp/go1") + "for i in 1 2 3 4 5; do echo line$i; done; "
    detached(cc, "--name", "talker", busybox, "sh", "-c", script + GATED + "echo after")
    ok(cc("exec", "talker", "touch", "/tmp/go1"))
    wait_for_log(cc, "talker", b"line5\n")
    tail = cc("logs", "-n", "2", "talker")
    assert (tail.returncode, tail.stdout, tail.stderr) == (0, b"line4\nline5\n", b"")
    assert cc("logs", "-n", "0", "talker").stdout == b""

    follow = cc.popen("logs", "-f", "-n", "1", "talker", stdout=subprocess.PIPE)
    assert follow.stdout.readline() == b"line5\n"
    # Output written after following began. Detached: the container ends as
    # soon as it sees the file, which may be before `touch` itself has ended,
    # and then it is killed with the VM (137), as Docker kills an exec's
    # process when the container's main one ends.
    ok(cc("exec", "-d", "talker", "touch", "/tmp/go"))
    assert follow.stdout.read() == b"after\n"  # then -f ends with the container
    assert follow.wait(LONG) == 0


def test_a_client_that_stops_reading_does_not_stall_the_container(cc, busybox):
    cid = detached(cc, busybox, "sh", "-c", GATED + "yes 0123456789 | head -c 29999992; echo end")
    stuck = control.session(cid, "attach")  # attached, and never reads
    try:
        ok(cc("exec", cid, "touch", "/tmp/go"))  # the output starts once it is attached
        assert ok(cc("wait", cid, timeout=LONG)).strip() == "0"
        assert cc("logs", "-n", "1", cid).stdout == b"end\n"
    finally:
        stuck.close()
