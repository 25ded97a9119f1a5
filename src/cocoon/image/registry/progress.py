"""Per-blob progress of a pull or push: a rich display on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
import threading
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)


class Reporter(Protocol):
    """What a transfer tells about each blob; called from worker threads."""

    def start(self, digest: str, size: int, verb: str) -> None: ...

    def advance(self, digest: str, n: int) -> None: ...

    def finish(self, digest: str, note: str) -> None: ...


class Quiet:
    def start(self, digest: str, size: int, verb: str) -> None:
        pass

    def advance(self, digest: str, n: int) -> None:
        pass

    def finish(self, digest: str, note: str) -> None:
        pass


class Bars:
    """One bar per blob, named by its short digest as Docker does."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.fields[short]}"),
            TextColumn("{task.description:<12}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Bars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, digest: str, size: int, verb: str) -> None:
        with self._lock:
            short = digest.partition(":")[2][:12]
            self._tasks[digest] = self._progress.add_task(verb, total=size, short=short)

    def advance(self, digest: str, n: int) -> None:
        self._progress.advance(self._tasks[digest], n)

    def finish(self, digest: str, note: str) -> None:
        task = self._tasks[digest]
        total = self._progress.tasks[task].total
        self._progress.update(task, description=note, completed=total)


def for_stderr() -> Bars | None:
    """Bars on stderr when it is a terminal; None (stay quiet) otherwise."""
    if not sys.stderr.isatty():
        return None
    return Bars(Console(stderr=True))


__all__ = ["Bars", "Quiet", "Reporter", "for_stderr"]
