"""Telling one host process from a later one that reuses its pid."""

from __future__ import annotations


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None if it is gone)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115
    except OSError:
        return None
    # Field 22, counted after the command name, which may hold spaces.
    return int(stat.rsplit(")", 1)[1].split()[19])


__all__ = ["start_ticks"]
