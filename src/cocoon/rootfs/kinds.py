"""What an image's disk has at a path, read on the host before a container is made.

A whole disk (ext4) is asked with debugfs. An overlay disk (a qcow2 over its
parent image's disk, see ``disks``) is a format debugfs cannot read, and
mounting it would cost a helper process and root: its own layers, still in
the image store, say what it changed, read top first from their tar headers
by the extractor's rules; where they say nothing of the path (nor of the
folders above it) the parent's disk is asked in turn, itself maybe an overlay.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cocoon import tools
from cocoon.errors import ExternalError
from cocoon.image.disk_files import DELTA, WHOLE, chain_key
from cocoon.image.model import Image
from cocoon.image.store import ImageStore

# What a layer's word on a path means for a mount (a symlink is resolved in the guest).
_KINDS = {"dir": "dir", "file": "file"}


def kind_at(store: ImageStore, image: Image, disk: Path, path: str) -> str | None:
    """What ``image``'s ``disk`` has at ``path``: "dir", "file" or None (nothing,
    or a symlink: the guest resolves it inside the container)."""
    target = tuple(part for part in path.split("/") if part)
    top = len(image.layers)
    while disk.suffix == DELTA:
        below = _parent(image, top, disk)
        if below is None:  # no parent disk to ask: the agent refuses a mismatch at start
            return None
        said = _said_by_layers(store, image, below[0], top, target)
        if said is not None:
            return _KINDS.get(said)
        top, disk = below
    return _debugfs(disk, path)


def _parent(image: Image, top: int, disk: Path) -> tuple[int, Path] | None:
    """How many of the first ``top`` layers the disk's parent holds, and its disk.

    The overlay's ``.parent`` is a hard link to that disk, which keeps its
    name as long as the link exists (``disk_files.remove_unused``).
    """
    link = disk.with_suffix(".parent")
    digests = [layer.digest for layer in image.layers]
    for n in range(top - 1, 0, -1):
        key = chain_key(digests[:n])
        for suffix in (WHOLE, DELTA):
            candidate = disk.with_name(f"{key}{suffix}")
            try:
                if os.path.samefile(candidate, link):
                    return n, candidate
            except FileNotFoundError:
                continue
    return None


def _said_by_layers(
    store: ImageStore, image: Image, bottom: int, top: int, target: tuple[str, ...]
) -> str | None:
    """What layers ``bottom`` to ``top`` (excluded) say of ``target``, the highest first."""
    # The extractor (tarfile, gzip) only for an overlay disk with mounts.
    from cocoon.rootfs.layers import said_of

    pairs = list(zip(image.layers, image.config.diff_ids, strict=True))[bottom:top]
    for layer, diff_id in reversed(pairs):
        with store.open_blob(layer.digest) as blob:
            said = said_of(blob, target, digest=layer.digest, diff_id=diff_id)
        if said is not None:
            return said
    return None


def _debugfs(disk: Path, path: str) -> str | None:
    try:
        out = subprocess.run(
            [tools.find("debugfs"), "-R", f'stat "{path}"', str(disk)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExternalError(f"cannot read the image's disk {disk}: {e}") from e
    for line in out.splitlines():
        if "Type: " in line:
            found = line.split("Type: ", 1)[1].split()[0]
            return {"directory": "dir", "symlink": None}.get(found, "file")
    return None


__all__ = ["kind_at"]
