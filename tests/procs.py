"""Finding the processes a test (or the benchmark) started, through /proc."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
from collections.abc import Callable
from pathlib import Path


def pids_where(match: Callable[[Path], bool]) -> list[int]:
    """Pids of processes for which ``match(/proc/PID)`` holds; gone ones are skipped."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if match(proc):
                pids.append(int(proc.name))
        except OSError:
            continue  # exited while we looked
    return pids


def vms_of(state: Path) -> list[int]:
    """QEMU processes whose command line points into this state dir."""

    def match(proc: Path) -> bool:
        cmdline = (proc / "cmdline").read_bytes()
        return b"qemu-system" in cmdline and str(state).encode() in cmdline

    return pids_where(match)


def monitors_of(state: Path) -> list[int]:
    """Container monitor processes working on this state dir."""

    def match(proc: Path) -> bool:
        if b"cocoon.container.monitor" not in (proc / "cmdline").read_bytes():
            return False
        environ = (proc / "environ").read_bytes().split(b"\0")
        return f"COCOON_STATE_DIR={state}".encode() in environ

    return pids_where(match)


def run_in_pty(
    popen: Callable[..., subprocess.Popen], *args: str, rows=40, cols=100, typed: bytes = b""
) -> tuple[int, bytes]:
    """Run ``popen(*args)`` on a new terminal; ``typed`` is keyed in at once. Exit code, output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = popen(*args, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    if typed:
        os.write(master, typed)
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    return proc.wait(30), output
