"""Running `cocoon` on a pseudo-terminal, as from a user's shell."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios


class Terminal:
    """`cocoon` on a pseudo-terminal that is its controlling terminal, as in a user's shell.

    So resizing the terminal sends the CLI SIGWINCH and keys reach it as typed.
    """

    def __init__(self, cocoon, *args: str, rows: int = 40, cols: int = 100) -> None:
        self.master, slave = pty.openpty()
        self.resize(rows, cols)
        self.proc = cocoon.popen(
            *args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )  # fmt: skip
        os.close(slave)
        self.output = b""

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def _read(self) -> bool:
        ready, _, _ = select.select([self.master], [], [], 120)
        try:
            chunk = os.read(self.master, 4096) if ready else b""
        except OSError:  # EIO: the other side is closed
            chunk = b""
        self.output += chunk
        return bool(chunk)

    def expect(self, needle: bytes) -> None:
        while needle not in self.output:
            assert self._read(), f"{needle!r} never came; got {self.output!r}"

    def finish(self) -> tuple[int, list[str]]:
        """The CLI's exit code and every line it showed."""
        while self._read():
            pass
        os.close(self.master)
        return self.proc.wait(30), self.output.decode().replace("\r", "").splitlines()
