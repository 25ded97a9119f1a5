"""``start``: the container's main process, in the VM ``create`` booted."""

from __future__ import annotations

from pathlib import Path

from cocoon.container import control as controls
from cocoon.errors import InvalidState
from cocoon.runtime import store
from cocoon.runtime.status import Status, status


def start(root: Path, container_id: str) -> None:
    entry = store.load(root, container_id)
    now = status(entry)
    if now is not Status.CREATED:
        raise InvalidState(f"container {container_id} is {now.value}, not created: cannot start it")
    if not entry.sandbox:
        controls.request(entry.record, "start")
    store.save(root, entry._replace(started=True))


__all__ = ["start"]
