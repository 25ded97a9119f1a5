"""The caller's terminal: raw mode for -t, its size, signals, attaching to a process."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Callable, Iterator
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
def raw(fd: int | None, tty_wanted: bool = True) -> Iterator[None]:
    """Raw mode, so keys (Ctrl-C too) go to the container's own terminal.

    Only for ``-t`` with ``-i`` (``tty_wanted`` and an ``fd``), and only
    when ``fd`` is a terminal; otherwise nothing changes.
    """
    if fd is None or not tty_wanted or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    # TCSANOW: setraw's default (TCSAFLUSH) discards input not yet read, so
    # keys typed while the VM boots would be lost.
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def relay_signals(process: Process, size_fd: int | None) -> None:
    """Forward the CLI's signals to the container process; window changes with -t.

    A second Ctrl-C (or SIGTERM) is not forwarded: it gets the user out, as
    KeyboardInterrupt, even from a container that ignores the first or a
    guest that no longer answers.
    """
    interrupted = False

    def forward(signum: int, frame: object) -> None:
        nonlocal interrupted
        if signum in (signal.SIGINT, signal.SIGTERM):
            if interrupted:
                raise KeyboardInterrupt
            interrupted = True
        with contextlib.suppress(Exception):
            process.signal(signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    if size_fd is not None:

        def resize(signum: int, frame: object) -> None:
            with contextlib.suppress(Exception):
                process.resize(*size(size_fd))

        signal.signal(signal.SIGWINCH, resize)


def stdio_writer(fd: int) -> Callable[[bytes], None]:
    broken = False

    def write(data: bytes) -> None:
        nonlocal broken
        view = memoryview(data)
        while view and not broken:
            try:
                view = view[os.write(fd, view) :]
            except BrokenPipeError:
                broken = True  # reader gone; keep draining so the container can finish

    return write


def report(code: int, error: str | None) -> int:
    """The CLI's exit code for a finished process, saying first why it could not start."""
    if error:
        print(f"cocoon: {error}", file=sys.stderr)
    return code


def attach(process: Process, *, stdin_fd: int | None, tty: bool) -> int:
    """Relay a process to this terminal until it exits: stdin in, signals on, output out."""
    out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    if stdin_fd is not None:
        process.feed_stdin(stdin_fd)
    relay_signals(process, out_fd if tty else None)
    with raw(stdin_fd, tty):
        status = process.relay(stdio_writer(out_fd), stdio_writer(err_fd))
    return report(status.code, status.error)
