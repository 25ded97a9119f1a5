"""Undo what cocoon made in this network namespace: one network, or all bridges and NAT."""

from __future__ import annotations

from cocoon.network import ipam, nat, netdev


def delete(name: str) -> ipam.Network:
    """Remove the unused network ``name``: its record, its bridge, its NAT rules."""
    net = ipam.remove(name)
    netdev.delete_bridge(net.bridge)
    left = [n for n in ipam.all_networks() if netdev.exists(n.bridge)]
    nat.apply([(n.bridge, n.subnet) for n in left])
    return net


def teardown() -> list[str]:
    """Remove cocoon's bridges and NAT table; the bridges' names."""
    removed = []
    for bridge in netdev.cocoon_bridges():
        netdev.delete_bridge(bridge)
        removed.append(bridge)
    nat.apply([])
    return removed


__all__ = ["delete", "teardown"]
