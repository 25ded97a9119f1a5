"""The container's stdio as engines hand it over: a pty master over a socket, or fds."""

from __future__ import annotations

import os
import socket
import stat

from cocoon.errors import InvalidArgument


def terminal(path: str) -> int:
    """A new pty whose master goes to the engine over ``path``; its slave, raw.

    The guest's pty does the line discipline: a second one here would echo
    every key twice.
    """
    import tty  # here: only a container with a terminal needs it (and termios)

    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        send(path, master)
    finally:
        os.close(master)
    return slave


def send(path: str, master: int) -> None:
    """The pty's master to whoever listens on --console-socket (SCM_RIGHTS)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
            socket.send_fds(sock, [b"/dev/ptmx"], [master])
        except OSError as e:
            raise InvalidArgument(f"--console-socket {path}: {e.strerror}") from None


def size(fd: int) -> tuple[int, int] | None:
    """The terminal's (rows, columns), or None when it has none set."""
    try:
        columns, rows = os.get_terminal_size(fd)
    except OSError:
        return None
    return (rows, columns) if rows and columns else None


def stdin_open(fd: int) -> bool:
    """Whether the engine gave the container an input (a pipe, socket or file, not /dev/null)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISREG(mode)


__all__ = ["send", "size", "stdin_open"]
