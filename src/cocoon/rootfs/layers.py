"""Apply image layers to a directory, as an untrusted tar stream.

A layer may try to write outside the target: ``../x``, ``/etc/x``, a
hardlink to ``../../etc/passwd``, or a symlink ``x -> /etc`` followed by
``x/passwd``. So every path is resolved by hand, one component at a time,
with directory file descriptors and O_NOFOLLOW: nothing is ever looked up
through a symlink, and entries that would need that are refused. Symlinks
themselves are kept verbatim (absolute targets are normal); they are
resolved later inside the VM, against the container's root.

OCI whiteouts: ``.wh.NAME`` deletes NAME from lower layers, and
``DIR/.wh..wh..opq`` hides everything lower layers put in DIR. Neither may
touch what the same layer writes, whatever the order of its members, so each
layer remembers the paths it wrote.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import queue
import shutil
import stat
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cocoon.errors import Corrupt, InvalidState, Unsupported
from cocoon.image.digest import CHUNK, HashingReader, Readable
from cocoon.log import Logger

if TYPE_CHECKING:
    from cocoon.image.model import Image
    from cocoon.image.store import ImageStore

try:
    import zstandard
except ImportError:  # optional: only zstd-compressed layers need it
    zstandard = None

log = Logger(__name__)

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_XATTR = "SCHILY.xattr."
_GZIP, _ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
BLOCK = 4096  # what an entry costs on disk at least
_AHEAD = 8  # chunks decompressed ahead of the unpacking
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Parts = tuple[str, ...]
_DECODE_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
)
if zstandard is not None:
    _DECODE_ERRORS += (zstandard.ZstdError,)


def apply_layer(
    stream: Readable,
    dest: Path,
    *,
    digest: str,
    diff_id: str | None = None,
    room: Room | None = None,
) -> None:
    """Unpack one layer (tar, gzip or zstd) onto ``dest``, checking its digests.

    With ``room``, the files it writes count against that allowance.
    """
    root_fd = os.open(dest, _DIR_FLAGS)
    try:
        with _layer_tar(stream, digest, diff_id) as tar:
            _Extractor(root_fd, digest, room).run(tar)
    finally:
        os.close(root_fd)


class Tree:
    """The names and kinds of an image's files, as its layers build them up.

    ``check_layer`` applies layers to it instead of to a directory, so a
    hostile image is refused when it is loaded or pulled, without writing
    anything, by the same rules ``apply_layer`` enforces when it unpacks.
    """

    def __init__(self) -> None:
        self.root: _Dir = {}


def check_layer(stream: Readable, tree: Tree, *, digest: str, diff_id: str | None = None) -> None:
    """Refuse a layer that ``apply_layer`` would refuse on top of ``tree``; update ``tree``."""
    with _layer_tar(stream, digest, diff_id) as tar:
        _Checker(tree, digest).run(tar)


def check_image(store: ImageStore, image: Image) -> None:
    """Refuse an image, as it is loaded or pulled, whose layers would be refused when it runs."""
    diff_ids = image.config.diff_ids
    if len(diff_ids) != len(image.layers):
        raise Corrupt(
            f"image {image.short_id}: its config lists {len(diff_ids)} layers, "
            f"its manifest {len(image.layers)}"
        )
    tree = Tree()
    for layer, diff_id in zip(image.layers, diff_ids, strict=True):
        with store.open_blob(layer.digest) as blob:
            check_layer(blob, tree, digest=layer.digest, diff_id=diff_id)


def said_of(
    stream: Readable, target: Parts, *, digest: str, diff_id: str | None = None
) -> str | None:
    """What one layer makes of the path ``target`` over whatever lies below it,
    by ``apply_layer``'s rules, from its tar headers alone: "dir", "file",
    "symlink", "gone" (it hides what lower layers have there) or None (it
    leaves that to lower layers)."""
    finder = _Finder(target, digest)
    with _layer_tar(stream, digest, diff_id) as tar:
        finder.run(tar)
    return finder.said


class Room:
    """Bytes unpacking may still write: beyond them it fails cleanly, before the disk fills.

    It also tallies what was written (entries, bytes of file content): enough
    to size a filesystem for the result without walking it again.
    """

    def __init__(self, size: int, where: Path) -> None:
        self.size, self.left, self.where = size, size, where
        self.entries = self.content = 0

    def take(self, content: int) -> None:
        """One entry holding ``content`` bytes of data; it costs a block for its inode and name."""
        self.entries += 1
        self.content += content
        self.left -= BLOCK + content
        if self.left < 0:
            raise InvalidState(
                f"not enough free space in {self.where} to unpack the image: "
                f"its layers hold more than the {self.size >> 20} MiB available"
            )


@contextlib.contextmanager
def _layer_tar(stream: Readable, digest: str, diff_id: str | None) -> Iterator[tarfile.TarFile]:
    """The layer's tar stream; its digests are checked once the block has read it all."""
    raw = HashingReader(stream)
    hashed: list[HashingReader] = []  # the tar stream, hashed in _Ahead's thread

    def open_tar_stream() -> HashingReader:
        hashed.append(HashingReader(_decompressor(raw, digest)))
        return hashed[0]

    ahead = _Ahead(open_tar_stream)
    try:
        with tarfile.open(fileobj=ahead, mode="r|") as tar:
            yield tar
        # To the end (tar's padding too): once it is, the thread has hashed it all.
        while ahead.read(CHUNK):
            pass
        raw.drain()
    except _DECODE_ERRORS as e:
        raise Corrupt(f"layer {digest}: not a valid tar archive ({e})") from e
    finally:
        ahead.close()
    if raw.digest != digest:
        raise Corrupt(f"layer {digest}: content does not match its digest (got {raw.digest})")
    if diff_id is not None and hashed[0].digest != diff_id:
        raise Corrupt(f"layer {digest}: uncompressed content does not match diff_id {diff_id}")


class _Prefixed:
    """A stream with some bytes already read from it put back in front."""

    def __init__(self, head: bytes, rest: HashingReader) -> None:
        self._head, self._rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(n)
        if n < 0:
            data, self._head = self._head + self._rest.read(), b""
            return data
        data, self._head = self._head[:n], self._head[n:]
        return data


class _Ahead:
    """A stream read in a thread of its own, a few chunks ahead of its reader.

    zlib, zstd and sha256 let go of the GIL while they work, so reading,
    decompressing and hashing a layer (both its digests) this way runs on a
    second core while the tar members are unpacked on the first. Errors
    come out of ``read``.
    """

    def __init__(self, open_source: Callable[[], Readable]) -> None:
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=_AHEAD)
        self._chunk, self._pos, self._ended = b"", 0, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(open_source,), daemon=True)
        self._thread.start()

    def _fill(self, open_source: Callable[[], Readable]) -> None:
        try:
            source = open_source()
            while data := source.read(CHUNK):
                if not self._put(data):
                    return
            self._put(b"")
        except BaseException as e:  # handed to the reader, which raises it
            self._put(e)

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _next(self) -> None:
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        self._chunk, self._pos, self._ended = item, 0, not item

    def read(self, n: int = -1) -> bytes:
        parts = []
        while n != 0 and not self._ended:
            if self._pos == len(self._chunk):
                self._next()
                continue
            end = len(self._chunk) if n < 0 else min(len(self._chunk), self._pos + n)
            parts.append(self._chunk[self._pos : end])
            n -= end - self._pos if n > 0 else 0
            self._pos = end
        return b"".join(parts)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _decompressor(raw: HashingReader, digest: str) -> Readable:
    # Media types are sometimes wrong (a gzip layer labelled plain tar); magic never is.
    head = raw.read(4)
    source = _Prefixed(head, raw)
    if head.startswith(_GZIP):
        return gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[arg-type]
    if head.startswith(_ZSTD):
        if zstandard is None:
            raise Unsupported(
                f"layer {digest} is zstd-compressed: install the Python 'zstandard' module"
            )
        return zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    return source


class _Walker:
    """One layer's members, in order: names checked, whiteouts told from files.

    Subclasses say what an entry does: to a directory or to a ``Tree``.
    """

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.written: set[Parts] = {()}  # what this layer wrote: its whiteouts spare it

    def run(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            self._entry(tar, member)

    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = self._parts(member.name, member.name)
        base = parts[-1] if parts else ""
        if base == OPAQUE:
            self._opaque(parts[:-1])
        elif base.startswith(WHITEOUT + WHITEOUT):
            pass  # aufs bookkeeping (.wh..wh.plnk and the like), not content
        elif base.startswith(WHITEOUT):
            name = base.removeprefix(WHITEOUT)
            if name in ("", ".", ".."):
                raise self._corrupt(f"entry {member.name!r} is not a valid whiteout")
            if (*parts[:-1], name) not in self.written:  # it only hides lower layers' files
                self._whiteout(member.name, parts[:-1], name)
        else:
            if not parts and not member.isdir():
                raise self._corrupt(f"entry {member.name!r} replaces the root with a non-directory")
            self._write(tar, member, parts)
            self._mark_written(parts)

    def _opaque(self, parts: Parts) -> None:
        raise NotImplementedError

    def _whiteout(self, entry: str, parent: Parts, name: str) -> None:
        raise NotImplementedError

    def _write(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: Parts) -> None:
        raise NotImplementedError

    def _parts(self, name: str, entry: str) -> Parts:
        """Split a member name into components, refusing any that leaves the root."""
        if name.startswith("/"):
            raise self._corrupt(f"entry {entry!r} escapes the root")
        stack: list[str] = []
        for component in name.split("/"):
            if component == "..":
                if not stack:
                    raise self._corrupt(f"entry {entry!r} escapes the root")
                stack.pop()
            elif component not in ("", "."):
                stack.append(component)
        return tuple(stack)

    def _link_target(self, member: tarfile.TarInfo, parts: Parts) -> Parts | None:
        """A hardlink's target, or None for a link to itself (nothing to do)."""
        target = self._parts(member.linkname, f"{member.name} -> {member.linkname}")
        if target == parts:
            return None
        if not target:
            raise self._corrupt(f"hardlink {member.name!r} points at the root")
        return target

    def _below_non_dir(self, entry: str, parts: Parts, i: int) -> Corrupt:
        return self._corrupt(
            f"entry {entry!r} is below {'/'.join(parts[: i + 1])!r}, "
            "which is a symbolic link or not a directory"
        )

    def _missing_target(self, member: tarfile.TarInfo) -> Corrupt:
        return self._corrupt(
            f"hardlink {member.name!r} -> {member.linkname!r}: the target does not exist"
        )

    def _mark_written(self, parts: Parts) -> None:
        for i in range(len(parts), 0, -1):
            if parts[:i] in self.written:
                return
            self.written.add(parts[:i])

    def _corrupt(self, what: str) -> Corrupt:
        return Corrupt(f"layer {self.digest}: {what}")


# A directory of a Tree: its entries by name; a file or link is its kind.
_Dir = dict[str, "_Dir | str"]
_LINK, _OTHER = "symlink", "other"


class _Checker(_Walker):
    """Applies a layer to a ``Tree``: every refusal of ``_Extractor``, nothing written."""

    def __init__(self, tree: Tree, digest: str) -> None:
        super().__init__(digest)
        self.tree = tree

    def _dir(self, parts: Parts, create: bool, entry: str) -> _Dir | None:
        """As ``_Extractor._open_dir``: the directory at ``parts``, or None (or an error)."""
        node = self.tree.root
        for i, component in enumerate(parts):
            child = node.get(component)
            if child is None and create:
                child = node[component] = {}
            if not isinstance(child, dict):
                if create:
                    raise self._below_non_dir(entry, parts, i)
                return None
            node = child
        return node

    def _whiteout(self, entry: str, parent: Parts, name: str) -> None:
        node = self._dir(parent, create=False, entry=entry)
        if node is not None:
            node.pop(name, None)

    def _opaque(self, parts: Parts) -> None:
        self._mark_written(parts)
        node = self._dir(parts, create=True, entry="/".join((*parts, OPAQUE)))
        assert node is not None  # with create, a failure raises
        self._clear_lower(node, parts)

    def _clear_lower(self, node: _Dir, parts: Parts) -> None:
        for name in list(node):
            child = node[name]
            if (*parts, name) not in self.written:
                del node[name]
            elif isinstance(child, dict):
                self._clear_lower(child, (*parts, name))

    def _write(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: Parts) -> None:
        if not parts:
            return
        parent = self._dir(parts[:-1], create=True, entry=member.name)
        assert parent is not None
        name = parts[-1]
        if member.isdir():
            if not isinstance(parent.get(name), dict):
                parent[name] = {}
        elif member.islnk():
            self._link(parent, name, member, parts)
        else:
            parent[name] = _LINK if member.issym() else _OTHER

    def _link(self, parent: _Dir, name: str, member: tarfile.TarInfo, parts: Parts) -> None:
        target = self._link_target(member, parts)
        if target is None:
            return
        parent.pop(name, None)
        target_dir = self._dir(target[:-1], create=False, entry=member.name)
        parent = self._dir(parts[:-1], create=True, entry=member.name)
        assert parent is not None
        kind = target_dir.get(target[-1]) if target_dir is not None else None
        if kind is None:
            raise self._missing_target(member)
        if isinstance(kind, dict):
            raise self._corrupt(f"hardlink {member.name!r} points at a directory")
        parent[name] = kind  # a hard link to a symlink is a symlink


class _Finder(_Walker):
    """Follows what a layer does to one path, in member order as ``_Extractor`` does.

    A whiteout or opaque folder only reaches here for what this layer has not
    written (``_Walker``), so a path it writes later is its own again.
    """

    def __init__(self, target: Parts, digest: str) -> None:
        super().__init__(digest)
        self.target = target
        self.said: str | None = None

    def _above(self, parts: Parts) -> bool:
        """Whether ``parts`` is the target's folder, or one of the folders above it."""
        return len(parts) < len(self.target) and self.target[: len(parts)] == parts

    def _below(self, parts: Parts) -> bool:
        """Whether ``parts`` is the target or inside it: writing there makes it a folder."""
        return self.target == parts[: len(self.target)]

    def _whiteout(self, entry: str, parent: Parts, name: str) -> None:
        hidden = (*parent, name)
        if self.target[: len(hidden)] == hidden:  # the target, or a folder above it
            self.said = "gone"

    def _opaque(self, parts: Parts) -> None:
        self._mark_written(parts)
        if self._below(parts):
            self.said = "dir"  # the extractor makes the folder to mark it
        elif self._above(parts) and self.target not in self.written:
            self.said = "gone"

    def _write(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: Parts) -> None:
        if member.islnk() and parts and self._link_target(member, parts) is None:
            return  # a link to itself changes nothing
        if parts == self.target:
            self.said = "dir" if member.isdir() else _LINK if member.issym() else "file"
        elif self._below(parts):
            self.said = "dir"
        elif self._above(parts) and not member.isdir():
            self.said = "gone"  # a file or link replaced a folder above it


class _Extractor(_Walker):
    def __init__(self, root_fd: int, digest: str, room: Room | None) -> None:
        super().__init__(digest)
        self.root_fd = root_fd
        self.room = room
        self.dir_times: list[tuple[Parts, int]] = []
        self._cached: tuple[Parts, int] | None = None

    def run(self, tar: tarfile.TarFile) -> None:
        try:
            super().run(tar)
            # Writing into a directory changes its mtime, so set those last.
            for parts, mtime in reversed(self.dir_times):
                self._set_dir_time(parts, mtime)
        finally:
            self._forget()

    def _open_dir(self, parts: Parts, create: bool, entry: str) -> int | None:
        """A descriptor for the directory at ``parts``, walked without following links.

        With ``create``, missing directories are made (as Docker does, 0755
        root) and a symlink or file on the way is an error; without it, either
        means there is nothing there: None. The descriptor belongs to a
        one-entry cache, which every removal empties.
        """
        if self._cached and self._cached[0] == parts:
            return self._cached[1]
        fd = self.root_fd
        for i, component in enumerate(parts):
            try:
                child = _open_child_dir(fd, component, create)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise
                if create:
                    raise self._below_non_dir(entry, parts, i) from None
                return None
            finally:
                if fd != self.root_fd:
                    os.close(fd)
            fd = child
        self._forget()
        self._cached = (parts, fd)
        return fd

    def _forget(self) -> None:
        if self._cached and self._cached[1] != self.root_fd:
            os.close(self._cached[1])
        self._cached = None

    # -- whiteouts ------------------------------------------------------------

    def _whiteout(self, entry: str, parent: Parts, name: str) -> None:
        fd = self._open_dir(parent, create=False, entry=entry)
        if fd is not None:
            self._remove(fd, name)

    def _opaque(self, parts: Parts) -> None:
        self._mark_written(parts)
        fd = self._parent((*parts, OPAQUE), "/".join((*parts, OPAQUE)))
        self._clear_lower(os.dup(fd), parts)

    def _clear_lower(self, fd: int, parts: Parts) -> None:
        """Delete what lower layers put below ``parts``; keep this layer's files."""
        try:
            for name in os.listdir(fd):
                path = (*parts, name)
                if path not in self.written:
                    self._remove(fd, name)
                elif stat.S_ISDIR(os.lstat(name, dir_fd=fd).st_mode):
                    self._clear_lower(os.open(name, _DIR_FLAGS, dir_fd=fd), path)
        finally:
            os.close(fd)

    def _remove(self, parent_fd: int, name: str) -> None:
        """Delete ``name`` (a whole tree for a directory); ``parent_fd`` may be closed after."""
        existing = _lstat(parent_fd, name)
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            shutil.rmtree(name, dir_fd=parent_fd)
        elif existing is not None:
            os.unlink(name, dir_fd=parent_fd)
        self._forget()  # the cached directory may be what went

    def _parent(self, parts: Parts, entry: str) -> int:
        fd = self._open_dir(parts[:-1], create=True, entry=entry)
        assert fd is not None  # with create, a failure raises
        return fd

    # -- writing --------------------------------------------------------------

    def _write(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: Parts) -> None:
        if self.room is not None:
            self.room.take(member.size if member.isreg() else 0)
        if not parts:
            self._set_dir_meta(self.root_fd, member)
            self.dir_times.append(((), _mtime_ns(member)))
            return
        parent = self._parent(parts, member.name)
        name = parts[-1]
        existing = _lstat(parent, name)
        if member.isdir():
            self._write_dir(parent, name, member, existing, parts)
            return
        if member.islnk():
            self._write_hardlink(parent, name, member, parts)
            return
        if existing is not None:
            self._remove(parent, name)
            parent = self._parent(parts, member.name)
        if member.issym():
            os.symlink(member.linkname, name, dir_fd=parent)
        elif member.ischr() or member.isblk() or member.isfifo():
            _make_node(parent, name, member)
        else:
            self._write_file(tar, parent, name, member)
            return
        self._set_meta_by_name(parent, name, member)

    def _write_dir(
        self,
        parent: int,
        name: str,
        member: tarfile.TarInfo,
        existing: os.stat_result | None,
        parts: Parts,
    ) -> None:
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            self._remove(parent, name)
            parent = self._parent(parts, member.name)
            existing = None
        if existing is None:
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        try:
            self._set_dir_meta(fd, member)
        finally:
            os.close(fd)
        self.dir_times.append((parts, _mtime_ns(member)))

    def _write_hardlink(
        self, parent: int, name: str, member: tarfile.TarInfo, parts: Parts
    ) -> None:
        target = self._link_target(member, parts)
        if target is None:
            return
        self._remove(parent, name)
        target_dir = self._open_dir(target[:-1], create=False, entry=member.name)
        target_dir = os.dup(target_dir) if target_dir is not None else None
        try:
            link_parent = self._parent(parts, member.name)
            existing = _lstat(target_dir, target[-1]) if target_dir is not None else None
            if existing is None:
                raise self._missing_target(member)
            if stat.S_ISDIR(existing.st_mode):  # link(2) says only EPERM
                raise self._corrupt(f"hardlink {member.name!r} points at a directory")
            os.link(
                target[-1],
                name,
                src_dir_fd=target_dir,
                dst_dir_fd=link_parent,
                follow_symlinks=False,
            )
        finally:
            if target_dir is not None:
                os.close(target_dir)

    def _write_file(
        self, tar: tarfile.TarFile, parent: int, name: str, member: tarfile.TarInfo
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=parent)
        try:
            source = tar.extractfile(member)
            if source is not None:
                with open(fd, "wb", closefd=False) as out:
                    shutil.copyfileobj(source, out, CHUNK)
            os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode)  # after chown, which clears setuid
            _set_xattrs(fd, member)
            os.utime(fd, ns=(_mtime_ns(member),) * 2)
        finally:
            os.close(fd)

    def _set_dir_meta(self, fd: int, member: tarfile.TarInfo) -> None:
        os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode)
        _set_xattrs(fd, member)

    def _set_meta_by_name(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        if not member.issym():  # a symlink's own mode means nothing on Linux
            # Safe to follow: this layer just created ``name`` and it is not a link.
            os.chmod(name, member.mode, dir_fd=parent)
        os.utime(name, ns=(_mtime_ns(member),) * 2, dir_fd=parent, follow_symlinks=False)

    def _set_dir_time(self, parts: Parts, mtime: int) -> None:
        if not parts:
            os.utime(self.root_fd, ns=(mtime, mtime))
            return
        parent = self._open_dir(parts[:-1], create=False, entry="/".join(parts))
        if parent is not None and _lstat(parent, parts[-1]) is not None:
            os.utime(parts[-1], ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)


def _open_child_dir(fd: int, name: str, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
    os.mkdir(name, 0o755, dir_fd=fd)
    return os.open(name, _DIR_FLAGS, dir_fd=fd)


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return None


def _make_node(parent: int, name: str, member: tarfile.TarInfo) -> None:
    if member.isfifo():
        os.mkfifo(name, 0o600, dir_fd=parent)
        return
    kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
    device = os.makedev(member.devmajor, member.devminor)
    os.mknod(name, kind | 0o600, device, dir_fd=parent)


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000)


def _xattrs(member: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
    for key, value in member.pax_headers.items():
        if key.startswith(_XATTR):
            # tarfile decoded the raw bytes with surrogateescape; undo it exactly.
            yield key.removeprefix(_XATTR), value.encode("utf-8", "surrogateescape")


def _set_xattrs(fd: int, member: tarfile.TarInfo) -> None:
    for name, value in _xattrs(member):
        try:
            os.setxattr(fd, name, value)
        except OSError as e:  # the filesystem may not take this namespace: best effort
            log.debug("xattr %s on %s not kept: %s", name, member.name, e.strerror)


__all__ = [
    "OPAQUE",
    "WHITEOUT",
    "Room",
    "Tree",
    "apply_layer",
    "check_image",
    "check_layer",
    "said_of",
]
