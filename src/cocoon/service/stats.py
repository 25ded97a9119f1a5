"""``/containers/{id}/stats``: the guest kernel's counters in dockerd's JSON shape.

The counters are ``cocoon stats``'s (``container.stats.read``): CPU ticks
and ``/proc/meminfo`` from inside the VM, so "system" CPU time is the VM's
own, the ratio the docker CLI computes (``cpu_delta / system_delta *
online_cpus``) is the share of the VM's CPUs the container used, and the
memory limit is the VM's memory. Network bytes are the host side of the
container's TAP (its received bytes are what the guest sent). Fields cocoon
has no figure for (pids, block I/O) are left out or empty, never made up.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from cocoon.container import control, stats
from cocoon.container.record import Record
from cocoon.container.state import State
from cocoon.errors import InvalidArgument, InvalidState, NotFound
from cocoon.service.http import Request
from cocoon.service.lookup import find

NS_PER_TICK = 10_000_000  # USER_HZ is 100 on Linux
INTERVAL = 1.0  # dockerd's collection period
_NEVER = "0001-01-01T00:00:00Z"


def _stamp(when: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
    return f"{whole}.{int(when % 1 * 1e9):09d}Z"


def _cpu(c: stats.Counters | None) -> dict[str, Any]:
    if c is None:
        return {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": 0,
                "throttling_data": {}}  # fmt: skip
    return {
        "cpu_usage": {"total_usage": c.busy * NS_PER_TICK},
        "system_cpu_usage": c.total * NS_PER_TICK,
        "online_cpus": c.cpus,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def _networks(rec: Record) -> dict[str, Any] | None:
    """Each card's counters, as dockerd names them."""
    return {card: asdict(io) for card, io in stats.network_io(rec).items()} or None


def view(
    rec: Record,
    now: tuple[float, stats.Counters] | None,
    before: tuple[float, stats.Counters] | None,
) -> dict[str, Any]:
    """One stats object: ``now`` and the reading before it (CPU percent needs both)."""
    body: dict[str, Any] = {
        "id": rec.id,
        "name": f"/{rec.name}",
        "read": _stamp(now[0]) if now else _NEVER,
        "preread": _stamp(before[0]) if before else _NEVER,
        "num_procs": 0,
        "pids_stats": {},
        "blkio_stats": {},
        "storage_stats": {},
        "cpu_stats": _cpu(now[1] if now else None),
        "precpu_stats": _cpu(before[1] if before else None),
        "memory_stats": {},
    }
    if now is not None:
        memory = now[1]
        body["memory_stats"] = {"usage": memory.memory_used,
                                "limit": memory.memory.get("MemTotal", 0), "stats": {}}  # fmt: skip
    networks = _networks(rec) if now is not None else None
    if networks is not None:
        body["networks"] = networks
    return body


def _read(rec: Record) -> tuple[float, stats.Counters] | None:
    """A reading, or None once the container no longer runs."""
    try:
        return time.time(), stats.read(rec.id)
    except (InvalidState, NotFound):
        return None


def get(req: Request) -> Any:
    rec = find(req.match["id"])
    stream = req.flag("stream", True)
    one_shot = req.flag("one-shot")
    if one_shot and stream:
        raise InvalidArgument("cannot have stream=true and one-shot=true")
    if rec.state != State.RUNNING or control.paused(rec.id):
        # A container that does not run has an empty reading (as dockerd's);
        # a paused VM cannot answer, its kernel is frozen.
        return view(rec, None, None)
    before = _read(rec)
    if not stream:
        if one_shot or before is None:
            return view(rec, before, None)
        time.sleep(INTERVAL)
        return view(rec, _read(rec) or before, before)
    req.handler.start_stream("application/json")
    while before is not None:
        time.sleep(INTERVAL)
        now = _read(rec)
        if now is None:
            break
        req.handler.chunk(json.dumps(view(rec, now, before)).encode() + b"\n")
        req.handler.wfile.flush()
        before = now
    req.handler.end_stream()
    return None


__all__ = ["get", "view"]
