"""Where an image's root disk lives, and when it may go: the part of disks the store needs.

Disks are built above this layer (``cocoon.rootfs.disks``); the store only
names them (by the chain of their image's layers) and removes those no
stored image and no container uses any more, when it removes images, so a
library caller of ``ImageStore.remove`` leaks no disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cocoon import paths, sha256
from cocoon.locks import flock

if TYPE_CHECKING:
    from cocoon.image.model import Image


class Stored(Protocol):
    """What removal needs of the image store: the images it still holds."""

    def images(self) -> Iterable[Image]: ...


# Part of every cache key: bump it when the way disks are built changes.
# Whole disks are still what format 2 made: an older store's disks are kept.
FORMAT = "2"
WHOLE, DELTA = ".ext4", ".delta"


def rootfs_dir() -> Path:
    return paths.state_dir() / "rootfs"


def disk_key(image: Image) -> str:
    return chain_key(layer.digest for layer in image.layers)


def chain_key(digests: Iterable[str]) -> str:
    """The key of the disk holding these layers, the first at the bottom."""
    chain = "\n".join((f"cocoon-rootfs-{FORMAT}", *digests))
    return sha256.hexdigest(chain.encode())


def remove_unused(store: Stored) -> list[Path]:
    """Delete cached root filesystems that no stored image uses any more,
    except those existing containers run on (``rootfs.disks.container_disk`` links them) and
    those other disks are overlays of (``KEY.parent``)."""
    folder = rootfs_dir()
    if not folder.is_dir():
        return []
    wanted = {disk_key(image) for image in store.images()}
    removed: list[Path] = []
    progress = True
    while progress:  # removing a child's disk may free its parent's
        progress = False
        for disk in [*folder.glob(f"*{WHOLE}"), *folder.glob(f"*{DELTA}")]:
            if disk.stem in wanted or disk.stat().st_nlink != 1:
                continue
            with flock(folder / f"{disk.stem}.lock"):
                for suffix in (".qcow2", ".json", ".parent"):
                    disk.with_suffix(suffix).unlink(missing_ok=True)
                disk.unlink(missing_ok=True)
            (folder / f"{disk.stem}.lock").unlink(missing_ok=True)
            removed.append(disk)
            progress = True
    return removed


__all__ = ["DELTA", "FORMAT", "WHOLE", "chain_key", "disk_key", "remove_unused", "rootfs_dir"]
