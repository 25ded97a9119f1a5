"""Verbs of Docker habits (issue 13): update, system df, system prune, events; real VMs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from vm_fixtures import ok

pytestmark = pytest.mark.vm


def one_line_125(result, needle: str) -> None:
    err = result.stderr.decode()
    assert result.returncode == 125, err
    assert err.count("\n") == 1 and needle in err, err


def host_config(cc, ref: str) -> dict:
    return json.loads(ok(cc("inspect", ref)))[0]["HostConfig"]


def mem_total_kib(cc, ref: str) -> int:
    line = ok(cc("exec", ref, "grep", "MemTotal", "/proc/meminfo"))
    return int(line.split()[1])


def test_update_shrinks_a_running_vm_through_its_balloon(cc, busybox):
    cid = ok(cc("run", "-d", "--no-template", "--memory", "256m", busybox, "sleep", "1000"))
    cid = cid.strip()
    before = mem_total_kib(cc, cid)
    ok(cc("update", "--memory", "160m", cid))
    deadline = time.monotonic() + 120
    while (now := mem_total_kib(cc, cid)) > 170 * 1024 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert now <= 170 * 1024 < before, (before, now)
    assert host_config(cc, cid)["Memory"] == 160 << 20
    one_line_125(cc("update", "--memory", "512m", cid), "never grow")
    assert host_config(cc, cid)["Memory"] == 160 << 20  # a refused update changes nothing


def test_update_cpus_of_a_running_vm_is_a_quota_never_more_vcpus(cc, busybox):
    cid = ok(cc("run", "-d", "--cpus", "1", busybox, "sleep", "1000")).strip()
    one_line_125(cc("update", "--cpus", "2", cid), "vCPUs")
    pid = json.loads(ok(cc("inspect", cid)))[0]["Cocoon"]["VmPid"]
    result = cc("update", "--cpus", "0.25", cid)
    if result.returncode == 125 and b"cgroup" in result.stderr:
        pytest.skip("no writable cgroup cpu controller on this host")
    ok(result)
    assert host_config(cc, cid)["NanoCpus"] == 25 * 10**7
    [group] = [g for g in Path("/sys/fs/cgroup").glob(f"**/cocoon/vm-{pid}") if g.is_dir()]
    quota = group / "cpu.max" if (group / "cpu.max").exists() else group / "cpu.cfs_quota_us"
    assert quota.read_text().split()[0] == "25000"


def test_update_of_a_stopped_container_takes_effect_at_its_start(cc, busybox):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 host CPUs")
    cid = ok(cc("create", "--cpus", "1", busybox, "grep", "-c", "^processor", "/proc/cpuinfo"))
    cid = cid.strip()
    ok(cc("update", "--cpus", "2", "--memory", "128m", cid))
    assert host_config(cc, cid)["Memory"] == 128 << 20
    assert ok(cc("start", "-a", cid)).strip() == "2"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("update", "CID"), "--memory or --cpus"),
        (("update", "--cpus", "0", "CID"), "--cpus"),
        (("update", "--memory", "1m", "CID"), "at least 64m"),
        (("update", "--memory", "lots", "CID"), "invalid size"),
        (("update", "--cpus", "1", "nobody"), "no such container"),
    ],
)
def test_bad_update_is_one_line_125(cc, busybox, args, needle):
    cid = ok(cc("create", busybox, "true")).strip()
    before = (cc.state / "containers" / cid / "container.json").read_bytes()
    one_line_125(cc(*[cid if a == "CID" else a for a in args]), needle)
    assert (cc.state / "containers" / cid / "container.json").read_bytes() == before
