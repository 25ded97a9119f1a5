"""Files in and out of a container as tar streams: ``cocoon cp`` and ``cocoon export``.

The guest agent writes and reads the tar itself (a RUN with a ``TAR`` field),
so images need no tar program. A running container is reached through its
monitor, like ``exec``; a stopped one has its VM booted for the copy, with
no main process, under the owner lock so nothing starts it meanwhile; its
record is left as it was.

A tar from a container is hostile: :func:`extract` unpacks it on the host
refusing absolute names, ``..``, paths through symlinks out of the
destination and hard links to outside it.

Both ways ``cp`` never replaces a folder by a non-folder or the reverse, as
Docker's ``cp`` (dockerd's ``noOverwriteDirNonDir``): such an entry stops
the copy with :class:`KindClash`, in dockerd's words.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO

from cocoon.agent.protocol import TAR_KEEP_KINDS, TAR_ONE_FS, TarOp
from cocoon.agent.session import Process
from cocoon.agent.spec import ProcessSpec
from cocoon.container import boot, control, liveness, manager
from cocoon.container.pathstat import FirstEntry, PathStat
from cocoon.container.record import Record
from cocoon.container.state import Op, State, check
from cocoon.errors import (
    CocoonError,
    Corrupt,
    ExternalError,
    InvalidArgument,
    InvalidState,
    NotFound,
)

Sink = Callable[[bytes], None]


class KindClash(InvalidArgument):
    """An entry would replace a folder by a non-folder, or the reverse."""


STOP_GRACE = 30.0  # a stopped container's VM syncs its disk before it powers off
OWNER_POLL = 0.1


def _owner(ref: str) -> tuple[Record, IO[str] | None]:
    """The container, and its owner lock unless it runs.

    The lock may be another copy's, its VM still powering off after its
    client has had every byte (a Docker client asks again at once): that
    one is waited for, and the container looked at again.
    """
    deadline = time.monotonic() + STOP_GRACE
    while True:
        rec = manager.get(ref)
        if rec.state == State.RUNNING:
            return rec, None
        check(Op.START, rec.state, rec.name)
        try:
            return rec, liveness.hold(rec.id)
        except InvalidState:
            if time.monotonic() > deadline:
                raise
            time.sleep(OWNER_POLL)


@contextlib.contextmanager
def _process(ref: str) -> Iterator[Process]:
    """A process slot in the container's VM, booting it if it is not running."""
    rec, owner = _owner(ref)
    if owner is None:
        channel = control.session(rec.id, "exec")
        try:
            yield Process(channel, manager.SESSION_PROC)
        finally:
            channel.close()
        return
    vm = None
    try:
        vm = boot.boot(rec)
        yield Process(vm.channel, 1)
        vm.channel.close()
        vm.machine.stop(STOP_GRACE)
    finally:
        if vm is not None:
            vm.close()
        boot.remove_sockets(rec.id)
        owner.close()


def _tar_spec(op: TarOp, path: str, flags: int = 0, *, stdin: bool = False) -> ProcessSpec:
    if not path.startswith("/"):
        raise InvalidArgument(f"{path!r}: give an absolute path in the container")
    return ProcessSpec(["cocoon-tar"], [], tar=(op, flags, path), stdin=stdin)


def _check(status_code: int, errors: bytearray, path: str) -> None:
    if status_code == 0:
        return
    text = errors.decode(errors="replace").strip().splitlines()
    reason = text[-1] if text else f"exit status {status_code}"
    if reason.startswith("cannot overwrite "):
        raise KindClash(reason)
    if "no such file" in reason.lower():
        raise NotFound(f"{path}: no such file or folder in the container")
    if "not a directory" in reason.lower():
        raise InvalidArgument(f"{path}: not a folder in the container")
    raise ExternalError(f"copy {path}: {reason}")


def read_tar(ref: str, path: str, sink: Sink, *, one_fs: bool = False) -> None:
    """A tar of ``path`` in the container, given to ``sink`` piece by piece."""
    spec = _tar_spec(TarOp.CREATE, path, TAR_ONE_FS if one_fs else 0)
    errors = bytearray()
    with _process(ref) as process:
        process.start(spec)
        status = process.relay(sink, errors.extend)
    _check(status.code, errors, path)


def stat(ref: str, path: str) -> PathStat:
    """What ``path`` is in the container, a symbolic link not followed.

    Read from the start of the agent's tar of it, which is then killed: a
    folder's whole tree is never sent.
    """
    first = FirstEntry()
    errors = bytearray()
    with _process(ref) as process:
        process.start(_tar_spec(TarOp.CREATE, path, TAR_ONE_FS))

        def sink(data: bytes) -> None:
            if first.entry is None and first.feed(data):
                process.signal(signal.SIGKILL)

        status = process.relay(sink, errors.extend)
    if first.entry is None:
        _check(status.code, errors, path)
        raise Corrupt(f"copy {path}: the container's archive is empty")
    return first.entry


def write_tar(ref: str, path: str, source: BinaryIO, *, keep_kinds: bool = False) -> None:
    """Unpack the tar read from ``source`` at ``path`` in the container; with
    ``keep_kinds``, never replacing a folder by a non-folder or the reverse."""
    spec = _tar_spec(TarOp.EXTRACT, path, TAR_KEEP_KINDS if keep_kinds else 0, stdin=True)
    errors = bytearray()
    with _process(ref) as process:
        process.start(spec)
        process.feed_stdin(source.fileno())
        status = process.relay(lambda _: None, errors.extend)
    _check(status.code, errors, path)


def export(ref: str, sink: Sink) -> None:
    """The container's root filesystem as a tar (volumes and /proc left empty)."""
    read_tar(ref, "/", sink, one_fs=True)


@contextlib.contextmanager
def piped(produce: Callable[[BinaryIO], None], what: str) -> Iterator[BinaryIO]:
    """The read end of a pipe ``produce`` fills from a thread: ``write_tar``
    feeds the VM from a file descriptor, whatever makes the bytes."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                produce(pipe)
        except Exception as e:  # raised again below, in the caller's thread
            failed.append(e)

    thread = threading.Thread(target=run, name="cocoon-cp", daemon=True)
    thread.start()
    try:
        yield reader
    finally:
        reader.close()
        thread.join()
    if failed and not isinstance(failed[0], BrokenPipeError):  # the reader stopped early
        if isinstance(failed[0], CocoonError):
            raise failed[0]
        raise ExternalError(f"{what}: {failed[0]}") from failed[0]


def host_tar(path: Path, *, archive: bool) -> contextlib.AbstractContextManager[BinaryIO]:
    """A tar of a host file or folder, streamed through a pipe by a thread.

    Without ``archive`` the files become root's in the container, as Docker
    does; with it they keep their host owners.
    """
    if not os.path.lexists(path):
        raise NotFound(f"{path}: no such file or folder")

    def owners(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if not archive:
            info.uid = info.gid = 0
            info.uname = info.gname = ""
        return info

    def produce(pipe: BinaryIO) -> None:
        with tarfile.open(fileobj=pipe, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.add(path, arcname=path.name or ".", filter=owners)

    return piped(produce, f"read {path}")


def extract(
    stream: BinaryIO,
    dest: Path,
    *,
    archive: bool,
    contained: bool = False,
    keep_kinds: bool = False,
    what: str = "the container's archive",
) -> None:
    """Unpack a container's tar at host path ``dest``: into it if it is a
    folder, else as it (its parent must exist). ``archive`` keeps owners.
    ``contained`` (a build context) also refuses device files and links
    leading outside ``dest``, which a container's files may hold.
    ``keep_kinds``: as the agent's ``TAR_KEEP_KINDS``."""
    rename = None
    if not dest.is_dir():
        if not dest.parent.is_dir():
            raise NotFound(f"{dest.parent}: no such folder")
        dest, rename = dest.parent, dest.name
    root = os.path.realpath(dest)

    def safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        if rename is not None:
            _, sep, rest = member.name.lstrip("/").partition("/")
            member = member.replace(name=rename + sep + rest, deep=False)
        checked = tarfile.tar_filter(member, path)  # no absolute or escaping names
        if keep_kinds:
            _keep_kind(member, os.path.join(root, checked.name), root)
        if member.islnk():
            target = os.path.realpath(os.path.join(root, member.linkname))
            if os.path.commonpath([target, root]) != root:
                raise tarfile.FilterError(f"{member.name}: hard link to outside {root}")
        if contained:
            tarfile.data_filter(member, path)  # raises for devices and links leading out
        if member.isdev() and os.geteuid() != 0:
            return None  # type: ignore[return-value]  # skipped: only root may make devices
        owner = {} if archive else {"uid": os.getuid(), "gid": os.getgid()}
        return checked.replace(mode=member.mode, uname=None, gname=None, **owner, deep=False)

    try:
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            tar.extractall(root, filter=safe, numeric_owner=True)
    except tarfile.FilterError as e:
        raise ExternalError(f"refused {what}: {e}") from e
    except (tarfile.TarError, EOFError) as e:
        raise ExternalError(f"{what} is corrupt: {e}") from e


def _keep_kind(member: tarfile.TarInfo, target: str, root: str) -> None:
    """Refuse ``member`` if it would change what ``target`` is (a link is a non-folder)."""
    if not os.path.lexists(target) or member.isdir() == (
        os.path.isdir(target) and not os.path.islink(target)
    ):
        return
    if member.isdir():
        raise KindClash(f'cannot overwrite non-directory "{target}" with directory "{root}"')
    raise KindClash(f'cannot overwrite directory "{target}" with non-directory "{root}"')


def parse_location(text: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` -> (container, path); a host path -> (None, path)."""
    if text == "-" or text.startswith(("/", ".")) or ":" not in text:
        return None, text
    container, _, path = text.partition(":")
    if not container or not path:
        raise InvalidArgument(f"{text!r}: use CONTAINER:PATH")
    return container, path


def cp(source: str, dest: str, *, archive: bool = False, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """``cocoon cp``: one side a ``CONTAINER:PATH``, the other a host path or ``-`` (a tar)."""
    src_ctr, src_path = parse_location(source)
    dst_ctr, dst_path = parse_location(dest)
    if (src_ctr is None) == (dst_ctr is None):
        raise InvalidArgument("cp copies between a container and the host: give one CONTAINER:PATH")
    if src_ctr is not None:
        if dst_path == "-":
            read_tar(src_ctr, src_path, stdout.write)
            return
        import tempfile

        # Spooled: a hostile guest's archive is checked as a whole file, and a
        # failure to unpack cannot stall the VM's output.
        with tempfile.TemporaryFile() as spool:
            read_tar(src_ctr, src_path, spool.write)
            spool.seek(0)
            extract(spool, Path(os.path.abspath(dst_path)), archive=archive, keep_kinds=True)
        return
    assert dst_ctr is not None
    if src_path == "-":
        write_tar(dst_ctr, dst_path, stdin, keep_kinds=True)
        return
    with host_tar(Path(os.path.abspath(src_path)), archive=archive) as tar:
        write_tar(dst_ctr, dst_path, tar, keep_kinds=True)


__all__ = [
    "KindClash",
    "cp",
    "export",
    "extract",
    "host_tar",
    "parse_location",
    "piped",
    "read_tar",
    "stat",
    "write_tar",
]
