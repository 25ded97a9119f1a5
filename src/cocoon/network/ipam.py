"""Networks and IP leases, persisted under ``<state>/networks`` with an flock.

One lock for every network: allocations are rare and tiny, and one lock
makes "two concurrent runs never get the same address" obvious. A lease is
taken when a container is created and kept across restarts until it is
removed; leases of containers that no longer exist are reclaimed whenever a
new address is needed (a crash between create and remove leaks nothing).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cocoon import paths
from cocoon.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from cocoon.files import write_atomic
from cocoon.locks import flock

DEFAULT = "cocoon0"
DEFAULT_SUBNET = "192.168.64.0/24"
RESERVED = ("none", "user", "host", "bridge")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


@dataclass(slots=True)
class Network:
    """A network: its subnet, gateway, bridge and the addresses it has leased."""

    name: str
    subnet: str
    gateway: str
    bridge: str
    # ip -> {id, name, aliases?}: aliases are other names peers know it by
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def prefix(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen


def root() -> Path:
    return paths.state_dir() / "networks"


@contextlib.contextmanager
def locked() -> Iterator[dict[str, Network]]:
    """Every network, for reading and changing; saved on a clean exit."""
    root().mkdir(parents=True, exist_ok=True)
    with flock(root() / ".lock"):
        nets = _load()
        before = {name: asdict(n) for name, n in nets.items()}
        yield nets
        if {name: asdict(n) for name, n in nets.items()} != before:
            _save(nets)


def _load() -> dict[str, Network]:
    try:
        data = json.loads((root() / "networks.json").read_text())
    except FileNotFoundError:
        data = {}
    nets = {name: Network(**fields) for name, fields in data.items()}
    if DEFAULT not in nets:
        nets[DEFAULT] = _new(DEFAULT, DEFAULT_SUBNET, "cocoon0")
    return nets


def _save(nets: dict[str, Network]) -> None:
    doc = {name: asdict(n) for name, n in nets.items()}
    write_atomic(root() / "networks.json", json.dumps(doc, indent=1).encode())


def _new(name: str, subnet: str, bridge: str) -> Network:
    net = ipaddress.ip_network(subnet)
    return Network(name=name, subnet=str(net), gateway=str(net.network_address + 1), bridge=bridge)


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise InvalidArgument(f"invalid subnet {text!r}: {e}") from e
    if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 29:
        raise InvalidArgument(f"subnet {text}: an IPv4 network of /29 or larger is needed")
    return net


def create(name: str, subnet: str | None = None) -> Network:
    if not _NAME.match(name) or name in RESERVED:
        raise InvalidArgument(f"invalid network name {name!r} (lower-case letters, digits, _ . -)")
    with locked() as nets:
        if name in nets:
            raise AlreadyExists(f"network {name} already exists")
        taken = [ipaddress.ip_network(n.subnet) for n in nets.values()]
        if subnet is None:
            free = (ipaddress.ip_network(f"192.168.{i}.0/24") for i in range(65, 255))
            net = next((n for n in free if not any(n.overlaps(t) for t in taken)), None)
            if net is None:
                raise InvalidState("no free 192.168.x.0/24 subnet left; give --subnet")
        else:
            net = parse_subnet(subnet)
            if clash := next(
                (n for n in nets.values() if net.overlaps(ipaddress.ip_network(n.subnet))), None
            ):
                raise AlreadyExists(f"subnet {net} overlaps network {clash.name} ({clash.subnet})")
        bridges = {n.bridge for n in nets.values()}
        index = 1
        while f"cocoon{index}" in bridges:
            index += 1
        nets[name] = _new(name, str(net), f"cocoon{index}")
        return nets[name]


def get(name: str) -> Network:
    with locked() as nets:
        if name not in nets:
            raise NotFound(f"no such network: {name}")
        return nets[name]


def all_networks() -> list[Network]:
    with locked() as nets:
        return sorted(nets.values(), key=lambda n: n.name)


def rename_lease(name: str, container_id: str, new_name: str) -> None:
    """A renamed container keeps its address under its new name."""
    with locked() as nets:
        for lease in nets[name].leases.values() if name in nets else ():
            if lease.get("id") == container_id:
                lease["name"] = new_name


def view(net: Network) -> dict[str, Any]:
    """What ``network inspect`` shows: the record, whether its bridge is up, who is on it."""
    from cocoon.network import netdev  # runs `ip`: only when asked

    return {
        "name": net.name,
        "subnet": net.subnet,
        "gateway": net.gateway,
        "bridge": net.bridge,
        "bridge_up": netdev.exists(net.bridge),
        "containers": {lease["name"]: ip for ip, lease in sorted(net.leases.items())},
    }


def remove(name: str) -> Network:
    with locked() as nets:
        net = nets.get(name)
        if net is None:
            raise NotFound(f"no such network: {name}")
        if name == DEFAULT:
            raise InvalidArgument(f"network {name} is the default and cannot be removed")
        if net.leases:
            users = ", ".join(sorted(lease["name"] for lease in net.leases.values()))
            raise InvalidState(f"network {name} is in use by {users}")
        del nets[name]
        return net


def allocate(
    name: str,
    container_id: str,
    container_name: str,
    requested: str | None = None,
    exists: Callable[[str], bool] = lambda _id: True,
) -> tuple[Network, str]:
    """Lease an address of network ``name`` to the container (``requested`` or the first free)."""
    with locked() as nets:
        net = nets.get(name)
        if net is None:
            raise NotFound(f"no such network: {name}")
        net.leases = {ip: lease for ip, lease in net.leases.items() if exists(lease["id"])}
        subnet = ipaddress.ip_network(net.subnet)
        unusable = {net.gateway, str(subnet.network_address), str(subnet.broadcast_address)}
        if requested is not None:
            try:
                address = ipaddress.ip_address(requested)
            except ValueError as e:
                raise InvalidArgument(f"invalid --ip {requested!r}") from e
            ip = str(address)
            if address not in subnet or ip in unusable:
                raise InvalidArgument(f"--ip {ip} is not a usable address of {net.subnet}")
            if ip in net.leases:
                raise AlreadyExists(f"address {ip} is already in use by {net.leases[ip]['name']}")
        else:
            ip = next((str(a) for a in subnet.hosts() if str(a) not in unusable
                       and str(a) not in net.leases), None)  # fmt: skip
            if ip is None:
                raise InvalidState(f"network {name} has no free address left")
        net.leases[ip] = {"id": container_id, "name": container_name}
        return net, ip


def release(container_id: str, network: str | None = None) -> None:
    """Drop the container's lease on ``network``, or every lease it holds."""
    with locked() as nets:
        for net in nets.values():
            if network in (None, net.name):
                net.leases = {
                    ip: lease for ip, lease in net.leases.items() if lease["id"] != container_id
                }


def set_aliases(container_id: str, aliases: Sequence[str], network: str | None = None) -> None:
    """Other names the container answers to on ``network`` (else on each of its
    networks): a compose service's name."""
    with locked() as nets:
        for net in nets.values():
            if network not in (None, net.name):
                continue
            for lease in net.leases.values():
                if lease["id"] == container_id:
                    lease["aliases"] = list(dict.fromkeys(aliases))


def peers(name: str) -> dict[str, dict[str, Any]]:
    """The leases of network ``name`` (ip -> {id, name}); empty if it is gone."""
    with locked() as nets:
        net = nets.get(name)
        return dict(net.leases) if net else {}


__all__ = [
    "DEFAULT",
    "Network",
    "all_networks",
    "allocate",
    "create",
    "get",
    "parse_subnet",
    "peers",
    "release",
    "remove",
    "rename_lease",
    "set_aliases",
    "view",
]
