"""run/create flags of Docker habits (issue 13): resolver, /dev/shm, CPUs, platform; real VMs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from vm_fixtures import ok, one_line_125, records

pytestmark = pytest.mark.vm


def test_dns_search_options_and_shm_size_reach_the_guest(cc, busybox):
    script = "cat /etc/resolv.conf; echo; df -k /dev/shm | tail -1"
    out = ok(cc("run", "--rm", "--dns-search", "example.com", "--dns-search", "corp",
                "--dns-option", "ndots:2", "--dns-option", "edns0", "--shm-size", "8m",
                busybox, "sh", "-c", script))  # fmt: skip
    resolv, _, shm = out.partition("\n\n")
    assert "search example.com corp\n" in resolv + "\n" and "options ndots:2 edns0" in resolv, out
    assert shm.split()[1] == str(8 * 1024), out  # 1K-blocks of the tmpfs


def test_without_resolver_flags_the_image_file_stays(cc, busybox):
    out = ok(cc("run", "--rm", busybox, "sh", "-c", "cat /etc/resolv.conf 2>&1; df -k /dev/shm"))
    assert "search" not in out and "options" not in out, out


def test_create_keeps_the_flags_for_start(cc, busybox):
    cid = ok(cc("create", "--dns-option", "ndots:3", "--shm-size", "16m", "--cpus", "0.5",
                "--platform", "linux/amd64", busybox, "sh", "-c",
                "grep options /etc/resolv.conf; df -k /dev/shm | tail -1"))  # fmt: skip
    [attrs] = json.loads(ok(cc("inspect", cid.strip())))
    host = attrs["HostConfig"]
    assert (host["NanoCpus"], host["ShmSize"], host["DnsOptions"]) == (5 * 10**8, 16 << 20,
                                                                        ["ndots:3"])  # fmt: skip
    out = ok(cc("start", "-a", cid.strip()))
    assert "options ndots:3" in out and " 16384 " in out, out


def cgroup_cpu_writable() -> bool:
    """Whether this host lets root give a process a CPU quota (v2 cpu.max or v1 cfs)."""
    root = Path("/sys/fs/cgroup")
    v2 = root / "cgroup.subtree_control"
    if v2.exists() and "cpu" in v2.read_text().split():
        return os.access(root, os.W_OK)
    return (root / "cpu" / "cpu.cfs_quota_us").exists() and os.access(root / "cpu", os.W_OK)


def test_fractional_cpus_round_up_and_become_a_quota(cc, busybox):
    cid = ok(cc("run", "-d", "--cpus", "0.5", busybox, "sleep", "1000")).strip()
    [attrs] = json.loads(ok(cc("inspect", cid)))
    assert attrs["Cocoon"]["Cpus"] == 1 and attrs["HostConfig"]["NanoCpus"] == 5 * 10**8
    nproc = ok(cc("exec", cid, "grep", "-c", "^processor", "/proc/cpuinfo"))
    assert nproc.strip() == "1"
    pid = attrs["Cocoon"]["VmPid"]
    if not cgroup_cpu_writable():
        pytest.skip("no writable cgroup cpu controller on this host")
    [group] = [g for g in Path("/sys/fs/cgroup").glob(f"**/cocoon/vm-{pid}") if g.is_dir()]
    if (group / "cpu.max").exists():
        assert (group / "cpu.max").read_text().split() == ["50000", "100000"]
    else:
        assert (group / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert str(pid) in (group / "cgroup.procs").read_text().split()
    ok(cc("rm", "-f", cid))
    assert not group.exists()  # the group goes with its VM


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "--dns-option", "ndots 2", "IMG", "true"), "--dns-option"),
        (("run", "--dns-option", "a\nnameserver 1.2.3.4", "IMG", "true"), "--dns-option"),
        (("run", "--dns-search", "bad_domain", "IMG", "true"), "--dns-search"),
        (("run", "--shm-size", "lots", "IMG", "true"), "invalid size"),
        (("run", "--shm-size", "1", "IMG", "true"), "--shm-size"),
        (("run", "--cpus", "0", "IMG", "true"), "--cpus"),
        (("run", "--cpus", "-1", "IMG", "true"), "--cpus"),
        (("run", "--cpus", "0.001", "IMG", "true"), "0.01 or more"),
        (("run", "--cpus", "nan", "IMG", "true"), "--cpus"),
        (("run", "--cpus", "many", "IMG", "true"), "invalid float"),
        (("create", "--cpus", "4096", "IMG"), "--cpus"),
        (("run", "--platform", "linux/arm64", "IMG", "true"), "--platform"),
        (("create", "--platform", "linux", "IMG"), "--platform"),
        (("run", "--network", "none", "--network-alias", "db", "IMG", "true"), "bridge"),
        (("run", "--network-alias", "bad_name", "IMG", "true"), "--network-alias"),
    ],
)
def test_bad_flags_are_one_line_125_and_leave_nothing(cc, busybox, args, needle):
    before = records(cc)
    one_line_125(cc(*[busybox if a == "IMG" else a for a in args]), needle)
    assert records(cc) == before and not cc.vms()


def test_the_library_takes_docker_py_names(cc, busybox):
    import cocoon

    out = cocoon.Client().containers.run(
        busybox, "sh -c 'cat /etc/resolv.conf; df -k /dev/shm'", remove=True,
        dns_search=["example.com"], dns_opt=["ndots:2"], shm_size=4 << 20, cpus=0.5,
    )  # fmt: skip
    assert b"search example.com\noptions ndots:2\n" in out and b" 4096 " in out, out
