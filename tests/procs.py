"""Finding the processes a test (or the benchmark) started, through /proc."""

from __future__ import annotations

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
