"""Query parameters the Engine API shares between calls: ``filters``, and times."""

from __future__ import annotations

import json

from cocoon.errors import InvalidArgument


def filters(text: str | None) -> dict[str, list[str]]:
    """``filters=`` as clients send it: ``{"k": ["v"]}``, or ``{"k": {"v": true}}`` (older)."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"invalid filters: {text!r}") from None
    if not isinstance(raw, dict):
        raise InvalidArgument("filters must be a JSON object")
    found: dict[str, list[str]] = {}
    for key, values in raw.items():
        if isinstance(values, dict):
            values = [v for v, on in values.items() if on]
        elif isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidArgument(f"invalid filter {key!r}")
        found[str(key)] = values
    return found


def seconds(text: str | None) -> float:
    """``since``/``until``: seconds since the epoch, as the clients send them; 0 when absent."""
    try:
        return float(text or 0)
    except ValueError:
        raise InvalidArgument(f"invalid time {text!r}: use seconds since the epoch") from None


__all__ = ["filters", "seconds"]
