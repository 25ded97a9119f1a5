"""Container networking end to end: real VMs, every bridge, TAP and NAT table in a test netns.

cocoon runs under ``ip netns exec``, so what it creates lives in a namespace
the test made and vanishes with it; traffic only goes to addresses there.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

HTTPD = ["httpd", "-f", "-p", "80", "-h", "/etc"]  # serves the container's /etc/hosts
LONG = 600


class InNetns:
    """The cocoon command, run inside the test's network namespace."""

    def __init__(self, cocoon, netns: str) -> None:
        self.cocoon, self.netns = cocoon, netns
        self.env = {k: v for k, v in cocoon.env.items() if k != "COCOON_NETWORK"}

    def __call__(self, *args: str, timeout: float = LONG) -> subprocess.CompletedProcess:
        argv = ["ip", "netns", "exec", self.netns, *self.cocoon.argv(*args)]
        return subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout)

    def sh(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        argv = ("ip", "netns", "exec", self.netns, *argv)
        return subprocess.run(argv, capture_output=True, timeout=timeout)

    def fetch(self, url: str, timeout: float = 60) -> str:
        """busybox wget from the netns, retried while the server starts.

        (busybox 1.35's wget crashes with -T, hence the subprocess timeout.)
        """
        deadline = time.monotonic() + timeout
        while True:
            got = self.sh("busybox", "wget", "-qO-", url)
            if got.returncode == 0 or time.monotonic() > deadline:
                return ok(got)
            time.sleep(0.3)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    return result.stdout.decode()


@pytest.fixture
def net(cocoon, netns):
    cc = InNetns(cocoon, netns)
    yield cc
    ids = cocoon("ls", "-a", "-q").stdout.decode().split()
    if ids:
        cc("rm", "-f", *ids)


def ip_of(net: InNetns, ref: str) -> str:
    return json.loads(ok(net("inspect", ref)))[0]["NetworkSettings"]["IPAddress"]


def leases(cocoon) -> dict:
    data = json.loads((cocoon.state / "networks" / "networks.json").read_text())
    return {name: n["leases"] for name, n in data.items()}


def test_two_containers_reach_each_other_by_ip_and_name(net, busybox):
    ok(net("run", "-d", "--name", "alpha", busybox, *HTTPD))
    ok(net("run", "-d", "--name", "beta", busybox, *HTTPD))
    a, b = ip_of(net, "alpha"), ip_of(net, "beta")
    assert a != b and a.startswith("192.168.64.") and b.startswith("192.168.64.")

    for src, dst, dst_ip in (("beta", "alpha", a), ("alpha", "beta", b)):
        for target in (dst_ip, dst):  # alpha learns beta's name when beta starts
            ok(net("exec", src, "ping", "-c", "1", "-W", "5", target))
            hosts = ok(net("exec", src, "wget", "-qO-", f"http://{target}/hosts"))
            assert f"{dst_ip}\t" in hosts and dst in hosts


def test_httpd_by_ip_and_published_port_then_cleaned_up(net, cocoon, busybox):
    cid = ok(net("run", "-d", "--name", "web", "-p", "127.0.0.1:8080:80", busybox, *HTTPD)).strip()
    info = json.loads(ok(net("inspect", "web")))[0]
    assert info["Cocoon"]["NetworkMode"] == "bridge"
    ports = info["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    ip = info["NetworkSettings"]["IPAddress"]
    assert "web" in net.fetch(f"http://{ip}/hosts")
    assert "web" in net.fetch("http://127.0.0.1:8080/hosts")
    tap = f"cc{cid[:12]}"
    assert tap in ok(net.sh("ip", "-br", "link"))

    ok(net("rm", "-f", "web"))
    assert tap not in ok(net.sh("ip", "-br", "link"))
    assert net.sh("busybox", "wget", "-qO-", "http://127.0.0.1:8080/").returncode != 0
    assert ip not in leases(cocoon)["cocoon0"]
    ruleset = ok(net.sh("nft", "list", "table", "ip", "cocoon"))
    assert "masquerade" in ruleset and "192.168.64.0/24" in ruleset


def test_network_none_has_only_loopback(net, busybox):
    out = ok(net("run", "--rm", "--network", "none", busybox, "ls", "/sys/class/net"))
    assert out.split() == ["lo"]


def test_concurrent_runs_get_distinct_addresses_and_ip_is_honoured(net, busybox):
    def start(i: int) -> str:
        return ok(net("run", "-d", "--name", f"n{i}", busybox, "sleep", "600")).strip()

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(start, range(3)))
    ips = {ip_of(net, f"n{i}") for i in range(3)}
    assert len(ips) == 3
    ok(net("run", "-d", "--name", "fixed", "--ip", "192.168.64.200", busybox, "sleep", "600"))
    assert ip_of(net, "fixed") == "192.168.64.200"
    taken = net("run", "--rm", "--ip", "192.168.64.200", busybox, "true")
    assert taken.returncode == 125 and b"already in use" in taken.stderr


def test_user_mode_with_published_port(net, busybox):
    ok(net("run", "-d", "--name", "slirp", "--network", "user", "-p", "127.0.0.1:8081:80",
           busybox, *HTTPD))  # fmt: skip
    info = json.loads(ok(net("inspect", "slirp")))[0]
    assert info["Cocoon"]["NetworkMode"] == "user"
    assert info["NetworkSettings"]["IPAddress"] == "10.0.2.15"
    assert "slirp" in net.fetch("http://127.0.0.1:8081/hosts")
    assert "cocoon0" not in ok(net.sh("ip", "-br", "link"))  # no bridge needed


def test_network_commands_and_custom_subnet(net, cocoon, busybox):
    ok(net("network", "create", "--subnet", "10.77.0.0/24", "backend"))
    assert "backend" in ok(net("network", "ls"))
    out = ok(net("run", "--rm", "--network", "backend", "--add-host", "db:10.77.0.50",
                 "--dns", "10.77.0.1", busybox, "sh", "-c",
                 "ip -4 addr show eth0; cat /etc/hosts /etc/resolv.conf"))  # fmt: skip
    assert "inet 10.77.0.2/24" in out
    assert "10.77.0.50\tdb" in out and "nameserver 10.77.0.1" in out
    assert json.loads(ok(net("network", "inspect", "backend")))[0]["containers"] == {}
    ok(net("network", "rm", "backend"))
    assert "backend" not in ok(net("network", "ls"))
    ok(net("network", "teardown"))
    assert "cocoon" not in ok(net.sh("ip", "-br", "link"))
    assert ok(net.sh("nft", "list", "tables")).strip() == ""


def test_nothing_left_outside_the_netns(cocoon):
    """The host namespace never sees a cocoon bridge or TAP (the suite runs as root)."""
    links = Path("/sys/class/net")
    ours = [p.name for p in links.iterdir() if p.name.startswith(("cocoon", "cc"))]
    assert not ours, ours
    assert os.environ.get("COCOON_NETWORK") == "none"
