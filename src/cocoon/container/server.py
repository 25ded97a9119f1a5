"""The server side of the monitor's control socket (protocol in ``control.py``).

One thread accepts; each client gets a thread of its own that reads its one
request and either answers it or, for ``exec`` and ``attach``, pumps its
input frames to the container's process until it hangs up.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cocoon.agent.channel import Channel
from cocoon.container.control import read_line, send_line
from cocoon.errors import CocoonError, InvalidArgument, to_wire
from cocoon.log import Logger

log = Logger("cocoon.monitor")

# Seconds a client may leave its socket full before it is dropped: well under
# the 5 s the agent waits for the host to read before it gives up on output.
CLIENT_SEND_TIMEOUT = 2
DRAIN_GRACE = 2.0

# A request's handler: the request in, one JSON answer out (or CocoonError).
Handler = Callable[[dict[str, Any]], dict[str, Any]]
# A stream's handler: it owns the client's channel until the client is done.
StreamHandler = Callable[[Channel], None]


class ControlServer:
    def __init__(
        self, path: Path, requests: dict[str, Handler], streams: dict[str, StreamHandler]
    ) -> None:
        self.requests = requests
        self.streams = streams
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.bind(str(path))
        self._sock.listen(16)

    def start(self) -> None:
        threading.Thread(target=self._serve, name="cocoon-control", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed at exit
            # One reader thread relays the guest's frames to every client: a
            # client that stops reading must not stall the container, so a
            # send that cannot finish in time drops that client instead.
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", CLIENT_SEND_TIMEOUT, 0)
            )
            thread = threading.Thread(target=self._client, args=(conn,), daemon=True)
            thread.start()
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _client(self, conn: socket.socket) -> None:
        try:
            req = read_line(conn)
            if req is None:
                conn.close()
                return
            op = str(req.get("op"))
            if op in self.streams:
                self.streams[op](Channel(conn))
                return
            with conn:
                try:
                    handler = self.requests.get(op)
                    if handler is None:
                        raise InvalidArgument(f"unknown control request {op!r}")
                    reply = handler(req)
                except CocoonError as e:
                    reply = to_wire(e)
                send_line(conn, reply)
        except (OSError, ValueError, CocoonError) as e:
            log.debug("client dropped: %s", e)
            conn.close()

    def close(self) -> None:
        """Stop accepting; let answers already being written (stop, wait) go out."""
        self._sock.close()
        with self._lock:
            pending = list(self._threads)
        deadline = time.monotonic() + DRAIN_GRACE
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(OSError):
            self._sock.close()


__all__ = ["ControlServer"]
