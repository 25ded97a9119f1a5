"""What the service learns of containers' exits, so ``wait`` can answer.

A container made with ``--rm`` (AutoRemove) is gone right after it exits:
its exit code lives on only here. Whenever a container is seen running,
one thread asks its monitor to say when it exits (the control socket's
``wait``, answered before the monitor removes anything).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from cocoon.container import control, manager
from cocoon.container.state import State
from cocoon.errors import CocoonError, NotFound

POLL = 0.05


class Exits:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count: dict[str, int] = {}  # exits seen per container
        self._codes: dict[str, int | None] = {}  # the last of them
        self._watching: set[str] = set()
        self.on_exit: Callable[[str, int | None], None] = lambda cid, code: None

    def seen(self, container_id: str) -> int:
        with self._cond:
            return self._count.get(container_id, 0)

    def watch(self, container_id: str) -> None:
        """Learn the exit of the running container ``container_id`` (once per run)."""
        with self._cond:
            if container_id in self._watching:
                return
            self._watching.add(container_id)
        threading.Thread(target=self._watch, args=(container_id,), daemon=True).start()

    def _watch(self, container_id: str) -> None:
        code: int | None = None
        try:
            code = control.request(container_id, "wait").get("exit_code")
        except CocoonError:
            # No monitor to ask (a foreground `cocoon run`), or it is gone already.
            with contextlib.suppress(CocoonError):
                code = manager.wait(container_id).exit_code
        with self._cond:
            self._watching.discard(container_id)
            self._count[container_id] = self._count.get(container_id, 0) + 1
            self._codes[container_id] = code
            self._cond.notify_all()
        self.on_exit(container_id, code)

    def next_exit(self, container_id: str, seen: int, since: float) -> int | None:
        """The exit code of the container's first exit after ``seen`` exits and ``since``."""
        while True:
            with self._cond:
                if self._count.get(container_id, 0) > seen:
                    return self._codes[container_id]
            try:
                rec = manager.get(container_id)
            except NotFound:
                with self._cond:
                    return self._codes.get(container_id)
            if rec.state == State.RUNNING:
                self.watch(container_id)
            elif rec.state == State.EXITED and (rec.finished or 0) >= since:
                return rec.exit_code
            with self._cond:
                self._cond.wait(POLL)

    @staticmethod
    def removed(container_id: str) -> None:
        """Return once the container's record is gone."""
        while True:
            try:
                manager.get(container_id)
            except NotFound:
                return
            time.sleep(POLL)


__all__ = ["Exits"]
