"""Containers by the names a Docker client uses, with dockerd's words when there is none."""

from __future__ import annotations

from cocoon.container import manager
from cocoon.container.record import Record
from cocoon.errors import NotFound


def not_found(ref: str) -> NotFound:
    return NotFound(f"No such container: {ref}")


def find(ref: str) -> Record:
    """The container ``ref`` names (id, name or unique prefix)."""
    try:
        return manager.get(ref)
    except NotFound:
        raise not_found(ref) from None


__all__ = ["find", "not_found"]
