"""IPAM (leases, concurrency, subnets) and published-port specs: no devices, no VMs."""

from __future__ import annotations

import multiprocessing

import pytest

from cocoon.container.config import Attachment, NetworkSettings
from cocoon.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from cocoon.network import ipam, ports


def _allocate(i: int) -> str:
    return ipam.allocate("cocoon0", f"id{i}", f"c{i}")[1]


def test_twenty_concurrent_allocations_are_distinct():
    with multiprocessing.get_context("fork").Pool(8) as pool:
        ips = pool.map(_allocate, range(20))
    assert len(set(ips)) == 20
    assert "192.168.64.1" not in ips  # the gateway
    assert set(ipam.peers("cocoon0")) == set(ips)


def test_lease_kept_until_released_then_reused():
    _, first = ipam.allocate("cocoon0", "a", "a")
    assert first == "192.168.64.2"
    assert ipam.allocate("cocoon0", "b", "b")[1] == "192.168.64.3"
    ipam.release("a")
    assert ipam.allocate("cocoon0", "c", "c")[1] == "192.168.64.2"


def test_leases_of_vanished_containers_are_reclaimed():
    ipam.allocate("cocoon0", "gone", "gone")
    _, ip = ipam.allocate("cocoon0", "new", "new", exists=lambda cid: cid != "gone")
    assert ip == "192.168.64.2"


def test_requested_address_checked():
    assert ipam.allocate("cocoon0", "a", "a", "192.168.64.9")[1] == "192.168.64.9"
    with pytest.raises(AlreadyExists):
        ipam.allocate("cocoon0", "b", "b", "192.168.64.9")
    for bad in ("192.168.64.1", "192.168.64.255", "10.0.0.5", "nonsense"):
        with pytest.raises(InvalidArgument):
            ipam.allocate("cocoon0", "b", "b", bad)


def test_small_network_runs_out():
    ipam.create("tiny", "10.9.0.0/29")  # .1 gateway, .2-.6 usable
    for i in range(5):
        ipam.allocate("tiny", f"t{i}", f"t{i}")
    with pytest.raises(InvalidState):
        ipam.allocate("tiny", "t9", "t9")


def test_network_create_and_remove():
    net = ipam.create("backend")
    assert net.subnet == "192.168.65.0/24" and net.gateway == "192.168.65.1"
    assert net.bridge != "cocoon0"
    with pytest.raises(AlreadyExists):
        ipam.create("backend")
    with pytest.raises(AlreadyExists):
        ipam.create("other", "192.168.64.128/25")  # overlaps cocoon0
    for bad in ("none", "user", "Bad Name"):
        with pytest.raises(InvalidArgument):
            ipam.create(bad)
    ipam.allocate("backend", "x", "x")
    with pytest.raises(InvalidState):
        ipam.remove("backend")
    ipam.release("x")
    ipam.remove("backend")
    with pytest.raises(NotFound):
        ipam.get("backend")
    with pytest.raises(InvalidArgument):
        ipam.remove("cocoon0")


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("8080:80", ports.PortSpec(8080, 80, "tcp", "0.0.0.0")),
        ("127.0.0.1:8080:80", ports.PortSpec(8080, 80, "tcp", "127.0.0.1")),
        ("53:53/udp", ports.PortSpec(53, 53, "udp", "0.0.0.0")),
        ("10.1.2.3:1:65535/tcp", ports.PortSpec(1, 65535, "tcp", "10.1.2.3")),
    ],
)
def test_port_spec(spec, want):
    assert ports.parse(spec) == want


@pytest.mark.parametrize(
    ("spec", "want"),
    [("80", ("0.0.0.0", 80, "tcp")), ("127.0.0.1::53/udp", ("127.0.0.1", 53, "udp"))],
)
def test_port_spec_without_a_host_port_gets_a_free_one(spec, want):
    got = ports.parse(spec)
    assert (got.host_ip, got.container_port, got.protocol) == want
    assert 0 < got.host_port < 65536


@pytest.mark.parametrize(
    "spec", ["0", "0:80", "8080:65536", "a:80", "8080:80/sctp", "host:8080:80", "1:2:3:4", ""]
)
def test_bad_port_spec(spec):
    with pytest.raises(InvalidArgument):
        ports.parse(spec)


def test_release_and_aliases_on_one_network_leave_the_others():
    ipam.create("second", "10.70.0.0/24")
    ipam.allocate("cocoon0", "a", "a")
    ipam.allocate("second", "a", "a")
    ipam.set_aliases("a", ["api"], network="second")
    assert [lease.get("aliases") for lease in ipam.peers("second").values()] == [["api"]]
    assert [lease.get("aliases") for lease in ipam.peers("cocoon0").values()] == [None]
    ipam.release("a", "second")
    assert ipam.peers("second") == {} and len(ipam.peers("cocoon0")) == 1


def test_settings_on_several_networks_round_trip_and_one_network_reads_as_before():
    one = NetworkSettings(mode="bridge", network="cocoon0", ip="192.168.64.2", prefix=24)
    assert "more" not in one.to_json()
    assert NetworkSettings.from_json(one.to_json()) == one
    two = NetworkSettings.from_json(one.to_json())
    two.more.append(Attachment("second", "10.70.0.2", 24, "10.70.0.1", "02:42:0a:46:00:02"))
    assert NetworkSettings.from_json(two.to_json()) == two
    assert two.networks() == ["cocoon0", "second"]
