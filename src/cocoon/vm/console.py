"""The guest console on the host: copied from the VMM into a log of bounded size.

Anything in the guest that can write to ``/dev/console`` (a root process in
the container can) would otherwise grow a host file without end. The VMM
writes the console to a pipe; one thread copies it into ``console.log``,
which is rotated to ``console.log.1`` when it passes ``limit`` bytes, so the
two together never hold more than twice that. While the thread is behind,
the pipe fills and the guest's console writes wait: a guest that floods its
console slows itself, not the host.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from cocoon.text import printable

LIMIT = 1 << 20


class ConsoleLog:
    def __init__(self, path: Path, limit: int = LIMIT) -> None:
        self.path = path
        self.limit = limit
        self._thread: threading.Thread | None = None

    def start(self, fd: int) -> None:
        """Copy from ``fd`` (the read end of the VMM's console pipe) until it closes."""
        self._thread = threading.Thread(
            target=self._pump, args=(fd,), name="cocoon-console", daemon=True
        )
        self._thread.start()

    def _pump(self, fd: int) -> None:
        out = open(self.path, "ab")  # noqa: SIM115 - reopened on rotation
        try:
            written = out.tell()
            while data := os.read(fd, 65536):
                if written + len(data) > self.limit:
                    out.close()
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                    out = open(self.path, "ab")  # noqa: SIM115
                    written = 0
                out.write(data[: self.limit])
                out.flush()
                written += min(len(data), self.limit)
        except OSError:
            pass  # the log's disk is full or gone; the pipe still drains below
        finally:
            out.close()
            with contextlib.suppress(OSError):
                while os.read(fd, 65536):
                    pass
            os.close(fd)

    def join(self, timeout: float = 2.0) -> None:
        """Wait until everything the VMM wrote is in the log (the VMM has exited)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def last_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.path.read_text(errors="replace").strip().splitlines()
            if lines:
                return printable(lines[-1])
        return ""


__all__ = ["LIMIT", "ConsoleLog"]
