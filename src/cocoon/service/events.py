"""``GET /events``: what the service did to containers, as dockerd's event stream.

The service records the events of containers it acts on (create, start,
die, stop, kill, destroy) in a bounded buffer; a client gets those since
its ``since`` and then new ones as they happen, until ``until`` or until it
hangs up. Containers only the CLI touches make no events here.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from typing import Any

from cocoon.container.record import Record
from cocoon.errors import InvalidArgument
from cocoon.service import params
from cocoon.service.http import Request

KEEP = 1000
WAKE = 1.0  # seconds between checks of ``until``
_FILTERS = ("container", "event", "label", "type", "image")


class Events:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEEP)
        self._actors: dict[str, dict[str, str]] = {}  # container id -> its attributes

    def remember(self, rec: Record) -> None:
        """Keep what events name the container by, for when its record is gone."""
        attributes = {**(rec.settings.labels if rec.config else {}),
                      "name": rec.name, "image": rec.image}  # fmt: skip
        with self._cond:
            self._actors[rec.id] = attributes

    def emit(self, action: str, container_id: str, **extra: str) -> None:
        now = time.time_ns()
        with self._cond:
            if action == "destroy" and container_id not in self._actors:
                return  # told already (rm of a container that was also --rm)
            attributes = {**self._actors.get(container_id, {}), **extra}
            self._events.append({
                "status": action,
                "id": container_id,
                "from": attributes.get("image", ""),
                "Type": "container",
                "Action": action,
                "Actor": {"ID": container_id, "Attributes": attributes},
                "scope": "local",
                "time": now // 1_000_000_000,
                "timeNano": now,
            })  # fmt: skip
            if action == "destroy":
                self._actors.pop(container_id, None)
            self._cond.notify_all()

    def stream(self, req: Request) -> None:
        wanted = params.filters(req.arg("filters"))
        for key in wanted:
            if key not in _FILTERS:
                raise InvalidArgument(f"invalid filter {key!r}")
        since = params.seconds(req.arg("since"))
        until = params.seconds(req.arg("until")) or float("inf")
        req.handler.start_stream("application/json")
        # Without ``since`` only events from now on, as dockerd.
        sent = int(since * 1e9) - 1 if req.arg("since") else time.time_ns()
        while True:
            with self._cond:
                new = [e for e in self._events if e["timeNano"] > sent]
                if not new:
                    self._cond.wait(WAKE)
                    new = [e for e in self._events if e["timeNano"] > sent]
            for event in new:
                sent = event["timeNano"]
                if event["timeNano"] / 1e9 < since or event["timeNano"] / 1e9 > until:
                    continue
                if _matches(event, wanted):
                    req.handler.chunk(json.dumps(event).encode() + b"\n")
            if time.time() > until:
                break
            req.handler.wfile.flush()
        req.handler.end_stream()


def _matches(event: dict[str, Any], wanted: dict[str, list[str]]) -> bool:
    attributes = event["Actor"]["Attributes"]

    def label(text: str) -> bool:
        key, sep, value = text.partition("=")
        return attributes.get(key) == value if sep else key in attributes

    tests = {
        "type": lambda v: v == "container",
        "event": lambda v: v == event["Action"],
        "container": lambda v: event["id"].startswith(v) or v == attributes.get("name"),
        "image": lambda v: v == attributes.get("image"),
        "label": label,
    }
    return all(any(tests[key](v) for v in values) for key, values in wanted.items())


__all__ = ["Events"]
