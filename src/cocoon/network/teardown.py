"""Undo everything cocoon made in this network namespace: its bridges and its NAT table."""

from __future__ import annotations

from cocoon.network import nat, netdev


def teardown() -> list[str]:
    """Remove cocoon's bridges and NAT table; the bridges' names."""
    removed = []
    for bridge in netdev.cocoon_bridges():
        netdev.delete_bridge(bridge)
        removed.append(bridge)
    nat.apply([])
    return removed


__all__ = ["teardown"]
