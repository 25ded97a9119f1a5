"""Memory templates end to end: clones of a saved VM, every one a real VM.

Each test turns templates on itself (COCOON_TEMPLATE=1) and reads cocoon's
``--debug`` lines to know whether a container was cloned or cold-booted.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from templated import BUILT, LONG, Templated, cloned, refusing_qemu, running_clones
from vm_fixtures import ok

from cocoon.vm import template as templates
from cocoon.vm.qmp import Qmp

pytestmark = pytest.mark.vm


def test_clone_runs_and_a_changed_input_makes_a_new_template(tc, busybox, tmp_path):
    first = tc("run", "--rm", "--memory", "200m", busybox, "echo", "hello")
    assert ok(first) == "hello\n"
    key = cloned(first)
    again = tc("run", "--rm", "--memory", "200m", busybox, "echo", "again")
    assert ok(again) == "again\n" and cloned(again) == key
    assert not BUILT.search(again.stderr)  # the saved one was reused

    # Another memory size is another shape.
    other = tc("run", "--rm", "--memory", "208m", busybox, "true")
    ok(other)
    assert cloned(other) != key

    # A different agent (bytes appended to the binary) is another input:
    # a new template is built on first need.
    agent = tmp_path / "cocoon-agent"
    shutil.copyfile(tc.env["COCOON_AGENT"], agent)
    with open(agent, "ab") as f:
        f.write(os.urandom(8))  # a new input on every run: the template cache outlives runs
    agent.chmod(0o755)
    changed = Templated(tc.cocoon, COCOON_AGENT=str(agent))
    rebuilt = changed("run", "--rm", "--memory", "200m", busybox, "echo", "rebuilt")
    assert ok(rebuilt) == "rebuilt\n"
    assert BUILT.search(rebuilt.stderr) and cloned(rebuilt) not in (key, cloned(other))


def test_guests_keep_time_with_the_tsc_not_jiffies(tc, busybox):
    """Under emulation on a busy host the guest kernel's own measurement of the
    TSC fails more often than not; it would then keep time in 10 ms jiffies,
    and a template built so would pass that to every clone."""
    clocksource = "cat /sys/devices/system/clocksource/clocksource0/current_clocksource"
    for args in (("--no-template",), (), ()):  # a cold boot, a template's build, a clone
        got = ok(tc("run", "--rm", *args, busybox, "sh", "-c", clocksource)).strip()
        assert got in ("tsc", "tsc-early", "kvm-clock"), got


def test_cold_boot_when_templates_are_off_or_do_not_fit(tc, busybox, tmp_path):
    off = tc("run", "--rm", "--no-template", busybox, "echo", "cold")
    assert ok(off) == "cold\n" and b"cold boot: templates are off" in off.stderr
    env_off = Templated(tc.cocoon, COCOON_TEMPLATE="0")("run", "--rm", busybox, "echo", "cold")
    assert ok(env_off) == "cold\n" and b"cold boot: templates are off" in env_off.stderr

    # A QEMU that cannot build a template (here one that refuses a file as
    # guest RAM) still runs the container, by a cold boot.
    lacking = refusing_qemu(tc, tmp_path, "*memory-backend-file*", "no file backend here")
    result = lacking("run", "--rm", "--memory", "216m", busybox, "echo", "fallback")
    assert ok(result) == "fallback\n"
    assert b"cold boot: no template" in result.stderr and b"no file backend here" in result.stderr
    # The failure is remembered: the next start does not try again.
    again = lacking("run", "--rm", "--memory", "216m", busybox, "echo", "fallback")
    assert ok(again) == "fallback\n" and b"building it failed" in again.stderr


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_a_clone_discarding_memory_cannot_corrupt_the_template(tc, busybox):
    """QEMU 7.2 discards a clone's memory by punching holes in the file its
    RAM maps, even privately: the template itself, zeroing memory under every
    other clone. The template's filesystem refuses that; nothing changes."""
    # The hole punch itself, as QEMU would do it, is refused.
    ok(tc("run", "--rm", busybox, "true"))
    key = cloned(tc("run", "--rm", busybox, "true"))
    ram = templates.folder() / key / "ram"
    assert _punch_hole(ram) == errno.EOPNOTSUPP

    before = _sha256(ram)
    a = ok(tc("run", "-d", "--name", "a", busybox, "sleep", "600")).strip()
    b = ok(tc("run", "-d", "--name", "b", busybox, "sleep", "600")).strip()
    assert running_clones(tc.cocoon.state).keys() == {a, b}
    # Clone a uses memory, frees it, and then has its balloon inflated by
    # 1 MiB: QEMU discards every page of it (each failed discard is one line
    # on QEMU's stderr, which nobody reads while it runs: kept small).
    ok(tc("exec", "a", "sh", "-c", "dd if=/dev/zero of=/dev/shm/x bs=1M count=64; rm /dev/shm/x"))
    sock = tc.cocoon.run_dir / a[:12] / "vmm.sock"
    with Qmp(sock) as qmp:
        size = qmp.execute("query-balloon")["actual"]
        qmp.execute("balloon", value=size - (1 << 20))
        deadline = time.monotonic() + 120
        while qmp.execute("query-balloon")["actual"] > size - (1 << 20):
            assert time.monotonic() < deadline, "the guest never inflated its balloon"
            time.sleep(0.2)
    assert _sha256(ram) == before
    # Clone b still works from intact memory, and so does a new clone.
    assert ok(tc("exec", "b", "sh", "-c", "echo $((6*7))")) == "42\n"
    fresh = tc("run", "--rm", busybox, "sh", "-c", "echo $((6*7))")
    assert ok(fresh) == "42\n" and cloned(fresh) == key


def _punch_hole(path: Path) -> int:
    """errno of FALLOC_FL_PUNCH_HOLE|KEEP_SIZE on the first page of ``path`` (0 = it worked)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDWR)
    try:
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
        if libc.fallocate(fd, 0x02 | 0x01, 0, 4096) == 0:
            return 0
        return ctypes.get_errno()
    finally:
        os.close(fd)


def test_two_clones_have_different_randomness(tc, busybox):
    script = "cat /proc/sys/kernel/random/uuid; head -c 32 /dev/urandom | od -An -tx1"
    ok(tc("run", "--rm", busybox, "true"))  # the template exists before either
    one = tc("run", "--rm", busybox, "sh", "-c", script)
    two = tc("run", "--rm", busybox, "sh", "-c", script)
    assert cloned(one) == cloned(two)
    a, b = ok(one).split("\n", 1), ok(two).split("\n", 1)
    assert a[0] != b[0] and a[1] != b[1]


def test_hostname_network_and_clock_after_restore(cocoon, netns, busybox):
    tc = Templated(cocoon, netns)
    try:
        ok(tc("run", "--rm", busybox, "true"))
        time.sleep(3)  # the template's clock is now behind the host's
        cid = ok(tc("run", "-d", "--name", "web", "--hostname", "restored", busybox,
                    "httpd", "-f", "-p", "80", "-h", "/etc")).strip()  # fmt: skip
        assert cid in running_clones(cocoon.state)
        info = json.loads(ok(tc("inspect", "web")))[0]["NetworkSettings"]
        script = "hostname; cat /etc/hostname; date +%s; cat /sys/class/net/eth0/address"
        host_before = time.time()
        out = ok(tc("exec", "web", "sh", "-c", script)).split()
        assert out[:2] == ["restored", "restored"]
        assert host_before - 2 <= int(out[2]) <= time.time() + 2
        mac = out[3]
        assert mac != templates.TEMPLATE_MAC and mac == info["MacAddress"]
        ip = info["IPAddress"]
        deadline = time.monotonic() + 60
        while (got := tc.sh("busybox", "wget", "-qO-", f"http://{ip}/hostname")).returncode:
            assert time.monotonic() < deadline, got.stderr.decode()
            time.sleep(0.3)
        assert got.stdout.decode() == "restored\n"
    finally:
        ids = cocoon("ls", "-a", "-q").stdout.decode().split()
        if ids:
            tc("rm", "-f", *ids)


def test_ten_clones_at_once_keep_to_themselves(tc, busybox):
    ok(tc("run", "--rm", busybox, "true"))

    def launch(i: int) -> subprocess.CompletedProcess:
        script = f"echo mine{i} > /secret; cat /proc/sys/kernel/random/uuid > /uuid; sleep 600"
        return tc(
            "run", "-d", "--name", f"c{i}", "--hostname", f"clone{i}", busybox, "sh", "-c", script
        )

    with ThreadPoolExecutor(10) as pool:
        started = [ok(r).strip() for r in pool.map(launch, range(10))]
    clones = running_clones(tc.cocoon.state)
    assert all(cid in clones for cid in started) and len(set(clones.values())) == 1
    uuids = set()
    for i in range(10):
        deadline = time.monotonic() + 120
        while True:
            got = tc("exec", f"c{i}", "sh", "-c", "hostname; cat /secret /uuid")
            if got.returncode == 0 and len(got.stdout.split()) == 3:
                break
            assert time.monotonic() < deadline, got.stderr.decode()
            time.sleep(0.3)
        name, secret, uuid = got.stdout.decode().split()
        assert (name, secret) == (f"clone{i}", f"mine{i}")
        uuids.add(uuid)
    assert len(uuids) == 10
    with contextlib.suppress(FileNotFoundError):
        assert not list(tc.cocoon.run_dir.glob("tpl-*"))


@pytest.mark.skipif(os.geteuid() != 0, reason="templates live in a ramfs, which needs root")
def test_containers_with_volumes_are_clones_that_see_only_their_own(tc, busybox, tmp_path):
    """Volume disks and 9p shares are slots of the template: each clone has
    its own volume and folder behind them, read-only where it asked."""
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
        (folder / "name").write_text(f"{folder.name}\n")
    script = "cat /bind/name; echo {0} > /vol/mine; echo {0} > /bind/written; cat /vol/mine"
    try:
        # Written without a sync by a --rm run: still there for the next.
        first = tc("run", "--rm", "-v", f"{one}:/bind", "-v", "tpl-one:/vol", busybox,
                   "sh", "-c", "echo kept > /vol/early")  # fmt: skip
        ok(first)
        key = cloned(first)
        a = tc("run", "-d", "--name", "a", "-v", f"{one}:/bind", "-v", "tpl-one:/vol",
               busybox, "sh", "-c", script.format("a") + "; sleep 600")  # fmt: skip
        b = tc("run", "-d", "--name", "b", "-v", f"{two}:/bind", "-v", "tpl-two:/vol",
               busybox, "sh", "-c", script.format("b") + "; sleep 600")  # fmt: skip
        clones = running_clones(tc.cocoon.state)
        assert clones[ok(a).strip()] == clones[ok(b).strip()] == key
        for name, folder in (("a", one), ("b", two)):
            deadline = time.monotonic() + 120
            while not (folder / "written").exists():
                assert time.monotonic() < deadline, tc("logs", name).stderr.decode()
                time.sleep(0.3)
            logs = ok(tc("logs", name)).split()
            assert logs == [folder.name, name]
            assert (folder / "written").read_text() == f"{name}\n"
            seen = ok(tc("exec", name, "sh", "-c", "ls /bind /vol"))
            assert "name" in seen and "mine" in seen
        ok(tc("rm", "-f", "a", "b", timeout=LONG))

        # A read-only volume behind a writable slot: its data, and no writes.
        check = "cat /vol/early /vol/mine /bind/name; echo x > /vol/x; echo x > /bind/x"
        ro = tc("run", "--rm", "-v", "tpl-one:/vol:ro", "-v", f"{two}:/bind:ro", busybox,
                "sh", "-c", check)  # fmt: skip
        assert ro.stdout == b"kept\na\ntwo\n" and ro.stderr.count(b"Read-only file system") == 2
        assert ro.returncode != 0 and cloned(ro) == key  # read-only is not part of the shape
        assert not (two / "x").exists()
    finally:
        tc("rm", "-f", "a", "b", timeout=LONG)
        tc("volume", "rm", "-f", "tpl-one", "tpl-two")


@pytest.mark.skipif(os.geteuid() != 0, reason="templates live in a ramfs, which needs root")
def test_system_warm_builds_what_default_runs_start_from(tc, busybox, tmp_path):
    # A new agent: nothing of it is built yet, whatever ran before.
    agent = tmp_path / "cocoon-agent"
    shutil.copyfile(tc.env["COCOON_AGENT"], agent)
    with open(agent, "ab") as f:
        f.write(os.urandom(8))
    agent.chmod(0o755)
    fresh = Templated(tc.cocoon, COCOON_AGENT=str(agent))
    warmed = ok(fresh("system", "warm"))
    shapes = dict(
        re.findall(r"template ([0-9a-f]{16}) \(.*, (no mounts|one bind mount)\): built", warmed)
    )
    assert sorted(shapes.values()) == ["no mounts", "one bind mount"], warmed
    assert ok(fresh("system", "warm")).count("already built") == 2

    # A new container starts from its image's rooted template (built by the
    # image's first run); one whose disk was used already, from the warmed
    # template of its shape, with nothing to build.
    for args, what in (((), "no mounts"), (("-v", f"{tmp_path}:/src"), "one bind mount")):
        name = what.replace(" ", "-")
        cid = ok(fresh("run", "-d", "--name", name, *args, busybox, "sleep", "600")).strip()
        assert shapes.get(running_clones(tc.cocoon.state)[cid]) is None
        ok(fresh("stop", "-t", "1", name, timeout=LONG))
        ok(fresh("start", name))
        assert shapes[running_clones(tc.cocoon.state)[cid]] == what


def test_a_container_on_two_networks_is_cloned_from_a_two_card_shape(cocoon, netns, busybox):
    tc = Templated(cocoon, netns)
    try:
        ok(tc("network", "create", "--subnet", "10.83.0.0/24", "second"))
        one = cloned(tc("run", "--rm", busybox, "true"))
        ok(tc("run", "-d", "--name", "peer", "--network", "second", busybox, "sleep", "600"))
        two = tc("run", "--rm", "--network", "cocoon0", "--network", "second", busybox,
                 "sh", "-c", "cat /sys/class/net/eth1/address; ping -c 1 -W 5 peer")  # fmt: skip
        assert cloned(two) != one and b"(2 network cards)" in two.stderr
        assert ok(two).startswith("02:42:0a:53:00:")  # the container's MAC, not the template's
    finally:
        ids = cocoon("ls", "-a", "-q").stdout.decode().split()
        if ids:
            tc("rm", "-f", *ids)
        tc("network", "rm", "second")
