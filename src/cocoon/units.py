"""Quantities people type on a command line (sizes), parsed one way everywhere."""

from __future__ import annotations

import re

from cocoon.errors import InvalidArgument

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes in ``512m``, ``1g``, ``1.5GiB``, ``1048576``."""
    match = _SIZE.match(text)
    if not match:
        raise InvalidArgument(f"invalid size {text!r} (use e.g. 512m or 2g)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


__all__ = ["parse_size"]
