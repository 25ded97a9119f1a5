"""A process's output on a hijacked connection or a log stream, in dockerd's framing.

Without a terminal each piece of output is one frame: an 8-byte header
``[stream, 0, 0, 0, length as big-endian 32 bits]`` (1 stdout, 2 stderr)
and the bytes; with a terminal the bytes go as they are.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from typing import BinaryIO

from cocoon.agent.protocol import Msg
from cocoon.agent.session import ExitStatus, Process
from cocoon.errors import CocoonError

STDOUT, STDERR = 1, 2
_HEADER = struct.Struct(">BxxxI")
MAX_FRAME = 1 << 20


def frame(stream: int, data: bytes) -> bytes:
    return b"".join(
        _HEADER.pack(stream, len(part)) + part
        for part in (data[i : i + MAX_FRAME] for i in range(0, len(data), MAX_FRAME))
    )


def encoder(tty: bool) -> Callable[[int, bytes], bytes]:
    """How output of ``stream`` is written: framed, or raw with a terminal."""
    if tty:
        return lambda stream, data: data
    return frame


def relay(
    process: Process,
    conn: socket.socket,
    rfile: BinaryIO,
    *,
    tty: bool,
    stdin: bool,
    stdout: bool = True,
    stderr: bool = True,
) -> ExitStatus | None:
    """Pump the client's bytes to the process's stdin and its output back, until it exits.

    ``rfile`` is the connection's buffered reader: bytes the client sent
    right behind its request may already be in it. None when the
    connection to the container was lost before the process's exit.
    """
    encode = encoder(tty)
    lock = threading.Lock()

    def sender(stream: int, wanted: bool) -> Callable[[bytes], None]:
        def send(data: bytes) -> None:
            if wanted and data:
                with lock, contextlib.suppress(OSError):
                    conn.sendall(encode(stream, data))

        return send

    if stdin:
        threading.Thread(target=_pump_stdin, args=(process, rfile), daemon=True).start()
    try:
        status = process.relay(sender(STDOUT, stdout), sender(STDERR, stderr))
    except CocoonError:
        return None
    if status.error:  # why the command could not start (exit 126 or 127)
        sender(STDERR, stderr)(f"{status.error}\n".encode())
    return status


def _pump_stdin(process: Process, rfile: BinaryIO) -> None:
    """The client's bytes until it closes its side (or hangs up), then end of input."""
    with contextlib.suppress(OSError, CocoonError):
        while data := rfile.read1(1 << 16):  # type: ignore[attr-defined]
            process.channel.send(Msg.STDIN, process.proc, data)
        process.channel.send(Msg.STDIN, process.proc, b"")


__all__ = ["STDERR", "STDOUT", "encoder", "frame", "relay"]
