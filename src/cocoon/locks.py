"""File locks between concurrent cocoon processes (flock: released when a holder dies)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def flock(path: Path, operation: int = fcntl.LOCK_EX) -> Iterator[None]:
    """Hold ``path`` locked (created if missing) for the block.

    ``operation`` is fcntl's: LOCK_EX, LOCK_SH, optionally with LOCK_NB, in
    which case BlockingIOError says someone else holds it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)
