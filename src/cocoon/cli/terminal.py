"""The caller's terminal: raw mode for -t, its size, and relaying signals."""

from __future__ import annotations

import contextlib
import os
import signal
import termios
import tty
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cocoon.agent.session import Process

# What `docker run` proxies to the container (sig-proxy).
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def size(fd: int) -> tuple[int, int]:
    try:
        columns, rows = os.get_terminal_size(fd)
    except OSError:
        return 24, 80
    return rows, columns


@contextlib.contextmanager
def raw(fd: int) -> Iterator[None]:
    """Raw mode, so keys (Ctrl-C too) go to the container's own terminal."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def relay_signals(process: Process, size_fd: int | None) -> None:
    """Forward the CLI's signals to the container process; window changes with -t."""

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(Exception):
            process.signal(signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    if size_fd is not None:

        def resize(signum: int, frame: object) -> None:
            with contextlib.suppress(Exception):
                process.resize(*size(size_fd))

        signal.signal(signal.SIGWINCH, resize)
