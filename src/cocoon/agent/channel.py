"""The host end of the agent's virtio-serial port: a unix socket QEMU connects to.

The host listens before QEMU starts and QEMU connects as a client, so the
guest can never write into a port nobody is reading.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO

from cocoon.agent.protocol import Decoder, Frame, Msg, encode
from cocoon.errors import Corrupt, ExternalError, Timeout


class AgentFailed(ExternalError):
    """The guest agent said itself why the VM could not be set up."""


class Listener:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.bind(str(path))
        self._sock.listen(1)

    def accept(self, vmm_stderr: IO[bytes] | None, timeout: float) -> Channel:
        """Wait for QEMU to connect; fail at once if it exits first.

        QEMU's stderr pipe turns readable when it reports an error or exits,
        which is the event to wait on besides the connection.
        """
        watch: list[object] = [self._sock] + ([vmm_stderr] if vmm_stderr else [])
        ready, _, _ = select.select(watch, [], [], timeout)
        if self._sock in ready:
            conn, _ = self._sock.accept()
            return Channel(conn)
        if ready:
            raise ExternalError("the VMM exited before connecting to the agent port")
        raise Timeout(f"the VMM did not connect to the agent port within {timeout:g}s")

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)


class Channel:
    """Frames in and out over one connected stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._decoder = Decoder()
        self._pending: deque[Frame] = deque()
        self._send_lock = threading.Lock()

    def send(self, type: Msg, proc: int, payload: bytes = b"") -> None:
        data = encode(type, proc, payload)
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError as e:
                raise ExternalError(f"lost the connection to the guest agent: {e}") from e

    def recv(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None at end of stream (the VM is gone)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._sock], [], [], left)[0]:
                    raise Timeout(f"the guest agent did not answer within {timeout:g}s")
            try:
                data = self._sock.recv(1 << 18)
            except OSError as e:
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
            raise AgentFailed(f"guest agent: {frame.payload.decode(errors='replace')}")
        if frame.type is not Msg.READY or not frame.payload:
            raise Corrupt(f"guest protocol: expected READY, got {frame.type.name}")
        if frame.payload[0] != 1:
            raise Corrupt(f"guest agent speaks protocol {frame.payload[0]}, cocoon speaks 1")
        return frame.payload[1:].decode(errors="replace")

    def close(self) -> None:
        self._sock.close()
