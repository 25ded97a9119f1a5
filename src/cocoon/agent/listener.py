"""The host end of the agent's virtio-serial port: a unix socket QEMU connects to.

The host listens before QEMU starts and QEMU connects as a client, so the
guest can never write into a port nobody is reading. The framing over the
connection (``channel``, ``protocol``) is imported by ``accept``, once QEMU
runs: it then costs nothing, as the guest takes far longer to boot.
"""

from __future__ import annotations

import select
import socket
from pathlib import Path
from typing import IO, TYPE_CHECKING

from cocoon.errors import ExternalError, Timeout

if TYPE_CHECKING:
    from cocoon.agent.channel import Channel


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
        from cocoon.agent.channel import Channel

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
