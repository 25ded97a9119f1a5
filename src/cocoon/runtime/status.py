"""A container's OCI status, its ``state`` JSON and ``list``."""

from __future__ import annotations

import enum
from pathlib import Path

from cocoon.container.control import paused
from cocoon.errors import CocoonError
from cocoon.pids import start_ticks
from cocoon.runtime import store

TYPE_CHECKING = False  # typing's, without importing typing: see cocoon/__init__.py
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.1.0"  # the runtime spec this runtime's state follows


class Status(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


def alive(entry: store.Entry) -> bool:
    """Whether the container's process still runs (and is ours, not a recycled pid)."""
    return entry.pid > 0 and start_ticks(entry.pid) == entry.pid_ticks


def status(entry: store.Entry) -> Status:
    if not alive(entry):
        return Status.STOPPED
    if not entry.sandbox and paused(entry.record):
        return Status.PAUSED
    return Status.RUNNING if entry.started else Status.CREATED


def state(entry: store.Entry) -> dict[str, Any]:
    now = status(entry)
    return {
        "ociVersion": OCI_VERSION,
        "id": entry.id,
        "status": now.value,
        "pid": entry.pid if now is not Status.STOPPED else 0,
        "bundle": entry.bundle,
        "created": entry.created,
        "owner": "",
        "annotations": entry.annotations,
    }


def states(root: Path) -> list[dict[str, Any]]:
    result = []
    for container_id in store.ids(root):
        try:
            result.append(state(store.load(root, container_id)))
        except CocoonError:  # removed meanwhile, or unreadable: not listed
            continue
    return result


__all__ = ["OCI_VERSION", "Status", "alive", "state", "states", "status"]
