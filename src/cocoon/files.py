"""Writing files so that readers see the old content or the new, never half of either."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

TYPE_CHECKING = False  # typing's, without importing typing: see cocoon/__init__.py
if TYPE_CHECKING:
    from typing import BinaryIO

_unique = itertools.count()


def _temporary(path: Path) -> tuple[int, Path]:
    """A new file of our own beside ``path``, readable by us alone.

    Not ``tempfile.mkstemp``: importing tempfile (shutil, random) costs more
    than a short-lived command such as ``cocoon-runtime start`` spends on
    its own work.
    """
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}-{next(_unique)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue  # left by an earlier process that had our pid


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
    fd, tmp = _temporary(path)
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
