"""``/networks/...``: cocoon's bridge networks in dockerd's terms.

A cocoon container may be on several networks, a card in its VM for each:
``connect`` and ``disconnect`` change what its next boot attaches (``connect``
answers 409 while it runs: QEMU cannot add a card; ``disconnect`` cuts a
running VM's card off); ``connect`` to a network it is on gives it more
names there (aliases: compose's service names). What
dockerd keeps and cocoon's networks do not (labels, creation time) is kept
beside them in ``<state>/service``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cocoon import paths
from cocoon.container import manager
from cocoon.container.network import default_network
from cocoon.container.options import RunOptions
from cocoon.container.spec import check_hostname
from cocoon.errors import InvalidArgument, NotFound, Unsupported
from cocoon.files import write_atomic
from cocoon.network import ipam
from cocoon.service.http import Request
from cocoon.service.lookup import find
from cocoon.stamps import rfc3339

_lock = threading.Lock()  # read-modify-write of the extras file
# Docker's names for cocoon's special modes: its CLI and compose expect them.
_BUILTIN = {"bridge": ipam.DEFAULT, "none": "none"}


def _extra_path() -> Path:
    return paths.state_dir() / "service" / "networks.json"


def _extras() -> dict[str, dict[str, Any]]:
    try:
        return json.loads(_extra_path().read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _save_extras(extras: dict[str, dict[str, Any]]) -> None:
    _extra_path().parent.mkdir(parents=True, exist_ok=True)
    write_atomic(_extra_path(), json.dumps(extras).encode(), mode=0o600)


def network_id(name: str) -> str:
    """A stable id, as clients expect one: the name's digest."""
    return hashlib.sha256(f"cocoon-network:{name}".encode()).hexdigest()


def lookup(ref: str) -> ipam.Network:
    """A network by name, id or unique id prefix."""
    ref = _BUILTIN.get(ref, ref)
    nets = ipam.all_networks()
    for net in nets:
        if ref in (net.name, network_id(net.name)):
            return net
    found = [n for n in nets if ref and network_id(n.name).startswith(ref)]
    if len(found) != 1:
        raise NotFound(f"network {ref} not found")
    return found[0]


def view(net: ipam.Network) -> dict[str, Any]:
    extra = _extras().get(net.name, {})
    containers = {
        lease["id"]: {
            "Name": lease["name"],
            "EndpointID": lease["id"],
            "MacAddress": "",
            "IPv4Address": f"{ip}/{net.prefix}",
            "IPv6Address": "",
        }
        for ip, lease in net.leases.items()
    }
    return {
        "Name": net.name,
        "Id": network_id(net.name),
        "Created": extra.get("created") or "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": net.subnet, "Gateway": net.gateway}],
        },
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": {"cocoon.bridge": net.bridge},
        "Labels": extra.get("labels", {}),
    }


def list_networks(req: Request) -> list[dict[str, Any]]:
    return [view(n) for n in ipam.all_networks()]


def inspect(req: Request) -> dict[str, Any]:
    return view(lookup(req.match["id"]))


def create(req: Request) -> dict[str, str]:
    body = req.json_object()
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("network name is required")
    if (body.get("Driver") or "bridge") != "bridge":
        raise Unsupported(f"cocoon does not serve network driver {body['Driver']!r}")
    for key in ("Internal", "EnableIPv6", "Ingress", "ConfigOnly"):
        if body.get(key):
            raise Unsupported(f"cocoon does not serve networks with {key}")
    configs = (body.get("IPAM") or {}).get("Config") or []
    subnets = [c.get("Subnet") for c in configs if isinstance(c, dict) and c.get("Subnet")]
    if len(subnets) > 1:
        raise Unsupported("cocoon networks have one subnet")
    net = ipam.create(name, subnets[0] if subnets else None)
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise InvalidArgument("Labels must be a JSON object")
    with _lock:
        extras = _extras()
        extras[net.name] = {"labels": labels, "created": rfc3339(time.time())}
        _save_extras(extras)
    return {"Id": network_id(net.name), "Warning": ""}


def delete(req: Request) -> None:
    from cocoon.network.teardown import delete as remove

    net = lookup(req.match["id"])
    remove(net.name)  # as cocoon network rm: the bridge and its NAT rules go too
    with _lock:
        extras = _extras()
        if extras.pop(net.name, None) is not None:
            _save_extras(extras)


def connect(req: Request) -> None:
    """Put a container on one more network, or give it more names on one it is on."""
    body = req.json_object()
    net = lookup(req.match["id"])
    rec = find(str(body.get("Container") or ""))
    aliases = (body.get("EndpointConfig") or {}).get("Aliases") or []
    if net.name in rec.settings.network.networks():
        set_aliases(rec.id, aliases, net.name)
    else:
        manager.connect(rec.id, net.name, _names(aliases))


def _names(aliases: Any) -> list[str]:
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InvalidArgument("Aliases must be a list of names")
    for alias in aliases:
        check_hostname(alias)
    return aliases


def set_aliases(container_id: str, aliases: Any, network: str) -> None:
    """More names for the container on ``network``, beside those it has there."""
    names = _names(aliases)
    current = manager.get(container_id)
    ipam.set_aliases(current.id, [*_aliases_of(current.id, network), *names], network)


def endpoints(
    opts: RunOptions, configs: Mapping[str, list[str]]
) -> tuple[RunOptions, dict[str, list[str]]]:
    """A create's ``EndpointsConfig``: the networks past its ``NetworkMode`` join
    ``opts.more_networks``; the aliases on each, by cocoon's network names."""
    first = opts.network or default_network()

    def name(key: str) -> str:
        if key in ("default", "bridge") and opts.network is None:
            return first  # Docker's default network, whichever is cocoon's here
        return key if key in ("none", "user") else lookup(key).name

    named = {name(key): aliases for key, aliases in configs.items()}
    more = [n for n in named if n != first and n not in opts.more_networks]
    opts = dataclasses.replace(opts, more_networks=[*opts.more_networks, *more])
    return opts, {n: aliases for n, aliases in named.items() if aliases}


def _aliases_of(container_id: str, network: str | None) -> list[str]:
    if network is None:
        return []
    for lease in ipam.peers(network).values():
        if lease["id"] == container_id:
            return list(lease.get("aliases", ()))
    return []


def aliases(container_id: str, network: str | None) -> list[str]:
    """What inspect lists: the short id (as dockerd) and the names given."""
    return [container_id[:12], *_aliases_of(container_id, network)]


def disconnect(req: Request) -> None:
    """Take a container off a network: its next boot has no card there."""
    body = req.json_object()
    net = lookup(req.match["id"])
    rec = find(str(body.get("Container") or ""))
    manager.disconnect(rec.id, net.name)


def prune(req: Request) -> dict[str, list[str]]:
    from cocoon.container.record import exists
    from cocoon.network.teardown import prune as remove_unused

    gone = remove_unused(exists)
    if gone:
        with _lock:
            extras = _extras()
            for name in gone:
                extras.pop(name, None)
            _save_extras(extras)
    return {"NetworksDeleted": gone}


__all__ = ["aliases", "endpoints", "lookup", "network_id", "set_aliases", "view"]
