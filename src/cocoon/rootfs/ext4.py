"""ext4 images made with mkfs.ext4.

mkfs.ext4 -d copies a directory tree (owners, modes, times, hardlinks,
device nodes, xattrs) into a new filesystem without mounting anything, so
no privileges or loop devices are needed. The images are sparse files:
mkfs punches the unused space, so a large filesystem costs little disk.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cocoon import tools
from cocoon.errors import ExternalError

BLOCK = 4096
INODE_SIZE = 256  # room for nanosecond times and small xattrs inside the inode
BYTES_PER_INODE = 16384  # mke2fs's ratio for ordinary filesystems
_FIXED_OVERHEAD = 8 << 20  # superblocks, group descriptors, bitmaps, resize inode
# Given to mke2fs rather than left to its choice, which grows with the
# filesystem (up to 1 GiB): the size estimate must hold for any tree.
_JOURNAL = 128 << 20
# mkfs discards (punches) the file first, which lets it mark inode tables as
# zeroed without writing them: the kernel then has no lazy init to do.
_FAST_INIT = "lazy_itable_init=0,lazy_journal_init=1"


def make_image(source: Path, image: Path, size: int, *, entries: int, content: int) -> None:
    """Write a sparse, journalled ext4 image holding ``source``'s tree.

    Containers write to it (through copy-on-write overlays), so it is at
    least ``size`` bytes with free space and inodes to match; a tree that
    needs more makes it larger. ``entries`` and ``content`` (bytes of file
    data) are what unpacking tallied: counted as they were written, so the
    tree is not walked again, and an upper bound (later layers may have
    deleted some).
    """
    # Each entry rounds up to a block, and a directory's entries fit in it.
    data = content + entries * BLOCK
    inodes = max(entries + entries // 10 + 64, size // BYTES_PER_INODE)
    needed = data + data // 10 + inodes * INODE_SIZE + _FIXED_OVERHEAD + _JOURNAL
    size = max(size, -(-needed // (1 << 20)) << 20)
    _create_sparse(image, size)
    _mkfs(image, ["-J", f"size={_JOURNAL >> 20}", "-N", str(inodes), "-d", str(source)])


def make_empty(image: Path, size: int) -> None:
    """Write a sparse, empty, journalled ext4 image of ``size`` bytes."""
    _create_sparse(image, size)
    _mkfs(image, [])


def _create_sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def _mkfs(image: Path, options: list[str]) -> None:
    argv = [tools.find("mkfs.ext4"), "-q", "-F", "-b", str(BLOCK), "-I", str(INODE_SIZE)]
    argv += ["-m", "0", "-E", _FAST_INIT, *options, str(image)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise ExternalError(f"mkfs.ext4 failed making {image.name}: {said}")


__all__ = ["make_empty", "make_image"]
