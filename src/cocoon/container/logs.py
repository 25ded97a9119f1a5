"""A container's output log: JSON lines, one per line of output, stream and time kept.

``<container folder>/container.log`` holds ``{"t": <epoch>, "stream":
"stdout"|"stderr", "log": <text>}`` entries, as Docker's json-file driver does.
Output bytes that are not UTF-8 survive the round trip (surrogate escapes).
Only the monitor writes; each entry is one ``write`` to an ``O_APPEND`` file,
so a reader following the file never sees half an entry except at its end.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from cocoon.container import record as records

# A line longer than this is logged in pieces, so one endless line cannot
# hold the log back or grow the monitor without bound.
MAX_LINE = 16 * 1024
FOLLOW_POLL = 0.1


def path(container_id: str) -> Path:
    return records.folder(container_id) / "container.log"


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a container's output: when, which stream, the bytes."""

    time: float
    stream: str  # "stdout" or "stderr"
    data: bytes


class Writer:
    def __init__(self, container_id: str) -> None:
        self._fd = os.open(path(container_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._partial: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._partial[stream]
        buf += data
        while (end := buf.find(b"\n")) >= 0 or len(buf) >= MAX_LINE:
            cut = end + 1 if end >= 0 else MAX_LINE
            self._emit(stream, bytes(buf[:cut]))
            del buf[:cut]

    def _emit(self, stream: str, line: bytes) -> None:
        text = line.decode("utf-8", "surrogateescape")
        entry = {"t": time.time(), "stream": stream, "log": text}
        os.write(self._fd, (json.dumps(entry) + "\n").encode())

    def close(self) -> None:
        """Log what is left of unfinished lines, then close."""
        for stream, buf in self._partial.items():
            if buf:
                self._emit(stream, bytes(buf))
                buf.clear()
        os.close(self._fd)


def _parse(line: bytes) -> Entry:
    raw = json.loads(line)
    return Entry(raw["t"], raw["stream"], raw["log"].encode("utf-8", "surrogateescape"))


def read(container_id: str, tail: int | None = None) -> list[Entry]:
    """The log's entries; only the last ``tail`` when given."""
    try:
        with open(path(container_id), "rb") as f:
            lines = deque(f, maxlen=tail) if tail is not None else list(f)
    except FileNotFoundError:
        return []
    return [_parse(line) for line in lines if line.endswith(b"\n")]


def follow(container_id: str, tail: int | None, running: Callable[[], bool]) -> Iterator[Entry]:
    """The last ``tail`` entries (all when None), then new ones until the container stops."""
    log_path = path(container_id)
    log_path.touch()
    with open(log_path, "rb") as f:
        lines = deque(f, maxlen=tail) if tail is not None else list(f)
        pending = b""
        for line in lines:
            if line.endswith(b"\n"):
                yield _parse(line)
            else:
                pending = line
        while True:
            alive = running()  # asked before reading: nothing written after is missed
            chunk = f.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield _parse(line)
            elif not alive:
                return
            else:
                time.sleep(FOLLOW_POLL)


def shown(
    container_id: str,
    *,
    tail: int | None = None,
    keep_following: bool = False,
    streams: Collection[str] = ("stdout", "stderr"),
    since: float = 0,
    until: float | None = None,
) -> Iterator[Entry]:
    """What ``cocoon logs``, the client's ``logs()`` and the API's logs show: the last
    ``tail`` entries (all when None) of ``streams`` written between ``since`` and
    ``until`` (epoch seconds), then with ``keep_following`` new ones until the
    container stops."""
    from cocoon.container import liveness

    if keep_following:
        found = follow(container_id, tail, lambda: liveness.owner_alive(container_id))
    else:
        found = iter(read(container_id, tail))
    for entry in found:
        if (
            entry.stream in streams
            and since <= entry.time
            and (until is None or entry.time <= until)
        ):
            yield entry


def stamp(when: float) -> bytes:
    """RFC 3339 with nanoseconds and a space, as ``docker logs --timestamps`` starts a line."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
    return f"{whole}.{int(when % 1 * 1e9):09d}Z ".encode()


__all__ = ["Entry", "Writer", "follow", "path", "read", "shown", "stamp"]
