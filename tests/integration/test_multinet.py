"""A container on several networks: a card per network, peers on each by name.

Everything runs under ``ip netns exec`` (see test_network.py): bridges, TAPs
and container addresses live in the test's namespace; no traffic leaves it.
"""

from __future__ import annotations

import json

import pytest
from test_network import LONG, InNetns, leases
from vm_fixtures import ok

pytestmark = pytest.mark.vm

SLEEP = ["sleep", str(LONG)]


@pytest.fixture
def nets(cocoon, netns):
    cc = InNetns(cocoon, netns)
    ok(cc("network", "create", "--subnet", "10.81.0.0/24", "front"))
    ok(cc("network", "create", "--subnet", "10.82.0.0/24", "back"))
    yield cc
    ids = cocoon("ls", "-a", "-q").stdout.decode().split()
    if ids:
        cc("rm", "-f", *ids)
    cc("network", "rm", "front", "back")


def networks_of(cc: InNetns, ref: str) -> dict:
    return json.loads(ok(cc("inspect", ref)))[0]["NetworkSettings"]["Networks"]


def test_a_container_on_two_networks_reaches_a_peer_on_each_by_name(nets, busybox):
    ok(nets("run", "-d", "--name", "web", "--network", "front", busybox, *SLEEP))
    ok(nets("run", "-d", "--name", "db", "--network", "back", busybox, *SLEEP))
    ok(nets("run", "-d", "--name", "app", "--network", "front", "--network", "back",
            busybox, *SLEEP))  # fmt: skip
    cards = networks_of(nets, "app")
    assert set(cards) == {"front", "back"}
    assert cards["front"]["IPAddress"].startswith("10.81.0.")
    assert cards["back"]["IPAddress"].startswith("10.82.0.")
    assert cards["front"]["MacAddress"] != cards["back"]["MacAddress"]
    for peer in ("web", "db"):
        ok(nets("exec", "app", "ping", "-c", "1", "-W", "5", peer))
    # Each card has its own network's address; the default route is the first's.
    addrs = ok(nets("exec", "app", "ip", "-4", "addr"))
    assert cards["front"]["IPAddress"] in addrs and cards["back"]["IPAddress"] in addrs
    route = ok(nets("exec", "app", "ip", "route"))
    assert "default via 10.81.0.1" in route and "via 10.82.0.1" not in route
    # Peers learned the newcomer's name on their own network.
    ok(nets("exec", "web", "ping", "-c", "1", "-W", "5", "app"))
    ok(nets("exec", "db", "ping", "-c", "1", "-W", "5", "app"))


def test_connect_and_disconnect_change_a_created_containers_next_boot(nets, busybox):
    ok(nets("run", "-d", "--name", "db", "--network", "back", busybox, *SLEEP))
    ok(nets("create", "--name", "app", "--network", "front", busybox, *SLEEP))
    ok(nets("network", "connect", "--alias", "api", "back", "app"))
    assert set(networks_of(nets, "app")) == {"front", "back"}
    ok(nets("start", "app"))
    ok(nets("exec", "app", "ping", "-c", "1", "-W", "5", "db"))
    ok(nets("exec", "db", "ping", "-c", "1", "-W", "5", "api"))

    # A running VM gets no new card.
    got = nets("network", "connect", "cocoon0", "app")
    assert got.returncode == 125, got
    assert b"cocoon cannot add a network card to a running VM; stop it first" in got.stderr
    assert set(networks_of(nets, "app")) == {"front", "back"}

    ok(nets("stop", "-t", "0", "app"))
    ok(nets("network", "disconnect", "back", "app"))
    assert set(networks_of(nets, "app")) == {"front"}
    assert all(lease["name"] != "app" for lease in leases(nets.cocoon)["back"].values())
    ok(nets("start", "app"))
    assert "10.82.0." not in ok(nets("exec", "app", "ip", "-4", "addr"))
    got = nets("network", "disconnect", "back", "app")
    assert got.returncode == 125 and b"not connected to network back" in got.stderr


def test_disconnect_of_a_running_container_cuts_its_card_off(nets, busybox):
    ok(nets("run", "-d", "--name", "db", "--network", "back", busybox, *SLEEP))
    ok(nets("run", "-d", "--name", "app", "--network", "front", "--network", "back",
            busybox, *SLEEP))  # fmt: skip
    db_ip = networks_of(nets, "db")["back"]["IPAddress"]
    ok(nets("exec", "app", "ping", "-c", "1", "-W", "5", db_ip))
    assert "app" in ok(nets("exec", "db", "cat", "/etc/hosts")).split()
    ok(nets("network", "disconnect", "back", "app"))
    assert set(networks_of(nets, "app")) == {"front"}
    # The guest sees its card's carrier go; the TAP is off the bridge.
    assert ok(nets("exec", "app", "cat", "/sys/class/net/eth1/carrier")).strip() == "0"
    bridge = json.loads(ok(nets("network", "inspect", "back")))[0]["bridge"]
    app_id = json.loads(ok(nets("inspect", "app")))[0]["Id"]
    ports = ok(nets.sh("ls", f"/sys/class/net/{bridge}/brif")).split()
    assert len(ports) == 1 and not ports[0].startswith(f"cc{app_id[:12]}")
    got = nets("exec", "app", "ping", "-c", "1", "-W", "2", db_ip)
    assert got.returncode != 0
    # Names are forgotten on both sides.
    assert "app" not in ok(nets("exec", "db", "cat", "/etc/hosts")).split()
    assert "db" not in ok(nets("exec", "app", "cat", "/etc/hosts")).split()
    # Still on front, and its next boot has one card.
    ok(nets("restart", "-t", "0", "app"))
    assert ok(nets("exec", "app", "ls", "/sys/class/net")).split() == ["eth0", "lo"]


def test_disconnect_from_the_first_network_makes_the_next_the_default_route(nets, busybox):
    ok(nets("create", "--name", "app", "--network", "front", "--network", "back", busybox,
            *SLEEP))  # fmt: skip
    ok(nets("network", "disconnect", "front", "app"))
    settings = json.loads(ok(nets("inspect", "app")))[0]["NetworkSettings"]
    assert set(settings["Networks"]) == {"back"}
    assert settings["IPAddress"].startswith("10.82.0.")
    ok(nets("start", "app"))
    assert "default via 10.82.0.1" in ok(nets("exec", "app", "ip", "route"))


def test_bad_network_requests_are_one_clear_error(nets, busybox):
    got = nets("run", "--rm", "--network", "front", "--network", "none", busybox, "true")
    assert got.returncode == 125 and b"cannot be combined" in got.stderr
    got = nets("run", "--rm", "--network", "front", "--network", "front", busybox, "true")
    assert got.returncode == 125 and b"already on network front" in got.stderr
    ok(nets("create", "--name", "app", "--network", "front", busybox, "true"))
    got = nets("network", "connect", "nosuch", "app")
    assert got.returncode == 125 and b"no such network" in got.stderr
    assert all(not lease for lease in leases(nets.cocoon)["back"].values())
