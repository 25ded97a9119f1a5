"""What a path in a container is, read from the first entry of the agent's tar of it.

The agent has no stat call of its own, and needs none: the tar it writes
starts with the path itself (type, mode, size, time, link target), which is
all Docker's ``archive`` calls report about a path. The stream comes from
the guest, so it is parsed with a bound on how much is kept.
"""

from __future__ import annotations

import io
import stat
import tarfile
from dataclasses import dataclass

from cocoon.errors import Corrupt

HEADERS_MAX = 1 << 20  # the first entry's headers, pax records included, fit in far less
_TYPES = {
    tarfile.DIRTYPE: stat.S_IFDIR,
    tarfile.SYMTYPE: stat.S_IFLNK,
    tarfile.CHRTYPE: stat.S_IFCHR,
    tarfile.BLKTYPE: stat.S_IFBLK,
    tarfile.FIFOTYPE: stat.S_IFIFO,
}


@dataclass(frozen=True, slots=True)
class PathStat:
    name: str  # the entry's name: the path's last component
    size: int
    mode: int  # as st_mode: file type and permission bits
    mtime: int
    link: str  # a symbolic link's target as written in it; "" for anything else

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


class FirstEntry:
    """Takes a tar stream piece by piece until its first entry is known."""

    def __init__(self) -> None:
        self._data = bytearray()
        self.entry: PathStat | None = None

    def feed(self, data: bytes) -> bool:
        """True once the first entry is known (``entry``); the rest is not kept."""
        if self.entry is not None:
            return True
        self._data += data
        info = _first(bytes(self._data))
        if info is None:
            if len(self._data) > HEADERS_MAX:
                raise Corrupt("the container's archive does not start with an entry")
            return False
        self._data = bytearray()
        self.entry = PathStat(
            name=info.name.rstrip("/"),
            size=info.size if info.isreg() else 0,
            mode=_TYPES.get(info.type, stat.S_IFREG) | (info.mode & 0o7777),
            mtime=int(info.mtime),
            link=info.linkname if info.issym() else "",
        )
        return True


def _first(data: bytes) -> tarfile.TarInfo | None:
    """The first entry of a tar that starts with ``data``; None while its headers are cut."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            return tar.next()
    except tarfile.TarError:
        return None


__all__ = ["HEADERS_MAX", "FirstEntry", "PathStat"]
