"""``start``: the container's main process, in the VM ``create`` set booting."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cocoon.container import control as controls
from cocoon.errors import ExternalError, InvalidState, from_code
from cocoon.runtime import store
from cocoon.runtime.status import Status, alive, status

POLL = 0.005  # seconds between looks at the boot's report: a boot takes 100 times that


def _booted(root: Path, entry: store.Entry) -> None:
    """Wait for the container's process to say its VM is up; its error if the boot failed.

    No deadline of our own: that process gives up on a boot by itself
    (``container.boot.BOOT_TIMEOUT``) and reports or exits.
    """
    folder = root / entry.id
    report = folder / store.BOOTED
    while True:
        gone = not alive(entry)  # looked at first: its last words may come as it ends
        if (line := report.read_bytes() if report.exists() else b"").endswith(b"\n"):
            break
        if gone:
            raise ExternalError(f"the container's VM did not start (see {folder / store.SHIM_LOG})")
        time.sleep(POLL)
    answer = json.loads(line)
    if not answer.get("ok"):
        message = answer.get("error") or "the container's VM did not start"
        raise from_code(answer.get("code"), f"{message} (see {folder / store.SHIM_LOG})")


def start(root: Path, container_id: str) -> None:
    entry = store.load(root, container_id)
    now = status(entry)
    if now is not Status.CREATED:
        raise InvalidState(f"container {container_id} is {now.value}, not created: cannot start it")
    if not entry.sandbox:
        _booted(root, entry)
        controls.request(entry.record, "start")
    store.save(root, entry._replace(started=True))


__all__ = ["start"]
