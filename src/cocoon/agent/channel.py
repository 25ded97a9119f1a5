"""Frames to and from the guest agent over the connected virtio-serial port.

``listener`` makes the connection; this side of it is only needed once QEMU
runs, so it is imported while the guest boots.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections import deque

from cocoon.agent.protocol import VERSION, Decoder, Frame, Msg, encode, guest_text
from cocoon.errors import Corrupt, ExternalError, Timeout

# The agent never sends empty frames in a row; a guest that does is spinning
# the host's CPU, not talking.
MAX_EMPTY_FRAMES = 1024


class AgentFailed(ExternalError):
    """The guest agent said itself why the VM could not be set up."""


class Channel:
    """Frames in and out over one connected stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._decoder = Decoder()
        self._pending: deque[Frame] = deque()
        self._send_lock = threading.Lock()
        self._empty = 0  # consecutive empty frames received
        self._pings = 0  # PINGs not answered yet
        self.last_seen = time.monotonic()  # when the guest last sent anything
        self.lost: str | None = None  # why the host gave up on the guest, if it did

    def send(self, type: Msg, proc: int, payload: bytes = b"") -> None:
        data = encode(type, proc, payload)
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError as e:
                raise ExternalError(f"lost the connection to the guest agent: {e}") from e

    def ping(self) -> None:
        """Ask the agent to show it is alive; its PONG is taken by ``recv``."""
        with self._send_lock:
            self._pings += 1
        self.send(Msg.PING, 0)

    def seen(self) -> None:
        self.last_seen = time.monotonic()

    def has_unread(self) -> bool:
        """Whether the guest has sent something nobody has read yet (or hung up)."""
        if self._pending:
            return True
        try:
            return bool(select.select([self._sock], [], [], 0)[0])
        except (OSError, ValueError):  # closed meanwhile: nothing more will come
            return False

    def recv(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None at end of stream (the VM is gone)."""
        while True:
            frame = self._next(timeout)
            if frame is None:
                return None
            self.seen()
            with self._send_lock:
                answered = frame.type is Msg.PONG and frame.proc == 0 and self._pings > 0
                if answered:
                    self._pings -= 1
            if answered:
                continue  # the guest is alive; nothing for the caller
            # An unasked-for PONG counts with the other empty frames.
            self._empty = 0 if frame.payload else self._empty + 1
            if self._empty > MAX_EMPTY_FRAMES:
                raise Corrupt(f"guest protocol: more than {MAX_EMPTY_FRAMES} empty frames in a row")
            return frame

    def _next(self, timeout: float | None) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._sock], [], [], left)[0]:
                    raise Timeout(f"the guest agent did not answer within {timeout:g}s")
            try:
                data = self._sock.recv(1 << 18)
            except OSError as e:
                if self.lost:
                    return None  # the host stopped the VM itself, and says why in .lost
                raise ExternalError(f"lost the connection to the guest agent: {e}") from e
            if not data:
                self._decoder.close()
                return None
            self._pending.extend(self._decoder.feed(data))
        return self._pending.popleft()

    def wait_ready(self, timeout: float) -> str:
        frame = self.recv(timeout)
        if frame is None:
            raise ExternalError("the VM stopped before the guest agent started")
        if frame.type is Msg.ERROR:
            raise AgentFailed(f"guest agent: {guest_text(frame.payload)}")
        if frame.type is not Msg.READY or not frame.payload:
            raise Corrupt(f"guest protocol: expected READY, got {frame.type.name}")
        if frame.payload[0] != VERSION:
            raise Corrupt(
                f"guest agent speaks protocol {frame.payload[0]}, cocoon speaks {VERSION}"
            )
        return guest_text(frame.payload[1:])

    def close(self) -> None:
        self._sock.close()
