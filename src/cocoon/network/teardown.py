"""Undo what cocoon made in this network namespace: one network, the unused ones,
or all bridges and NAT."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from cocoon.errors import CocoonError
from cocoon.network import ipam, nat, netdev


def delete(name: str) -> ipam.Network:
    """Remove the unused network ``name``: its record, its bridge, its NAT rules."""
    net = ipam.remove(name)
    if not netdev.exists(net.bridge):
        return net  # never used here: no bridge, no NAT rule
    netdev.delete_bridge(net.bridge)
    left = [n for n in ipam.all_networks() if netdev.exists(n.bridge)]
    nat.apply([(n.bridge, n.subnet) for n in left])
    return net


def prune(exists: Callable[[str], bool]) -> list[str]:
    """Delete every network but the default whose leases are all of containers that are
    gone (``exists`` tells: this layer knows no containers); the names deleted."""
    gone = []
    for net in ipam.all_networks():
        if net.name == ipam.DEFAULT or any(exists(lease["id"]) for lease in net.leases.values()):
            continue
        for lease in net.leases.values():
            ipam.release(lease["id"])
        with contextlib.suppress(CocoonError):  # a container joined it meanwhile
            delete(net.name)
            gone.append(net.name)
    return gone


def teardown() -> list[str]:
    """Remove cocoon's bridges and NAT table; the bridges' names."""
    removed = []
    for bridge in netdev.cocoon_bridges():
        netdev.delete_bridge(bridge)
        removed.append(bridge)
    nat.apply([])
    return removed


__all__ = ["delete", "prune", "teardown"]
