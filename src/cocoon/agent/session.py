"""One process in the guest, driven from the host: stdio relayed, signals forwarded.

The calling thread reads frames (output, exit); a helper thread feeds stdin,
so a process that fills its stdout while the host is still sending stdin
can never deadlock the two.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cocoon.agent.channel import Channel
from cocoon.agent.protocol import Msg, encode_run, exit_status, guest_text, resize_payload
from cocoon.agent.spec import ProcessSpec
from cocoon.errors import Corrupt, ExternalError

Sink = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a process ended, as Docker reports it."""

    code: int  # the process's exit code, or 128+N for signal N (Docker's convention)
    signal: int | None = None
    error: str | None = None  # why the process could not start


def decode_exit(how: tuple[bool, int], error: str | None = None) -> ExitStatus:
    """An EXIT's (killed by a signal?, code) as Docker reports it: 128+N for signal N."""
    signaled, code = how
    if signaled:
        return ExitStatus(128 + code, signal=code, error=error)
    return ExitStatus(code, error=error)


class Process:
    def __init__(self, channel: Channel, proc: int = 1) -> None:
        self.channel = channel
        self.proc = proc

    def start(self, spec: ProcessSpec) -> None:
        self.channel.send(Msg.RUN, self.proc, encode_run(spec))

    def signal(self, signum: int) -> None:
        self.channel.send(Msg.SIGNAL, self.proc, bytes([signum]))

    def resize(self, rows: int, columns: int) -> None:
        self.channel.send(Msg.RESIZE, self.proc, resize_payload(rows, columns))

    def feed_stdin(self, fd: int) -> threading.Thread:
        """Forward ``fd`` to the process's stdin until EOF, in a daemon thread."""

        def pump() -> None:
            try:
                while data := os.read(fd, 1 << 16):
                    self.channel.send(Msg.STDIN, self.proc, data)
                self.channel.send(Msg.STDIN, self.proc, b"")
            except (OSError, ExternalError):
                pass  # the VM went away; the reader reports that

        thread = threading.Thread(target=pump, name="cocoon-stdin", daemon=True)
        thread.start()
        return thread

    def send_stdin(self, data: bytes) -> None:
        for i in range(0, len(data), 1 << 16):
            self.channel.send(Msg.STDIN, self.proc, data[i : i + (1 << 16)])
        self.channel.send(Msg.STDIN, self.proc, b"")

    def relay(self, stdout: Sink, stderr: Sink) -> ExitStatus:
        """Deliver output until the process's EXIT arrives."""
        error = None
        while True:
            frame = self.channel.recv()
            if frame is None:
                if self.channel.lost:
                    # The host stopped a silent guest: the process was killed with it.
                    return ExitStatus(128 + signal.SIGKILL, signal.SIGKILL, self.channel.lost)
                raise ExternalError("the VM stopped before the container process exited")
            if frame.proc != self.proc and frame.proc != 0:
                continue
            match frame.type:
                case Msg.STDOUT:
                    stdout(frame.payload)
                case Msg.STDERR:
                    stderr(frame.payload)
                case Msg.STARTED:
                    pass
                case Msg.ERROR if frame.proc == 0:
                    raise ExternalError(f"guest agent: {guest_text(frame.payload)}")
                case Msg.ERROR:
                    error = guest_text(frame.payload)
                case Msg.EXIT:
                    return decode_exit(exit_status(frame.payload), error)
                case _:
                    raise Corrupt(f"guest protocol: unexpected {frame.type.name} from the guest")
