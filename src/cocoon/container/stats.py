"""CPU, memory and network traffic of a running container, as its guest kernel and its
TAP see them.

The VM is the container, so its kernel's counters are the container's: the
agent reads ``/proc/stat`` and ``/proc/meminfo`` twice, ``interval`` apart
(nothing is needed from the image). CPU percent is Docker's: 100% is one CPU
fully busy. Traffic is the TAP's counters on the host, turned round (what
the TAP sent, the container received), on a bridge network only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cocoon.container import manager
from cocoon.container.record import Record


@dataclass(frozen=True, slots=True)
class NetIO:
    """What the container received (rx) and sent (tx) since its VM booted."""

    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


@dataclass(frozen=True, slots=True)
class Stats:
    id: str
    name: str
    cpu_percent: float
    cpus: int
    memory_used: int  # bytes: MemTotal - MemAvailable
    memory_total: int
    network: dict[str, NetIO]  # per card (eth0, eth1...); empty: not on a bridge network


@dataclass(frozen=True, slots=True)
class Counters:
    """One reading of the guest kernel's counters (ticks of USER_HZ, 1/100 s)."""

    busy: int  # ticks all CPUs spent not idle since boot
    total: int  # ticks all CPUs spent since boot
    cpus: int
    memory: dict[str, int]  # /proc/meminfo, in bytes

    @property
    def memory_used(self) -> int:
        return self.memory.get("MemTotal", 0) - self.memory.get("MemAvailable", 0)


def read(container_id: str) -> Counters:
    busy = total = cpus = 0
    memory: dict[str, int] = {}
    for line in manager.counters(container_id).splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "cpu":
            ticks = [int(x) for x in fields[1:]]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
            total, busy = sum(ticks[:8]), sum(ticks[:8]) - idle
        elif fields[0].startswith("cpu") and fields[0][3:].isdigit():
            cpus += 1
        elif fields[0].endswith(":") and len(fields) >= 2:
            memory[fields[0][:-1]] = int(fields[1]) * 1024
    return Counters(busy, total, cpus, memory)


def network_io(rec: Record) -> dict[str, NetIO]:
    """Each card's traffic, by its name in the guest, from its TAP's counters."""
    from cocoon.container.network import tap_name
    from cocoon.network import netdev

    if rec.settings.network.mode != "bridge":
        return {}
    cards = {}
    for index in range(len(rec.settings.network.networks())):
        counts = netdev.traffic(tap_name(rec.id, index))
        if counts is not None and len(counts) >= 12:
            # The TAP's sent first: what the container received.
            cards[f"eth{index}"] = NetIO(*counts[8:12], *counts[0:4])
    return cards


def sample(ref: str, interval: float = 1.0) -> Stats:
    rec = manager.get(ref)
    before = read(rec.id)
    time.sleep(interval)
    after = read(rec.id)
    elapsed = after.total - before.total
    busy = after.busy - before.busy
    percent = 100.0 * after.cpus * busy / elapsed if elapsed > 0 else 0.0
    return Stats(
        id=rec.id,
        name=rec.name,
        cpu_percent=percent,
        cpus=after.cpus,
        memory_used=after.memory_used,
        memory_total=after.memory.get("MemTotal", 0),
        network=network_io(rec),
    )


__all__ = ["Counters", "NetIO", "Stats", "network_io", "read", "sample"]
