"""Is a running container really running? The owner lock and pid checks behind the answer.

The process that owns a container's VM (its monitor, or a foreground
``cocoon run``) holds an exclusive flock on ``owner.lock`` in the container's
folder for as long as it lives. The kernel drops it when that process dies,
however it dies, so a record that says ``running`` while the lock is free was
left by an owner killed with SIGKILL: :func:`reconcile` marks it exited and
kills its orphaned QEMU, if any is left. A ``--rm`` container left so
(:func:`orphaned_rm`) is then removed by whoever looks it up next
(``manager``), its name free again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from typing import IO

from cocoon.container import record as records
from cocoon.container.record import Record
from cocoon.container.state import State, to_exited
from cocoon.errors import InvalidState, NotFound
from cocoon.pids import start_ticks

OWNER_DIED = "its monitor died unexpectedly"


def hold(container_id: str) -> IO[str]:
    """Take the owner lock for this process's lifetime; InvalidState if taken."""
    lock = open(records.folder(container_id) / "owner.lock", "a")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        lock.close()
        raise InvalidState(f"container {container_id[:12]} is already running") from e
    return lock


def owner_alive(container_id: str) -> bool:
    try:
        lock = open(records.folder(container_id) / "owner.lock", "a")  # noqa: SIM115
    except FileNotFoundError:
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def kill_orphan_vm(record: Record) -> None:
    """SIGKILL the record's QEMU if that very process still exists."""
    pid, ticks = record.vm_pid, record.vm_start_ticks
    if pid is None or ticks is None or start_ticks(pid) != ticks:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def reconcile(record: Record) -> Record:
    """The record as it truly is: a running one whose owner died becomes exited."""
    if record.state != State.RUNNING or owner_alive(record.id):
        return record

    def mark(r: Record) -> None:
        if r.state == State.RUNNING and not owner_alive(r.id):
            to_exited(r, None, r.error or OWNER_DIED)

    kill_orphan_vm(record)
    try:
        return records.update(record.id, mark)
    except NotFound:
        return record  # removed meanwhile


def orphaned_rm(record: Record) -> bool:
    """A ``--rm`` container whose owner died before it could remove it.

    While an owner lives, the moment between its container's exit and its
    removal is the owner's; after, nobody else will remove it.
    """
    return record.remove and record.state == State.EXITED and not owner_alive(record.id)


__all__ = ["hold", "kill_orphan_vm", "orphaned_rm", "owner_alive", "reconcile", "start_ticks"]
