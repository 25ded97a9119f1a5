"""What a qcow2 overlay's header says, read without QEMU: enough to tell an untouched one.

A container's root disk starts as a copy of its image's empty overlay, and
stays untouched (no cluster allocated, every L1 entry zero) until a guest
writes to it. Two untouched overlays of one backing file and one virtual
size read alike, byte for byte, whatever else their headers say: that is
what lets a rooted memory template (``template.py``) stand in for any of
them. The file is read as hostile input: every offset and count is bounded
before it is used, and anything unexpected answers "not untouched".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

MAGIC = b"QFI\xfb"
_V2 = struct.Struct(">4sIQIIQIIQQIIQ")  # the fields of _Header, in order


class _Header(NamedTuple):
    magic: bytes
    version: int
    backing_offset: int
    backing_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    l1_size: int
    l1_offset: int
    refcount_offset: int
    refcount_clusters: int
    snapshots: int
    snapshots_offset: int


# version 3 adds: incompatible, compatible and autoclear features,
# refcount_order, header_length
_V3 = struct.Struct(">QQQII")
_EXT = struct.Struct(">II")  # a header extension's type and length
_BACKING_FORMAT = 0xE2792ACA
_END = 0
_HEADER_MAX = 64 << 10  # a header with its extensions and backing name fits in this
_L1_MAX = 1 << 16  # entries: 512 KiB to read at most; more is no plain container disk
_BACKING_NAME_MAX = 1023  # QEMU's own limit


@dataclass(frozen=True, slots=True)
class Untouched:
    """An overlay with no data of its own: it reads as its backing file does."""

    backing: str  # the backing file's name as the header holds it
    backing_format: str  # "" when the header names none
    size: int  # virtual size in bytes


def untouched(path: Path) -> Untouched | None:
    """What ``path`` overlays, if it is a qcow2 overlay with nothing allocated;
    None for anything else (a raw file, a touched or odd qcow2, an unreadable file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_MAX)
            return _untouched(f, head)
    except (OSError, ValueError, struct.error):  # a short or garbled file
        return None


def _untouched(f, head: bytes) -> Untouched | None:
    if len(head) < _V2.size:
        return None
    h = _Header._make(_V2.unpack_from(head))
    if h.magic != MAGIC or h.version not in (2, 3) or h.crypt_method != 0 or h.snapshots != 0:
        return None
    if not 9 <= h.cluster_bits <= 21 or h.l1_size > _L1_MAX or h.l1_offset % (1 << h.cluster_bits):
        return None
    header_len = 72
    if h.version == 3:
        if len(head) < _V2.size + _V3.size:
            return None
        incompatible, _compatible, _autoclear, _order, header_len = _V3.unpack_from(head, _V2.size)
        # Dirty, corrupt, an external data file, compression or subclusters:
        # none is a plain empty overlay.
        if incompatible != 0 or not 104 <= header_len <= 4096:
            return None
    start, end = h.backing_offset, h.backing_offset + h.backing_size
    if not 0 < h.backing_size <= _BACKING_NAME_MAX or not header_len <= start < end <= len(head):
        return None
    backing = head[start:end].decode("utf-8", "strict")
    fmt = _backing_format(head, header_len, start)
    if fmt is None:
        return None
    f.seek(h.l1_offset)
    l1 = f.read(8 * h.l1_size)
    if len(l1) != 8 * h.l1_size or any(l1):
        return None
    return Untouched(backing, fmt, h.size)


def _backing_format(head: bytes, pos: int, end: int) -> str | None:
    """The backing format extension's value, "" without one; None if the
    extensions (between the header and the backing name) do not parse."""
    fmt = ""
    while pos + _EXT.size <= end:
        kind, length = _EXT.unpack_from(head, pos)
        pos += _EXT.size
        if kind == _END:
            break
        if pos + length > end:
            return None
        if kind == _BACKING_FORMAT:
            fmt = head[pos : pos + length].decode("ascii")
        pos += (length + 7) & ~7
    return fmt


__all__ = ["Untouched", "untouched"]
