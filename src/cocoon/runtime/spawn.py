"""Processes an engine can wait on: the caller's descendant, in a session of their own.

conmon and containerd's shim are child subreapers that learn a container's
exit only by waiting on the pid in ``--pid-file``: that process must be
their descendant and outlive the runtime call. So it is forked twice (the
middle process exits at once and the grandchild is reparented to the
caller) and leaves the caller's session, away from its terminal and signals.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cocoon.files import write_atomic

# The exit code when the container's own is unknown (the body failed, or the
# VM was lost before its process reported one).
LOST = 255


def detached(body: Callable[[], int]) -> int:
    """The pid of a reparented grandchild running ``body()``, whose result is its exit code."""
    pid_r, pid_w = os.pipe()
    child = os.fork()
    if child == 0:
        code = LOST
        try:
            os.close(pid_r)
            if (grandchild := os.fork()) != 0:
                os.write(pid_w, str(grandchild).encode())
                os._exit(0)
            os.close(pid_w)
            os.setsid()
            code = body()
        finally:
            os._exit(code)
    os.close(pid_w)
    os.waitpid(child, 0)
    with os.fdopen(pid_r, "rb") as pipe:
        return int(pipe.read() or b"0")


def write_pid(pid_file: Path | None, pid: int) -> None:
    """The engine's ``--pid-file``, written whole or not at all."""
    if pid_file is not None:
        write_atomic(pid_file.absolute(), str(pid).encode())


__all__ = ["LOST", "detached", "write_pid"]
