"""ext4 images made with mkfs.ext4, and sparse copies of them.

mkfs.ext4 -d copies a directory tree (owners, modes, times, hardlinks,
device nodes, xattrs) into a new filesystem without mounting anything, so
no privileges or loop devices are needed. The images are sparse files:
mkfs punches the unused space, so a large filesystem costs little disk.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

from cocoon import tools
from cocoon.errors import ExternalError, InvalidArgument

BLOCK = 4096
INODE_SIZE = 256  # room for nanosecond times and small xattrs inside the inode
MIN_SIZE = 32 << 20
_FAST_SYMLINK = 60  # shorter symlink targets live in the inode itself
_FIXED_OVERHEAD = 8 << 20  # superblocks, group descriptors, bitmaps, resize inode
# mkfs discards (punches) the file first, which lets it mark inode tables as
# zeroed without writing them: the kernel then has no lazy init to do.
_FAST_INIT = "lazy_itable_init=0,lazy_journal_init=1"


def make_image(source: Path, image: Path) -> None:
    """Write a read-only-use ext4 image (no journal) holding ``source``'s tree."""
    data, inodes = _measure(source)
    inodes = inodes + inodes // 10 + 64
    size = data + data // 10 + inodes * INODE_SIZE + _FIXED_OVERHEAD
    size = -(-size // (1 << 20)) << 20
    _create_sparse(image, size)
    _mkfs(image, ["-O", "^has_journal", "-N", str(inodes), "-d", str(source)])


def make_empty(image: Path, size: int) -> None:
    """Write an empty, journalled ext4 filesystem of ``size`` bytes (sparse)."""
    if size < MIN_SIZE:
        raise InvalidArgument(f"disk size {size} bytes is too small: the minimum is 32 MiB")
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


def _measure(root: Path) -> tuple[int, int]:
    """Bytes of blocks the tree needs on ext4, and its number of inodes."""
    seen: set[tuple[int, int]] = set()
    data, inodes = 0, 1
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        entry_bytes = 24  # "." and ".."
        with os.scandir(directory) as entries:
            for entry in entries:
                entry_bytes += 8 + (len(entry.name) + 3) // 4 * 4
                st = entry.stat(follow_symlinks=False)
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                inodes += 1
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                elif stat.S_ISREG(st.st_mode) or (
                    stat.S_ISLNK(st.st_mode) and st.st_size >= _FAST_SYMLINK
                ):
                    data += _blocks(st.st_size)
        data += _blocks(entry_bytes) + BLOCK  # directory blocks, and an htree index
    return data, inodes


def _blocks(size: int) -> int:
    """Bytes of whole blocks for ``size`` bytes, plus extent tree blocks for big files."""
    blocks = -(-size // BLOCK)
    return (blocks + blocks // (32 << 10)) * BLOCK


def sparse_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to a new file ``target``, skipping its holes."""
    with open(source, "rb") as src, open(target, "xb") as dst:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError as e:
                if e.errno != errno.ENXIO:  # ENXIO: only a hole is left
                    raise
                break
            end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            _copy_range(src.fileno(), dst.fileno(), start, end)
            offset = end
        dst.truncate(size)


def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    while start < end:
        copied = os.copy_file_range(src, dst, end - start, start, start)
        if copied == 0:
            raise OSError(errno.EIO, "source file shrank while being copied")
        start += copied


__all__ = ["make_empty", "make_image", "sparse_copy"]
