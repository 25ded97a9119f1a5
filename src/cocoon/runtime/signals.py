"""``kill`` and ``delete``: signals go to the container's process through its control socket.

runc's leniency is kept where engines rely on it: ``kill --all`` of a stopped
container and ``delete --force`` of a missing or stopped one succeed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from cocoon import paths
from cocoon.container import control as controls
from cocoon.errors import CocoonError, InvalidState, NotFound
from cocoon.runtime import store
from cocoon.runtime.status import Status, alive, status

STOP_WAIT = 15.0  # seconds for a force-deleted container's process to go


def kill(root: Path, container_id: str, signum: int, *, all_processes: bool = False) -> None:
    entry = store.load(root, container_id)
    now = status(entry)
    if now is Status.STOPPED:
        if all_processes:
            return
        raise InvalidState(f"container {container_id} is not running")
    if entry.sandbox:
        os.kill(entry.pid, signum)
        return
    try:
        if now is Status.PAUSED and signum == signal.SIGKILL:
            # As runc thaws a frozen cgroup for SIGKILL: a frozen guest acts on nothing.
            controls.request(entry.record, "unpause")
        controls.request(entry.record, "signal", signal=signum)
    except CocoonError:
        # The control socket is gone while the process lives (it is ending):
        # the process itself forwards what it can catch.
        if alive(entry):
            os.kill(entry.pid, signum)


def _wait_gone(entry: store.Entry) -> None:
    deadline = time.monotonic() + STOP_WAIT
    while alive(entry) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(entry):
        # It does not answer: end it the hard way (its VM goes in delete).
        with contextlib.suppress(OSError):
            os.kill(entry.pid, signal.SIGKILL)


def delete(root: Path, container_id: str, *, force: bool = False) -> None:
    try:
        entry = store.load(root, container_id)
    except NotFound:
        if force:
            return
        raise
    if status(entry) is not Status.STOPPED:
        if not force:
            raise InvalidState(f"container {container_id} is not stopped: cannot delete it")
        with contextlib.suppress(CocoonError, OSError):
            kill(root, container_id, signal.SIGKILL)
        _wait_gone(entry)
    if not entry.sandbox and (paths.containers_dir() / entry.record).exists():
        _clean_up_after(entry.record)
    store.forget(root, container_id)


def _clean_up_after(record_id: str) -> None:
    """What a container process killed outright (SIGKILL) could not remove as it ended."""
    from cocoon.container import boot  # the heavy part: only this needs it
    from cocoon.container import record as records
    from cocoon.container.liveness import kill_orphan_vm

    with contextlib.suppress(CocoonError):
        kill_orphan_vm(records.load(record_id))
    boot.remove_sockets(record_id)
    boot.discard(record_id, remove_volumes=True)


__all__ = ["delete", "kill"]
