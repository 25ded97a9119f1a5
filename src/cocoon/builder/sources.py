"""What ``COPY --from`` reads: files of an earlier stage or of an image, from a build VM.

The paths the COPY names, each up to its first wildcard, are written by the
agent's tar as the source sees them (its base disk and step folders, in the
VM of its base), so a large base image is never unpacked on the host. That
tar is the guest's, so hostile: the host's safe unpacker puts it in a
temporary folder, which then serves as a build context with nothing ignored.
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from cocoon.builder.vm import BuildVM
from cocoon.errors import ExternalError

_WILDCARDS = "*?[\\"


def literal_prefix(source: str) -> str:
    """The absolute folder or file a source names before any wildcard."""
    parts: list[str] = []
    for part in posixpath.normpath("/" + source).split("/"):
        if any(c in part for c in _WILDCARDS):
            break
        if part:
            parts.append(part)
    return "/" + "/".join(parts)


def fetch(vm: BuildVM, stack: Sequence[int], sources: Iterable[str], into: Path) -> Path:
    """A new folder under ``into`` holding ``sources`` as ``stack`` sees them.

    A source that does not exist is left out, for the context to report
    with the Dockerfile's line.
    """
    from cocoon.container.copy import extract

    root = Path(tempfile.mkdtemp(prefix="from-", dir=into))
    for prefix in sorted({literal_prefix(s) for s in sources}):
        with tempfile.TemporaryFile(dir=into) as tar:
            try:
                vm.read(stack, prefix, tar.write)
            except ExternalError as e:
                if "no such file" in str(e).lower():
                    continue
                raise
            tar.seek(0)
            dest = root / posixpath.dirname(prefix).lstrip("/")
            dest.mkdir(parents=True, exist_ok=True)
            extract(tar, dest, archive=True, what="a stage's files")  # type: ignore[arg-type]
    return root


__all__ = ["fetch", "literal_prefix"]
