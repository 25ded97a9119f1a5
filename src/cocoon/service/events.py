"""``GET /events``: the container layer's event journal (``cocoon.container.events``),
as dockerd's event stream.

Every change to a container is there, whoever made it (this service, the
CLI, the Python API, a restarting monitor). A client gets the events since
its ``since`` and then new ones as they happen, until ``until`` or until it
hangs up.
"""

from __future__ import annotations

import json

from cocoon.container import events
from cocoon.service import params
from cocoon.service.http import Request


def stream(req: Request) -> None:
    wanted = params.filters(req.arg("filters"))
    events.check_filters(wanted)
    # Without ``since`` only events from now on, as dockerd.
    since = params.seconds(req.arg("since")) if req.arg("since") else None
    until = params.seconds(req.arg("until")) or None
    req.handler.start_stream("application/json")
    for event in events.follow(since, until, wanted):
        req.handler.chunk(json.dumps(event).encode() + b"\n")
        req.handler.wfile.flush()
    req.handler.end_stream()


__all__ = ["stream"]
