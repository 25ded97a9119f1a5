"""Which containers ``ls --filter`` (and ``client.containers.list(filters=...)``) keeps."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from cocoon import reference as references
from cocoon.container.record import Record
from cocoon.container.state import State
from cocoon.errors import InvalidArgument
from cocoon.filters import check, labels_match

KEYS = ("ancestor", "id", "label", "name", "status")


def checked(filters: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    found = check(filters, KEYS)
    known = {s.value for s in State}
    for status in found.get("status", ()):
        if status not in known:
            raise InvalidArgument(f"invalid status filter {status!r} (use {', '.join(known)})")
    return found


def matches(rec: Record, filters: Mapping[str, Sequence[str]]) -> bool:
    """``filters`` as :func:`checked` returns them."""
    tests = {
        "id": lambda v: rec.id.startswith(v),
        "name": lambda v: v.lstrip("/") in rec.name,  # Docker: a part of the name
        "status": lambda v: rec.state.value == v,
        "ancestor": lambda v: _same_image(rec, v),
    }
    for key, values in filters.items():
        if key == "label":
            if not labels_match(rec.settings.labels if rec.config else {}, values):
                return False
        elif not any(tests[key](v) for v in values):
            return False
    return True


def _same_image(rec: Record, text: str) -> bool:
    """``text`` names the image ``rec`` was made from: by reference, or by id or id prefix."""
    hex_part = text.removeprefix("sha256:")
    if re.fullmatch(r"[0-9a-f]{4,64}", hex_part) and rec.image_id.startswith(f"sha256:{hex_part}"):
        return True
    try:
        return references.parse(text) == references.parse(rec.image)
    except InvalidArgument:
        return False


__all__ = ["KEYS", "checked", "matches"]
