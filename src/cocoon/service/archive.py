"""``/containers/{id}/archive``: files in and out as tar streams, over ``cocoon cp``'s library.

``GET`` sends the tar of a path, ``HEAD`` only what the path is, and ``PUT``
unpacks a tar into a folder; running containers are reached through their
monitors, stopped ones have their VM booted for the copy (``container.copy``).
What the path is travels base64 JSON in ``X-Docker-Container-Path-Stat``,
its mode in Go's ``os.FileMode`` bits, as dockerd sends it.

Paths are taken from the container's root, ``..`` stopping there, as dockerd
joins them; the agent works inside the container's root anyway. A request's
tar is hostile: it must start like a tar (plain, gzip, bzip2 or xz, as
dockerd takes it) before a VM is asked to read it, and the agent refuses
entries that climb out of the folder.
"""

from __future__ import annotations

import base64
import bz2
import contextlib
import gzip
import io
import json
import lzma
import posixpath
import stat
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from cocoon.container import copy
from cocoon.container.pathstat import FirstEntry, PathStat
from cocoon.errors import Corrupt, InvalidArgument, NotFound, Unsupported
from cocoon.service.http import Request
from cocoon.service.lookup import find

STAT_HEADER = "X-Docker-Container-Path-Stat"
# Go's os.FileMode type bits, which Docker clients test (IsDir, ModeSymlink).
_GO_TYPES = {
    stat.S_IFDIR: 1 << 31,
    stat.S_IFLNK: 1 << 27,
    stat.S_IFBLK: 1 << 26,
    stat.S_IFCHR: 1 << 26 | 1 << 21,
    stat.S_IFIFO: 1 << 25,
    stat.S_IFSOCK: 1 << 24,
}
_GO_SPECIAL = ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20))
# How compressed archives start: dockerd unpacks these too.
_COMPRESSED: tuple[tuple[bytes, Callable[[BinaryIO], BinaryIO]], ...] = (
    (b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f)),
    (b"BZh", lambda f: bz2.BZ2File(f)),
    (b"\xfd7zXZ\x00", lambda f: lzma.LZMAFile(f)),  # noqa: SIM115  # read after return
)


def container_path(req: Request) -> str:
    """The ``path`` parameter as an absolute, clean path; a trailing ``/.`` kept
    (a folder's contents, not the folder)."""
    text = req.arg("path")
    if not text:
        raise InvalidArgument("bad parameter: path cannot be empty")
    if "\0" in text:
        raise InvalidArgument("bad parameter: a NUL byte in path")
    clean = posixpath.normpath("/" + text.lstrip("/"))
    if text == "." or text.endswith("/."):
        return clean.rstrip("/") + "/."
    return clean


def go_mode(mode: int) -> int:
    """``st_mode`` as Go's ``os.FileMode``."""
    bits = (mode & 0o777) | _GO_TYPES.get(stat.S_IFMT(mode), 0)
    for unix, go in _GO_SPECIAL:
        if mode & unix:
            bits |= go
    return bits


def stat_header(st: PathStat, path: str) -> str:
    """dockerd's ``types.ContainerPathStat``, base64 JSON; a relative link target
    is given from the container's root, as dockerd resolves it."""
    link = st.link
    if link and not link.startswith("/"):
        link = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
    body = {
        "name": posixpath.basename(path) or "/",
        "size": st.size,
        "mode": go_mode(st.mode),
        "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.mtime)),
        "linkTarget": link,
    }
    return base64.b64encode(json.dumps(body).encode()).decode()


def _tar_path(path: str) -> str:
    """What the agent archives: the root as ``/.``, so its own entry comes first."""
    return "/." if path == "/" else path


@contextlib.contextmanager
def _missing_as_dockerd(ref: str, path: str) -> Iterator[None]:
    try:
        yield
    except NotFound:
        raise NotFound(f"Could not find the file {path} in container {ref}") from None


def get(req: Request) -> None:
    """``GET``: the tar of the path; ``HEAD``: only the stat header."""
    ref = req.match["id"]
    rec = find(ref)
    path = container_path(req)
    handler = req.handler
    if req.method == "HEAD":
        with _missing_as_dockerd(ref, path):
            st = copy.stat(rec.id, _tar_path(path))
        handler.reply_empty(200, [(STAT_HEADER, stat_header(st, path))])
        return
    first = FirstEntry()
    held = bytearray()

    def sink(data: bytes) -> None:
        if handler.answered:
            handler.chunk(data)
            return
        # The header comes before the body: hold the stream until its first entry.
        held.extend(data)
        if first.feed(data):
            assert first.entry is not None
            handler.start_stream("application/x-tar",
                                 [(STAT_HEADER, stat_header(first.entry, path))])  # fmt: skip
            handler.chunk(bytes(held))
            held.clear()

    with _missing_as_dockerd(ref, path):
        copy.read_tar(rec.id, _tar_path(path), sink, one_fs=True)
    if not handler.answered:
        raise Corrupt(f"the container's archive of {path} is empty")
    handler.end_stream()


def put(req: Request) -> None:
    """Unpack the body's tar into the folder at ``path``."""
    ref = req.match["id"]
    rec = find(ref)
    path = container_path(req)
    owner = _owner(rec.settings.process.user) if req.flag("copyUIDGID") else None
    keep_kinds = req.flag("noOverwriteDirNonDir")
    source = _tar_body(req.handler.body_chunks())

    def produce(pipe: BinaryIO) -> None:
        if owner is None:
            while data := source.read(1 << 16):
                pipe.write(data)
            return
        # Every entry the container's user's, as dockerd's copyUIDGID.
        with (
            tarfile.open(fileobj=source, mode="r|") as tar,
            tarfile.open(fileobj=pipe, mode="w|", format=tarfile.PAX_FORMAT) as out,
        ):
            for member in tar:
                member.uid, member.gid = owner
                member.uname = member.gname = ""
                out.addfile(member, tar.extractfile(member) if member.isreg() else None)

    # "/." unpacks into the folder only: no folder there is an error, as dockerd's.
    into = (path[:-2] if path.endswith("/.") else path).rstrip("/") + "/."
    try:
        with (
            _missing_as_dockerd(ref, path),
            copy.piped(produce, "read the request's archive") as tar,
        ):
            copy.write_tar(rec.id, into, tar, keep_kinds=keep_kinds)
    except copy.KindClash:
        raise  # dockerd's own words, a 400
    except InvalidArgument:
        raise InvalidArgument("extraction point is not a directory") from None
    req.handler.reply_empty(200)


def _owner(user: str) -> tuple[int, int]:
    """The container's ``user:group`` as numbers, which the host can write in a tar."""
    if user in ("", "0", "root"):
        return 0, 0
    uid, _, gid = user.partition(":")
    if uid.isdigit() and gid.isdigit():
        return int(uid), int(gid)
    raise Unsupported(
        f"cocoon serves copyUIDGID only for a numeric user:group, not {user!r} "
        "(names are the container's to resolve)"
    )


class _Reader(io.RawIOBase):
    """A stream over ``read`` (any amount per call, b"" at the end) that can look ahead."""

    def __init__(self, read: Callable[[], bytes]) -> None:
        self._read = read
        self._rest = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def head(self, size: int) -> bytes:
        while len(self._rest) < size and not self._done:
            data = self._read()
            self._done = not data
            self._rest += data
        return self._rest[:size]

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._rest:
            self.head(1)
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def _unpacker(head: bytes) -> Callable[[BinaryIO], BinaryIO] | None:
    for magic, unpack in _COMPRESSED:
        if head.startswith(magic):
            return unpack
    return None


def _tar_body(chunks: Iterator[bytes]) -> BinaryIO:
    """The request's archive, uncompressed; Corrupt unless it starts like a tar."""
    body = _Reader(lambda: next(chunks, b""))
    opened: BinaryIO = io.BufferedReader(body)
    unpack = _unpacker(body.head(max(len(m) for m, _ in _COMPRESSED)))
    if unpack is not None:
        inner = unpack(opened)
        body = _Reader(lambda: inner.read(1 << 16))
        opened = io.BufferedReader(body)
    try:
        head = body.head(tarfile.BLOCKSIZE)
    except (OSError, EOFError, lzma.LZMAError) as e:  # what the decompressors raise
        raise Corrupt(f"Error processing tar file: {e}") from None
    if head and head != bytes(tarfile.BLOCKSIZE):  # empty: nothing to unpack, as dockerd
        try:
            tarfile.TarInfo.frombuf(head, tarfile.ENCODING, "surrogateescape")
        except tarfile.HeaderError:
            raise Corrupt(
                "Error processing tar file: the request body is not a tar archive"
            ) from None
    return opened


__all__ = ["STAT_HEADER", "container_path", "get", "go_mode", "put", "stat_header"]
