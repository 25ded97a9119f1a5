"""A container's lifecycle as a state machine, and the one error for wrong-state operations.

    created ──start──► running ──(main process exits, stop, kill)──► exited
                          ▲                                             │
                          └───────────────────start─────────────────────┘

``running`` means a monitor owns the VM. The operations a user can ask for are
checked here, so every entry point (CLI or library) refuses the same things
with the same message.
"""

from __future__ import annotations

import enum
import time
from typing import Protocol

from cocoon.errors import InvalidState


class State(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"


class Op(enum.StrEnum):
    START = "start"
    STOP = "stop"
    KILL = "kill"
    EXEC = "exec"
    ATTACH = "attach"
    STATS = "stats"
    REMOVE = "remove"
    FORCE_REMOVE = "force-remove"
    WAIT = "wait"


_ALLOWED: dict[Op, frozenset[State]] = {
    Op.START: frozenset({State.CREATED, State.EXITED}),
    Op.STOP: frozenset({State.RUNNING}),
    Op.KILL: frozenset({State.RUNNING}),
    Op.EXEC: frozenset({State.RUNNING}),
    Op.ATTACH: frozenset({State.RUNNING}),
    Op.STATS: frozenset({State.RUNNING}),
    Op.REMOVE: frozenset({State.CREATED, State.EXITED}),
    Op.FORCE_REMOVE: frozenset(State),
    Op.WAIT: frozenset(State),
}

_HINTS = {
    (Op.REMOVE, State.RUNNING): "stop it first or use rm -f",
    (Op.START, State.RUNNING): "it is already running",
}


def can(op: Op, state: State | str) -> bool:
    return State(state) in _ALLOWED[op]


def check(op: Op, state: State | str, name: str) -> None:
    """Raise InvalidState unless ``op`` is allowed for a container in ``state``."""
    state = State(state)
    if not can(op, state):
        hint = _HINTS.get((op, state))
        detail = f": {hint}" if hint else ""
        raise InvalidState(f"cannot {op.value.replace('-', ' ')} container {name}, "
                           f"it is {state.value}{detail}")  # fmt: skip


class Stateful(Protocol):
    """What a transition changes: the fields of a container's record it owns."""

    name: str
    state: State
    exit_code: int | None
    error: str | None
    started: float | None
    finished: float | None
    monitor_pid: int | None
    vm_pid: int | None
    vm_start_ticks: int | None


def to_running(rec: Stateful, *, owner_pid: int, vm_pid: int, vm_start_ticks: int | None) -> None:
    """``rec`` now runs: a VM under ``owner_pid`` (a monitor or a foreground run)."""
    check(Op.START, rec.state, rec.name)
    rec.state, rec.started, rec.finished = State.RUNNING, time.time(), None
    rec.exit_code = rec.error = None
    rec.monitor_pid, rec.vm_pid, rec.vm_start_ticks = owner_pid, vm_pid, vm_start_ticks


def to_exited(rec: Stateful, exit_code: int | None, error: str | None) -> None:
    """``rec``'s VM is gone: the main process's exit code, or why there is none."""
    rec.state, rec.finished = State.EXITED, time.time()
    rec.exit_code, rec.error = exit_code, error


__all__ = ["Op", "State", "can", "check", "to_exited", "to_running"]
