"""Container networking end to end: real VMs, every bridge, TAP and NAT table in a test netns.

cocoon runs under ``ip netns exec``, so what it creates lives in a namespace
the test made and vanishes with it; traffic only goes to addresses there.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from netns import new_netns
from oci import Layer, busybox_layer
from vm_fixtures import ok

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


def test_network_alias_resolves_for_peers(net, busybox):
    ok(net("run", "-d", "--name", "db1", "--network-alias", "db", "--network-alias", "store",
           busybox, *HTTPD))  # fmt: skip
    db_ip = ip_of(net, "db1")
    for alias in ("db", "store"):  # a peer made later learns the aliases from the leases
        hosts = ok(net("run", "--rm", busybox, "wget", "-qO-", f"http://{alias}/hosts"))
        assert f"{db_ip}\t" in hosts, hosts
    ok(net("run", "-d", "--name", "app", busybox, "sleep", "1000"))
    ok(net("exec", "app", "ping", "-c", "1", "-W", "5", "db"))


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
    refused(net, "http://127.0.0.1:8080/")
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
    assert (taken.returncode, taken.stderr) == (
        125,
        b"cocoon: address 192.168.64.200 is already in use by fixed\n",
    )


def refused(net: InNetns, url: str) -> None:
    got = net.sh("busybox", "wget", "-qO-", url)
    host = url.split("/")[2].split(":")[0]
    assert got.returncode == 1
    said = got.stderr.decode()
    assert said == f"wget: can't connect to remote host ({host}): Connection refused\n"


UDP_ECHO = Path(__file__).with_name("udp-echo.c")
PUBLIC = "10.99.0.1"  # an address of the test's netns that is not loopback


@pytest.fixture(scope="module")
def echo_image(cocoon, busybox, tmp_path_factory) -> str:
    """busybox plus a UDP echo server (busybox has none)."""
    tmp = tmp_path_factory.mktemp("udp")
    binary = tmp / "udp-echo"
    subprocess.run(["musl-gcc", "-static", "-Os", "-o", str(binary), str(UDP_ECHO)], check=True)
    layers = [busybox_layer(), Layer().file("bin/udp-echo", binary.read_bytes(), 0o755)]
    cocoon.load_layout(tmp, layers, "localhost/udp-echo:1")
    return "localhost/udp-echo:1"


@pytest.fixture
def public(net) -> str:
    """A non-loopback address in the netns: published ports must answer there too."""
    ok(net.sh("ip", "addr", "add", f"{PUBLIC}/32", "dev", "lo"))
    return PUBLIC


UDP_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:  # datagrams sent before the server runs are lost
    s.sendto(b"ping over udp", (sys.argv[1], int(sys.argv[2])))
    try:
        sys.stdout.write(s.recv(100).decode())
        break
    except OSError:
        continue
"""


def udp_echo(net: InNetns, host: str, port: int) -> str:
    return ok(net.sh("python3", "-c", UDP_CLIENT, host, str(port), timeout=90))


SERVE = f"udp-echo 5353 & {' '.join(HTTPD)}"


def test_published_ports_honour_the_host_ip_and_relay_udp(net, public, echo_image):
    ok(net("run", "-d", "--name", "pub", "-p", "8080:80", "-p", f"{public}:8081:80",
           "-p", "5353:5353/udp", echo_image, "sh", "-c", SERVE))  # fmt: skip
    ports = json.loads(ok(net("inspect", "pub")))[0]["NetworkSettings"]["Ports"]
    assert ports == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"},
                   {"HostIp": public, "HostPort": "8081"}],
        "5353/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}],
    }  # fmt: skip
    # 0.0.0.0: every address of the host, not only loopback.
    assert "pub" in net.fetch(f"http://{public}:8080/hosts")
    assert "pub" in net.fetch("http://127.0.0.1:8080/hosts")
    # A host IP: that address only.
    assert "pub" in net.fetch(f"http://{public}:8081/hosts")
    refused(net, "http://127.0.0.1:8081/hosts")
    assert udp_echo(net, public, 5353) == "ping over udp"
    assert udp_echo(net, "127.0.0.1", 5353) == "ping over udp"


def test_user_mode_forwards_tcp_and_udp_on_the_host_ip(net, public, echo_image):
    ok(net("run", "-d", "--name", "slirp", "--network", "user", "-p", f"{public}:8082:80",
           "-p", "5354:5353/udp", echo_image, "sh", "-c", SERVE))  # fmt: skip
    info = json.loads(ok(net("inspect", "slirp")))[0]
    assert info["Cocoon"]["NetworkMode"] == "user"
    assert info["NetworkSettings"]["IPAddress"] == "10.0.2.15"
    assert "slirp" in net.fetch(f"http://{public}:8082/hosts")
    refused(net, "http://127.0.0.1:8082/hosts")
    assert udp_echo(net, "127.0.0.1", 5354) == "ping over udp"
    assert "cocoon0" not in ok(net.sh("ip", "-br", "link"))  # no bridge needed


ADDRESS_SERVER = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.client_address[0].encode())
http.server.HTTPServer((sys.argv[1], 80), Handler).serve_forever()
"""


def test_outbound_nat_forwarding_and_lease_across_restart(net, cocoon, busybox):
    """A container reaches a server in another netns, masqueraded as the host's address.

    The server's netns has no route back to the containers' subnet: only NAT
    makes the answer arrive. Forwarding starts off, as on a fresh host.
    """
    forwarding = ("cat", "/proc/sys/net/ipv4/ip_forward")
    ok(net.sh("sysctl", "-qw", "net.ipv4.ip_forward=0"))
    with new_netns("out") as outside:
        ok(net.sh("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1",
                  "netns", outside))  # fmt: skip
        ok(net.sh("ip", "addr", "add", "10.200.0.1/24", "dev", "up0"))
        ok(net.sh("ip", "link", "set", "up0", "up"))
        there = InNetns(cocoon, outside)
        ok(there.sh("ip", "addr", "add", "10.200.0.2/24", "dev", "up1"))
        ok(there.sh("ip", "link", "set", "up1", "up"))
        server = subprocess.Popen(["ip", "netns", "exec", outside, "python3", "-c",
                                   ADDRESS_SERVER, "10.200.0.2"])  # fmt: skip

        ok(net("run", "-d", "--name", "out", busybox, "sleep", "600"))
        assert ok(net.sh(*forwarding)) == "1\n"
        deadline = time.monotonic() + 60
        while (seen := net("exec", "out", "wget", "-qO-", "http://10.200.0.2/")).returncode:
            assert time.monotonic() < deadline, seen.stderr.decode()
            time.sleep(0.5)
        assert seen.stdout == b"10.200.0.1"  # the host's side, not the container's address
    server.wait(30)  # killed with its netns

    ip = ip_of(net, "out")
    ok(net("stop", "-t", "1", "out"))
    ok(net("run", "-d", "--name", "next", busybox, "sleep", "600"))  # takes the next free one
    ok(net("start", "out"))
    assert ip_of(net, "out") == ip != ip_of(net, "next")
    assert f"inet {ip}/24" in ok(net("exec", "out", "ip", "-4", "addr", "show", "eth0"))
    assert leases(cocoon)["cocoon0"][ip]["name"] == "out"

    ok(net("rm", "-f", "out", "next"))
    ok(net("system", "teardown"))
    assert "cocoon" not in ok(net.sh("ip", "-br", "link"))
    assert ok(net.sh("nft", "list", "tables")) == ""
    assert ok(net.sh(*forwarding)) == "0\n"  # cocoon switched it on, so it switches it off


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
