"""The monitor's control socket: what clients send, and the client side of it.

A client connects to ``ctl.sock`` in the container's run dir and sends one
JSON line ``{"op": ...}``. ``stop``, ``kill``, ``wait`` and ``hosts`` get one
JSON line back (``{"ok": true, ...}``, or ``{"error": "...", "code": "..."}``
rebuilt here as the same ``cocoon.errors`` class). ``exec`` and ``attach``
turn the connection into a stream of guest-protocol frames
(docs/guest-protocol.md) in which proc 1 is the client's process: ``exec``
starts with the client's ``RUN``; both carry ``STDIN``/``SIGNAL``/``RESIZE``
from the client and ``STARTED``/``STDOUT``/``STDERR``/``ERROR``/``EXIT`` back,
so the host's one framing code path serves here too. The server is
``server.py``.
"""

from __future__ import annotations

import json

from cocoon.errors import ExternalError, InvalidState, from_code
from cocoon.paths import sock_dir

TYPE_CHECKING = False  # typing's, without importing typing: see cocoon/__init__.py
if TYPE_CHECKING:
    import socket
    from typing import Any

    from cocoon.agent.channel import Channel

SOCKET = "ctl.sock"
PAUSED = "paused"  # a marker beside the socket: gone with the run dir when the VM stops
MAX_REQUEST = 64 * 1024


def _connect(container_id: str) -> socket.socket:
    # Imported here: the OCI runtime's state and delete look at the socket's
    # folder (paused) without connecting, in a process of their own each.
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(str(sock_dir(container_id) / SOCKET))
    except OSError as e:
        sock.close()
        raise InvalidState(f"container {container_id[:12]} is not running") from e
    return sock


def send_line(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def read_line(sock: socket.socket) -> dict[str, Any] | None:
    """One JSON object on a line, read byte by byte so no frame after it is consumed."""
    data = bytearray()
    while not data.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            return None
        data += byte
        if len(data) > MAX_REQUEST:
            raise ExternalError("control message too long")
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ExternalError("control message is not a JSON object")
    return message


def request(container_id: str, op: str, **args: Any) -> dict[str, Any]:
    """Send one request to the container's monitor and return its answer."""
    with _connect(container_id) as sock:
        try:
            send_line(sock, {"op": op, **args})
            reply = read_line(sock)
        except (OSError, ValueError) as e:
            raise ExternalError(f"lost the connection to the container's monitor: {e}") from e
    if reply is None:
        raise ExternalError("the container's monitor closed the connection")
    if "error" in reply:
        raise from_code(reply.get("code"), str(reply["error"]))
    return reply


def paused(container_id: str) -> bool:
    """Whether the monitor froze the VM (``pause``); answered without asking it."""
    return (sock_dir(container_id) / PAUSED).exists()


def mark_paused(container_id: str, on: bool) -> None:
    marker = sock_dir(container_id) / PAUSED
    if on:
        marker.touch()
    else:
        marker.unlink(missing_ok=True)


def session(container_id: str, op: str) -> Channel:
    """A frame stream to one process in the container (``exec`` or ``attach``)."""
    sock = _connect(container_id)
    try:
        send_line(sock, {"op": op})
    except OSError as e:
        sock.close()
        raise ExternalError(f"lost the connection to the container's monitor: {e}") from e
    # Here: a request (the OCI runtime's start, kill, pause) needs no framing.
    from cocoon.agent.channel import Channel

    return Channel(sock)


__all__ = ["PAUSED", "SOCKET", "mark_paused", "paused", "read_line", "request", "send_line",
           "session"]  # fmt: skip
