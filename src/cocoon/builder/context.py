"""The build context on the host: what COPY and ADD take from it.

One walk (:meth:`Context._entries`) decides what an operation copies, by
Docker's rules, and serves both the cache key (:meth:`Context.hash`: names,
types, modes, link targets and contents, never mtimes) and the tar the
executor unpacks at the step's root (:meth:`Context.write_tar`):

- a source folder copies its contents; a file goes to ``dest`` or, when
  ``dest`` ends in ``/``, into it; several sources (or a glob matching
  several) need a ``dest`` ending in ``/``;
- sources are context paths: a leading ``/`` is the context's root, ``..``
  out of it is refused; a symlink named as a source is followed inside the
  context (as if it were the root); links inside a copied folder stay links;
- ``*``, ``?`` and ``[...]`` glob each path element (Go's rules);
- files .dockerignore excludes are not there: a glob skips them, naming
  one is an error;
- ADD unpacks a local tar (plain, gzip, bzip2 or xz) into ``dest``; its
  member names stay under ``dest``;
- files become root's (or ``--chown``'s, resolved by the executor) with
  their mode (or ``--chmod``'s).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from cocoon.builder.ignore import Ignore, component_regex, relative
from cocoon.builder.stage import CopyOp
from cocoon.errors import ExternalError, InvalidArgument, NotFound

_MAX_LINKS = 40  # symlinks followed to resolve one source, as Linux allows
_HEREDOC_MODE = 0o644
_GLOB = re.compile(r"(?<!\\)[*?\[]")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


@dataclass
class _Entry:
    """One member of the COPY tar: its header, and its content for a file."""

    info: tarfile.TarInfo
    open: Callable[[], BinaryIO] | None = None
    keep_owner: bool = False  # an ADD archive's member keeps its owner unless --chown


class Context:
    def __init__(self, root: Path, ignore: Ignore) -> None:
        self.root = Path(os.path.realpath(root))
        self.ignore = ignore

    @classmethod
    def at(cls, root: Path, dockerfile: Path | None = None) -> Context:
        """The context folder ``root``, with ``<Dockerfile>.dockerignore`` beside
        the Dockerfile if there is one, else ``root/.dockerignore``."""
        if not root.is_dir():
            raise NotFound(f"{root}: the build context is not a folder")
        candidates = [root / ".dockerignore"]
        if dockerfile is not None:
            candidates.insert(0, dockerfile.with_name(dockerfile.name + ".dockerignore"))
        for path in candidates:
            if path.is_file():
                return cls(root, Ignore.parse(path.read_text(errors="replace")))
        return cls(root, Ignore())

    @classmethod
    def from_tar(cls, stream: BinaryIO, into: Path) -> Context:
        """A tar context (``cocoon build -``, the API's POST /build), plain or
        compressed, unpacked into the empty folder ``into``. The tar is
        hostile: ``..`` and links leading out of ``into`` and device files are
        refused; absolute names land inside ``into``."""
        from cocoon.container.copy import extract  # the one safe unpacker

        into.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=into.parent, prefix=".context-") as spool:
            _decompressed(stream, spool)
            spool.seek(0)
            try:
                extract(spool, into, archive=False, contained=True, what="the build context")
            except ExternalError as e:
                raise InvalidArgument(str(e)) from None
        ignore = into / ".dockerignore"
        text = ignore.read_text(errors="replace") if ignore.is_file() else ""
        return cls(into, Ignore.parse(text))

    # -- public ----------------------------------------------------------------

    def hash(self, op: CopyOp, *, dest_is_dir: bool = False) -> str:
        """A digest of what ``op`` copies: names, types, modes, link targets and
        contents (not mtimes, not owners: --chown is in the instruction)."""
        digest = hashlib.sha256()
        for entry in self._entries(_into(op, dest_is_dir)):
            info = entry.info
            content = ""
            if entry.open is not None:
                with entry.open() as f:
                    content = _sha256(f)
            owner = f"{info.uid}:{info.gid}" if entry.keep_owner else ""
            fields = (info.type.decode(), info.name, f"{info.mode:o}", info.linkname, owner)
            digest.update(("\0".join((*fields, content)) + "\n").encode(errors="surrogateescape"))
        return "sha256:" + digest.hexdigest()

    def write_tar(
        self,
        op: CopyOp,
        sink: BinaryIO,
        *,
        owner: tuple[int, int] | None,
        dest_is_dir: bool = False,
    ) -> None:
        """The tar of COPY/ADD's result, member names being paths in the
        container without the leading ``/``.

        ``dest_is_dir``: the destination is a folder in the image already, so
        a file goes into it even without a trailing ``/`` (as Docker does;
        only the executor can know). A folder source's destination is its
        first member: Docker leaves an existing destination folder's mode and
        owner alone, so the unpacker should too for that member."""
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in self._entries(_into(op, dest_is_dir)):
                info = entry.info
                if owner is not None or not entry.keep_owner:
                    info.uid, info.gid = owner or (0, 0)
                    info.uname = info.gname = ""
                if entry.open is None:
                    tar.addfile(info)
                    continue
                with entry.open() as f:
                    tar.addfile(info, f)

    # -- the walk --------------------------------------------------------------

    def _error(self, op: CopyOp, message: str) -> InvalidArgument:
        return InvalidArgument(f"Dockerfile:{op.line}: {message}")

    def _entries(self, op: CopyOp) -> Iterator[_Entry]:
        keyword = "ADD" if op.add else "COPY"
        if op.from_ is not None:
            raise self._error(
                op, f"{keyword} --from={op.from_} copies from a stage, not the context"
            )
        matches: list[tuple[str, str]] = []  # (name, context path)
        for source in op.sources:
            if _URL.match(source):
                if op.add:
                    raise self._error(op, "ADD of a URL is not supported yet")
                raise self._error(op, f"COPY {source}: a URL is no COPY source (ADD takes URLs)")
            matches.extend(self._match(op, source))
        if len(matches) + len(op.heredocs) > 1 and not op.dest.endswith("/"):
            raise self._error(
                op,
                f"{keyword} of several sources needs a destination ending in /: {op.dest}/",
            )
        for name, path in matches:
            yield from self._source(op, name, path)
        for doc in op.heredocs:
            name = op.dest + doc.name if op.dest.endswith("/") else op.dest
            data = doc.body.encode()
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size = len(data)
            info.mode = op.chmod if op.chmod is not None else _HEREDOC_MODE
            yield _Entry(info, lambda data=data: io.BytesIO(data))  # type: ignore[misc]

    def _match(self, op: CopyOp, source: str) -> list[tuple[str, str]]:
        """(name, context path with links followed) of each file a source names:
        the one it names, or those a glob matches, sorted."""
        path = posixpath.normpath(source.lstrip("/") or ".")
        if path == ".." or path.startswith("../"):
            raise self._error(op, f"{source}: outside the build context")
        if _GLOB.search(path):
            found = sorted(self._glob(path.split("/"), "."))
            if not found:
                raise NotFound(f"Dockerfile:{op.line}: {source}: nothing in the context matches")
            return [(posixpath.basename(p), self._resolve(p)) for p in found]
        resolved = self._resolve(path)
        if not os.path.lexists(self.root / resolved):
            raise NotFound(
                f"Dockerfile:{op.line}: {source}: no such file or folder in the build context"
            )
        if not (self._present(path) and self._present(resolved)):
            raise self._error(op, f"{source}: excluded by .dockerignore")
        return [(posixpath.basename(path), resolved)]

    def _present(self, path: str) -> bool:
        """Whether .dockerignore leaves a context path in: not excluded, or an
        excluded folder that something re-included inside brings back."""
        if not self.ignore.excluded(path):
            return True
        full = self.root / path
        return full.is_dir() and not full.is_symlink() and any(self._walk(path))

    def _glob(self, parts: list[str], at: str) -> Iterator[str]:
        head, rest = parts[0], parts[1:]
        if _GLOB.search(head):
            regex = component_regex(head)
            try:
                names = sorted(os.listdir(self.root / at))
            except OSError:
                return
            candidates = [n for n in names if regex.fullmatch(n)]
        else:
            candidates = [re.sub(r"\\(.)", r"\1", head)]
        for name in candidates:
            path = relative(f"{at}/{name}")
            full = self.root / path
            if not os.path.lexists(full) or not self._present(path):
                continue
            if not rest:
                yield path
            elif full.is_dir() and not full.is_symlink():
                yield from self._glob(rest, path)

    def _resolve(self, path: str) -> str:
        """A context path with its symlinks followed, the context standing in
        for ``/`` (a link cannot lead out of it)."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = self.root.joinpath(*done, part)
            if not candidate.is_symlink():
                done.append(part)
                continue
            hops += 1
            if hops > _MAX_LINKS:
                raise InvalidArgument(f"{path}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts[:0] = [p for p in target.split("/") if p not in ("", ".")]
        return "/".join(done) or "."

    def _walk(self, folder: str) -> Iterator[tuple[str, os.stat_result]]:
        """(context path, lstat) under a folder, sorted, as .dockerignore leaves
        them: an excluded folder is there only with what comes back inside it."""
        try:
            names = sorted(os.listdir(self.root / folder))
        except OSError as e:
            raise InvalidArgument(f"{folder}: cannot read the folder: {e.strerror}") from None
        for name in names:
            path = relative(f"{folder}/{name}")
            st = os.lstat(self.root / path)
            if not self.ignore.excluded(path):
                yield path, st
                if stat.S_ISDIR(st.st_mode):
                    yield from self._walk(path)
            elif stat.S_ISDIR(st.st_mode) and self.ignore.walks(path):
                inside = list(self._walk(path))
                if inside:
                    yield path, st
                    yield from inside

    def _source(self, op: CopyOp, name: str, path: str) -> Iterator[_Entry]:
        """The entries of one source: ``name`` is its own name, ``path`` where
        it is in the context, links followed."""
        real = self.root / path
        st = os.lstat(real)
        entries: Iterator[_Entry | None]
        if stat.S_ISDIR(st.st_mode):
            base = op.dest.rstrip("/")
            top = [self._entry(op, base, path, st)] if base else []
            inside = (
                self._entry(op, f"{base}/{posixpath.relpath(sub, path)}", sub, sub_st)
                for sub, sub_st in self._walk(path)
            )
            entries = itertools.chain(top, inside)
        elif op.add and stat.S_ISREG(st.st_mode) and _is_archive(real):
            entries = self._unpack(op, name, real)
        else:
            target = op.dest + name if op.dest.endswith("/") else op.dest
            entries = iter([self._entry(op, target, path, st)])
        yield from (entry for entry in entries if entry is not None)

    def _entry(self, op: CopyOp, name: str, path: str, st: os.stat_result) -> _Entry | None:
        """A tar entry for one context file; sockets and devices are left out."""
        info = tarfile.TarInfo(name.lstrip("/"))
        info.mtime = int(st.st_mtime)
        info.mode = stat.S_IMODE(st.st_mode)
        opener = None
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(self.root / path)
        elif stat.S_ISREG(st.st_mode):
            info.size = st.st_size
            opener = self._opener(op, path)
        else:
            return None
        if op.chmod is not None and not info.issym():
            info.mode = op.chmod
        return _Entry(info, opener)

    def _opener(self, op: CopyOp, path: str) -> Callable[[], BinaryIO]:
        full = self.root / path

        def open_file() -> BinaryIO:
            # The last element was checked as a regular file; a link swapped in
            # since must not lead the copy elsewhere.
            try:
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as e:
                raise self._error(op, f"{path}: cannot read it: {e.strerror}") from None
            return os.fdopen(fd, "rb")

        return open_file

    def _unpack(self, op: CopyOp, source: str, archive: Path) -> Iterator[_Entry]:
        """ADD of a local tar: its members, renamed under ``dest``."""
        base = op.dest.rstrip("/")
        try:
            with tarfile.open(archive, mode="r:*") as tar:
                for member in tar:
                    name = _inside(base, member.name)
                    if name is None:
                        raise self._error(
                            op, f"{source}: member {member.name!r} leads outside {op.dest}"
                        )
                    if name == "/":
                        continue  # the image's root: not the archive's to change
                    info = member.replace(name=name.lstrip("/"), deep=False)
                    info.pax_headers = {}
                    if member.islnk():
                        target = _inside(base, member.linkname)
                        if target is None:
                            raise self._error(
                                op, f"{source}: hard link {member.name!r} leads outside {op.dest}"
                            )
                        info.linkname = target.lstrip("/")
                    if op.chmod is not None and not (member.issym() or member.islnk()):
                        info.mode = op.chmod
                    opener = None
                    if member.isreg():
                        data = tar.extractfile(member)
                        assert data is not None  # a regular member has content
                        opener = lambda data=data: data  # noqa: E731  # read once
                    yield _Entry(info, opener, keep_owner=True)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise self._error(op, f"ADD {source}: damaged archive: {e}") from None


def is_tar(head: bytes) -> bool:
    """Whether a stream's first 512 bytes start a tar (maybe compressed): how
    ``cocoon build -`` tells a context on standard input from a Dockerfile."""
    if head.startswith(_COMPRESSED):
        return True
    try:
        tarfile.TarInfo.frombuf(head[: tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _into(op: CopyOp, dest_is_dir: bool) -> CopyOp:
    if dest_is_dir and not op.dest.endswith("/"):
        return replace(op, dest=op.dest + "/")
    return op


def _inside(base: str, name: str) -> str | None:
    """An archive member's path under ``base``, or None when ``..`` leads out."""
    cleaned = posixpath.normpath(name.lstrip("/") or ".")
    if cleaned == ".." or cleaned.startswith("../"):
        return None
    return base or "/" if cleaned == "." else f"{base}/{cleaned}"


def _is_archive(path: Path) -> bool:
    """Whether ADD unpacks a file: a tar, maybe gzip, bzip2 or xz compressed."""
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _sha256(f: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := f.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _decompressed(stream: BinaryIO, out: BinaryIO) -> None:
    """Copy a tar, gunzipping, bunzipping or unxzing it as its first bytes say."""
    head = stream.read(6)
    if head.startswith(_COMPRESSED):
        import bz2
        import gzip
        import lzma

        opener = {b"\x1f": gzip.open, b"B": bz2.open, b"\xfd": lzma.open}[head[:1]]
        with opener(_Prefixed(head, stream), "rb") as inflated:  # type: ignore[operator]
            try:
                shutil.copyfileobj(inflated, out)
            except (OSError, EOFError, lzma.LZMAError) as e:
                raise InvalidArgument(f"the build context is corrupt: {e}") from None
        return
    out.write(head)
    shutil.copyfileobj(stream, out)


class _Prefixed(io.RawIOBase):
    """A stream with bytes already read put back in front of it."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


__all__ = ["Context", "is_tar"]
