"""A client of QEMU's machine protocol (QMP): JSON commands over a unix socket.

QEMU serves it on the socket the machine was given (``-qmp unix:...``). The
client connects only when a command is needed (pause, resume, status): a
container that never asks pays nothing for it. Everything QEMU sends is
parsed as JSON and bounded in size; events that arrive between replies are
kept for whoever wants them.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from cocoon.errors import ExternalError, Timeout

MAX_LINE = 1 << 20


class QmpError(ExternalError):
    """QEMU refused a command; its own class and description say why."""


class Qmp:
    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.settimeout(timeout)
        self._buf = bytearray()
        self.events: list[dict[str, Any]] = []
        try:
            self._sock.connect(str(path))
            greeting = self._read()
            if "QMP" not in greeting:
                raise ExternalError(f"QMP: unexpected greeting {str(greeting)[:80]}")
            self.execute("qmp_capabilities")
        except OSError as e:
            self._sock.close()
            raise ExternalError(f"cannot reach the VMM's control socket: {e}") from e
        except BaseException:
            self._sock.close()
            raise

    def _read(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            try:
                data = self._sock.recv(65536)
            except TimeoutError as e:
                raise Timeout("the VMM did not answer on its control socket") from e
            if not data:
                raise ExternalError("the VMM closed its control socket")
            self._buf += data
            if len(self._buf) > MAX_LINE:
                raise ExternalError("QMP: reply too long")
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        try:
            message = json.loads(line)
        except ValueError as e:
            raise ExternalError("QMP: a reply that is not JSON") from e
        if not isinstance(message, dict):
            raise ExternalError("QMP: a reply that is not an object")
        return message

    def execute(self, command: str, *, fd: int | None = None, **arguments: Any) -> Any:
        """Run ``command`` and return what QEMU returned; QmpError if it refused.

        ``fd`` goes along with the command (SCM_RIGHTS), as ``getfd`` wants.
        """
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        data = json.dumps(request).encode() + b"\n"
        try:
            if fd is None:
                self._sock.sendall(data)
            else:
                socket.send_fds(self._sock, [data], [fd])
        except OSError as e:
            raise ExternalError(f"lost the VMM's control socket: {e}") from e
        while True:
            message = self._read()
            if "event" in message:
                self.events.append(message)
                continue
            if "error" in message:
                error = message["error"]
                raise QmpError(f"{command}: {error.get('desc', 'refused')}")
            return message.get("return")

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Qmp", "QmpError"]
