"""Time stamps as scripts read them (RFC 3339 in UTC, microseconds, as Docker writes
them), and as people read them (``5 minutes ago``, as the docker CLI writes them)."""

from __future__ import annotations

import time


def rfc3339(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1e6):06d}Z"


_UNITS = (("years", 86400 * 365), ("months", 86400 * 30), ("weeks", 86400 * 7),
          ("days", 86400), ("hours", 3600), ("minutes", 60))  # fmt: skip


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    if seconds < 120:
        return "About a minute"
    if 3600 <= seconds < 7200:
        return "About an hour"
    for unit, size in _UNITS:
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds // 60)} minutes"


def ago(stamp: float | None) -> str:
    """``stamp`` (seconds since the epoch) relative to now, for people; JSON keeps the stamp."""
    return "unknown" if stamp is None else f"{duration(time.time() - stamp)} ago"


__all__ = ["ago", "duration", "rfc3339"]
