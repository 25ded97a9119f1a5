"""Writing files so that readers see the old content or the new, never half of either."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_output(
    path: Path | str, mode: int = 0o644, *, durable: bool = False
) -> Iterator[BinaryIO]:
    """A file to write that replaces ``path`` by a rename once the block ends;
    no temporary file is left on failure.

    The temporary file is made in the same folder (so the rename is atomic)
    with ``mode`` from the start: a secret is never readable by others, even
    for a moment. ``durable`` also syncs the data before the rename, for
    files a crash must not leave empty (the image store's index).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` (see :func:`atomic_output`)."""
    with atomic_output(path, mode, durable=durable) as f:
        f.write(data)


__all__ = ["atomic_output", "write_atomic"]
