"""What happened to containers, as dockerd's events: one journal every face reads.

The container layer records each change where it happens (create, start,
die, stop, kill, pause, unpause, rename, update, destroy), whoever asked
for it: the CLI, the Python API, the Docker API service or a restart by a
monitor. Events are JSON lines in dockerd's shape in ``<state>/events.jsonl``,
appended under a lock; past ``KEEP_BYTES`` the journal keeps its newest
half. ``cocoon events`` and the service's ``GET /events`` read it, from a
``since`` and then as it grows, until an ``until``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cocoon import paths
from cocoon.errors import InvalidArgument
from cocoon.files import write_atomic
from cocoon.locks import flock

if TYPE_CHECKING:
    from cocoon.container.record import Record

KEEP_BYTES = 1 << 20
POLL = 0.1  # seconds between looks at a journal being followed
FILTERS = ("container", "event", "label", "type", "image")


def journal() -> Path:
    return paths.state_dir() / "events.jsonl"


def emit(action: str, rec: Record, **extra: str) -> None:
    """Record that ``action`` happened to ``rec``; never fails the action itself."""
    labels = rec.config.labels if rec.config is not None else {}
    attributes = {**labels, "name": rec.name, "image": rec.image, **extra}
    now = time.time_ns()
    event = {"status": action, "id": rec.id, "from": rec.image, "Type": "container",
             "Action": action, "Actor": {"ID": rec.id, "Attributes": attributes},
             "scope": "local", "time": now // 1_000_000_000, "timeNano": now}  # fmt: skip
    path = journal()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with flock(path.with_suffix(".lock")):
            with open(path, "a") as f:
                f.write(json.dumps(event) + "\n")
                size = f.tell()
            if size > KEEP_BYTES:
                lines = path.read_bytes().splitlines(keepends=True)
                write_atomic(path, b"".join(lines[len(lines) // 2 :]))


def parse_time(text: str, what: str) -> float:
    """``--since``/``--until`` as Docker takes them: seconds since the epoch, an RFC 3339
    time, or a duration before now (``10m``, ``1h30m``); seconds since the epoch."""
    from datetime import datetime

    from cocoon.container.health import parse_duration

    with contextlib.suppress(ValueError):
        return float(text)
    with contextlib.suppress(ValueError):
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return stamp.timestamp()  # a time without a zone is local, as Docker's
    try:
        return time.time() - parse_duration(text, what)
    except InvalidArgument:
        raise InvalidArgument(
            f"{what} {text!r}: use seconds since the epoch, an RFC 3339 time or a duration (10m)"
        ) from None


def check_filters(wanted: Mapping[str, Sequence[str]]) -> None:
    for key in wanted:
        if key not in FILTERS:
            raise InvalidArgument(f"invalid filter {key!r} (use {', '.join(FILTERS)})")


def matches(event: dict[str, Any], wanted: Mapping[str, Sequence[str]]) -> bool:
    attributes = event["Actor"]["Attributes"]

    def label(text: str) -> bool:
        key, sep, value = text.partition("=")
        return attributes.get(key) == value if sep else key in attributes

    tests: dict[str, Callable[[str], bool]] = {
        "type": lambda v: v == "container",
        "event": lambda v: v == event["Action"],
        "container": lambda v: event["id"].startswith(v) or v == attributes.get("name"),
        "image": lambda v: v == attributes.get("image"),
        "label": label,
    }
    return all(any(tests[key](v) for v in values) for key, values in wanted.items())


def _read_from(f: BinaryIO, after_ns: int) -> Iterator[dict[str, Any]]:
    """Whole lines from ``f``'s position on; a line still being written waits."""
    while line := f.readline():
        if not line.endswith(b"\n"):
            f.seek(-len(line), os.SEEK_CUR)
            return
        with contextlib.suppress(ValueError, KeyError, TypeError):
            event = json.loads(line)
            if event["timeNano"] > after_ns:
                yield event


def follow(
    since: float | None,
    until: float | None,
    wanted: Mapping[str, Sequence[str]],
    stopped: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, Any]]:
    """Events from ``since`` (seconds; None: from now on, as dockerd) that match ``wanted``,
    then new ones as they come, until ``until`` passes or ``stopped()`` says so."""
    check_filters(wanted)
    sent = time.time_ns() if since is None else int(since * 1e9) - 1
    limit = float("inf") if until is None else until
    path, inode = journal(), None
    f: BinaryIO | None = None
    with contextlib.ExitStack() as opened:
        while True:
            with contextlib.suppress(FileNotFoundError):
                now = os.stat(path).st_ino
                if now != inode:  # first look, or the journal was trimmed: read it anew
                    opened.close()
                    f, inode = opened.enter_context(open(path, "rb")), now
            for event in _read_from(f, sent) if f is not None else ():
                sent = event["timeNano"]
                if event["timeNano"] / 1e9 > limit:
                    return
                if matches(event, wanted):
                    yield event
            if time.time() > limit or stopped():
                return
            time.sleep(POLL)


__all__ = ["FILTERS", "check_filters", "emit", "follow", "journal", "matches", "parse_time"]
