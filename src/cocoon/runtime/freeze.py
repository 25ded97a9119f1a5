"""``pause`` and ``resume``: the container's VM frozen and thawed.

The per-container process is cocoon's monitor, so these are its own
``pause``/``unpause`` requests: QMP stop/cont, with the silent-guest
watchdog held while the guest is frozen, and the "paused" marker that
``state`` and ``list`` read without asking it.
"""

from __future__ import annotations

from pathlib import Path

from cocoon.container import control as controls
from cocoon.errors import InvalidState, Unsupported
from cocoon.runtime import store
from cocoon.runtime.status import Status, status


def _frozen_or_not(root: Path, container_id: str, allowed: tuple[Status, ...], verb: str) -> str:
    """The container's cocoon record, once its status allows ``verb``."""
    entry = store.load(root, container_id)
    if entry.sandbox:
        raise Unsupported(f"container {container_id} is a pod sandbox: it has no VM to {verb}")
    now = status(entry)
    if now not in allowed:
        raise InvalidState(f"container {container_id} is {now.value}: cannot {verb} it")
    return entry.record


def pause(root: Path, container_id: str) -> None:
    # As runc: a created container can be frozen too (its VM is booted).
    record = _frozen_or_not(root, container_id, (Status.CREATED, Status.RUNNING), "pause")
    controls.request(record, "pause")


def resume(root: Path, container_id: str) -> None:
    record = _frozen_or_not(root, container_id, (Status.PAUSED,), "resume")
    controls.request(record, "unpause")


__all__ = ["pause", "resume"]
