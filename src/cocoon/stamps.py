"""Time stamps as scripts read them: RFC 3339 in UTC, microseconds, as Docker writes them."""

from __future__ import annotations

import time


def rfc3339(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1e6):06d}Z"


__all__ = ["rfc3339"]
