"""A container's disk: a copy-on-write overlay of its image's root filesystem.

An image's disk is built once, when the image is pulled or loaded (or, for
an image stored without one, at its first run), and shared by every
container of it and every tag of it: it is keyed by the chain of its layer
digests, and QEMU only ever opens it read-only. It is either a whole ext4
(``KEY.ext4``, raw) or, for an image whose layers extend another stored
image's, a thin qcow2 overlay of that parent's disk (``KEY.delta``, see
``delta``) holding only what the extra layers change. ``KEY.parent`` is a
hard link to the parent's disk: its link count keeps the parent while a
child needs it. ``KEY.json`` says how many bytes the image's files hold.

Each container gets a qcow2 file backed by the image's disk, which holds
just the blocks the container changed; the guest mounts the result
read-write as its root, with no overlay filesystem in the guest. Making one
is copying the image's empty qcow2 template (``KEY.qcow2``), a few kilobytes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cocoon import tools
from cocoon.errors import CocoonError, Corrupt, ExternalError, InvalidArgument, InvalidState
from cocoon.image.disk_files import (
    DELTA as _DELTA,
)
from cocoon.image.disk_files import (
    WHOLE as _WHOLE,
)
from cocoon.image.disk_files import (
    disk_key,
    remove_unused,
    rootfs_dir,
)
from cocoon.image.model import Image
from cocoon.image.store import ImageStore
from cocoon.locks import flock
from cocoon.log import Logger
from cocoon.rootfs import child, delta, ext4

if TYPE_CHECKING:
    from cocoon.image.digest import Readable
    from cocoon.image.registry.progress import Reporter
    from cocoon.rootfs.layers import Room

log = Logger(__name__)

# The smallest root filesystem a container gets: room to write, like a
# Docker container's writable layer on a host disk.
ROOT_SIZE = 8 << 30
# Left free when unpacking layers, for everything else on the host.
_SPARE = 256 << 20
# Where the unpacked tree goes while mkfs copies it, when it fits: a tree in
# memory is made and read back without a journal or a disk write.
_SCRATCH = Path("/dev/shm")
# How much larger than its compressed layers a tree may be, for choosing _SCRATCH.
_EXPANSION = 8


def image_disk(store: ImageStore, image: Image, progress: Reporter | None = None) -> Path:
    """The disk holding ``image``'s root filesystem, built if needed, with its
    overlay template beside it (``_template``).

    A build shows progress on a terminal unless ``progress`` says otherwise.
    """
    ready = _ready(rootfs_dir(), disk_key(image))
    if ready is not None:
        return ready
    if progress is not None:
        return prepare(store, image, progress)
    from cocoon.image.registry.progress import Quiet, for_stderr

    bars = for_stderr()
    with bars if bars is not None else contextlib.nullcontext():
        return prepare(store, image, bars or Quiet())


def prepare(store: ImageStore, image: Image, progress: Reporter) -> Path:
    """Build ``image``'s disk unless it exists; return it.

    Building applies every layer by the rules ``layers.check_image`` checks,
    so an image it refuses is one a pull or load must refuse too.
    """
    folder = rootfs_dir()
    key = disk_key(image)
    ready = _ready(folder, key)
    if ready is not None:
        return ready
    folder.mkdir(parents=True, exist_ok=True)
    parent = _parent(store, image) if delta.available() else None
    # The parent's disk first, under its own lock, released before this one's
    # is taken: no builder ever holds two locks, so none waits in a cycle.
    parent_disk = prepare(store, parent, progress) if parent is not None else None
    with flock(folder / f"{key}.lock"):
        disk = _find(folder, key)
        if disk is None:  # another process may have built it while we waited
            disk = _build(store, image, folder / key, parent, parent_disk, progress)
        if not _template(disk).exists():
            _make_template(disk)
    return disk


def image_size(image: Image) -> int:
    """Bytes of the files in ``image``'s layers (as ``docker images`` shows), or,
    before its disk is built, of its compressed layers."""
    try:
        return int(json.loads((rootfs_dir() / f"{disk_key(image)}.json").read_text())["content"])
    except (OSError, ValueError, KeyError, TypeError):
        return image.size


def _ready(folder: Path, key: str) -> Path | None:
    """The complete disk for ``key``: the template is made last."""
    if not (folder / f"{key}.qcow2").exists():
        return None
    return _find(folder, key)


def _find(folder: Path, key: str) -> Path | None:
    for suffix in (_WHOLE, _DELTA):
        if (disk := folder / f"{key}{suffix}").exists():
            return disk
    return None


def _parent(store: ImageStore, image: Image) -> Image | None:
    """The stored image with the most layers whose layers begin ``image``'s."""
    chain = tuple(layer.digest for layer in image.layers)
    best: Image | None = None
    for other in store.images():
        n = len(other.layers)
        if not 0 < n < len(chain) or len(other.config.diff_ids) != n:
            continue
        longer = best is None or n > len(best.layers)
        if longer and tuple(layer.digest for layer in other.layers) == chain[:n]:
            best = other
    return best


def make_disk(store: ImageStore, image: Image, work: Path, progress: Reporter | None) -> int:
    """Apply ``image``'s layers into a tree and make ``work``/disk.ext4 of it;
    return the bytes of file content written."""
    # The extractor (tarfile, gzip) is only needed the first time an image runs.
    from cocoon.rootfs.layers import apply_layer

    def unpack(root: Path, room: Room) -> int:
        for layer, diff_id in zip(image.layers, image.config.diff_ids, strict=True):
            with store.open_blob(layer.digest) as blob:
                counted = _Counted(blob, image.id, progress) if progress is not None else blob
                apply_layer(counted, root, digest=layer.digest, diff_id=diff_id, room=room)
        ext4.make_image(
            root, work / "disk.ext4", ROOT_SIZE, entries=room.entries, content=room.content
        )
        return room.content

    trees = _trees(image, work)
    try:
        for root, room in trees[:-1]:
            try:
                return unpack(root, room)
            except InvalidState:  # no room in memory: on disk instead
                shutil.rmtree(root, ignore_errors=True)
        return unpack(*trees[-1])
    finally:
        for root, _ in trees:
            shutil.rmtree(root, ignore_errors=True)


def _trees(image: Image, work: Path) -> list[tuple[Path, Room]]:
    """Where to unpack ``image``, in the order to try, each with the room it has."""
    from cocoon.rootfs.layers import Room

    on_disk = max(0, free_space(work) - _SPARE)
    # mkfs.ext4 copies the tree into an image beside it: the tree gets half the space.
    trees = [(work / "root", Room(on_disk // 2, work.parent))]  # the last resort
    if _SCRATCH.is_dir() and os.access(_SCRATCH, os.W_OK) and _keeps_xattrs(_SCRATCH):
        # /dev/shm is memory: a tree takes at most half of what is free there,
        # and one that outgrows it starts again on disk.
        in_memory = (free_space(_SCRATCH) - _SPARE) // 2
        if in_memory > sum(layer.size for layer in image.layers) * _EXPANSION:
            room = Room(min(in_memory, on_disk), _SCRATCH)
            trees.insert(0, (_scratch_tree(work), room))
    for root, _ in trees:
        root.mkdir(mode=0o755)
    return trees


def _keeps_xattrs(folder: Path) -> bool:
    """Whether files there take user.* xattrs (tmpfs does from Linux 6.6 on):
    a tree that would lose some of the image's is unpacked on disk instead."""
    import tempfile  # as in _build

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix="cocoon-xattr-") as probe:
            os.setxattr(probe.fileno(), "user.cocoon", b"1")
    except OSError:
        return False
    return True


def _scratch_tree(work: Path) -> Path:
    return _SCRATCH / f"cocoon-{work.name}"


class _Counted:
    """A layer blob that tells ``progress`` how much of it was read."""

    def __init__(self, blob: Readable, key: str, progress: Reporter) -> None:
        self.blob, self.key, self.progress = blob, key, progress

    def read(self, n: int = -1) -> bytes:
        data = self.blob.read(n)
        self.progress.advance(self.key, len(data))
        return data


def free_space(folder: Path) -> int:
    """Bytes this user may still write on ``folder``'s filesystem."""
    return shutil.disk_usage(folder).free


def _privileged() -> bool:
    """Whether this process can give files any owner and make device nodes."""
    return os.geteuid() == 0


def _make_disk_under_fakeroot(store: ImageStore, image: Image, work: Path) -> int:
    """``make_disk`` for a user who cannot chown or mknod.

    Under fakeroot the extraction's owners and device nodes are recorded
    rather than made, and mkfs.ext4 (in the same fakeroot session) reads them
    back, so the image's files keep their owners inside the VM.
    """
    argv = [tools.find("fakeroot"), "--", sys.executable, "-m", "cocoon.rootfs.disks",
            str(store.root), image.digest, str(work)]  # fmt: skip
    return int(child.run(argv, f"cannot build the root filesystem of image {image.short_id}"))


def _build(
    store: ImageStore,
    image: Image,
    base: Path,
    parent: Image | None,
    parent_disk: Path | None,
    progress: Reporter,
) -> Path:
    """Build the disk ``base``.ext4 (or .delta over ``parent_disk``) and its notes."""
    diff_ids = image.config.diff_ids
    if len(diff_ids) != len(image.layers):
        raise Corrupt(
            f"image {image.short_id}: its config lists {len(diff_ids)} layers, "
            f"its manifest {len(image.layers)}"
        )
    prefix = f".build-{base.name[:12]}-"
    for stale in base.parent.glob(f"{prefix}*"):  # left by a builder that was killed
        shutil.rmtree(_scratch_tree(stale), ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)
    import tempfile  # here: only a build needs it, not every run of a built image

    work = Path(tempfile.mkdtemp(dir=base.parent, prefix=prefix))
    notes, link = base.with_suffix(".json"), base.with_suffix(".parent")
    # Named by the image's id, as the pull and load messages name it.
    progress.start(image.id, sum(layer.size for layer in image.layers), "Preparing disk")
    try:
        if parent is not None and parent_disk is not None:
            built, disk = work / "disk.delta", base.with_suffix(_DELTA)
            # Linked first: the parent's disk is in use from now on, even if its
            # image is removed while this disk is being built.
            link.unlink(missing_ok=True)
            os.link(parent_disk, link)
            _make_overlay(parent_disk, built)
            content = delta.build(store, image.digest, len(parent.layers), built, work)
            content += image_size(parent)
        else:
            built, disk = work / "disk.ext4", base.with_suffix(_WHOLE)
            if _privileged():
                content = make_disk(store, image, work, progress)
            else:
                content = _make_disk_under_fakeroot(store, image, work)
        notes.write_text(json.dumps({"content": content}))
        _fsync(built)
        os.replace(built, disk)
    except BaseException as e:
        for partial in (notes, link):
            partial.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _build_error(image, e) from e
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress.finish(image.id, "Disk ready")
    return disk


def _build_error(image: Image, e: OSError) -> CocoonError:
    what = f"cannot build the root filesystem of image {image.short_id}"
    if e.errno == errno.ENOSPC:
        return InvalidState(f"{what}: no space left on the host's disk")
    return CocoonError(f"{what}: {e.strerror or e}")


def _make_overlay(backing: Path, overlay: Path, size: int | None = None) -> None:
    """``overlay``: an empty qcow2 over ``backing`` (``size`` bytes, else as large as it)."""
    fmt = "raw" if backing.suffix == _WHOLE else "qcow2"
    argv = [tools.find("qemu-img"), "create", "-q", "-f", "qcow2",
            "-F", fmt, "-b", str(backing.resolve()), str(overlay)]  # fmt: skip
    if size is not None:
        argv.append(str(size))
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = (result.stderr.strip() or "no output").splitlines()[-1]
        raise ExternalError(f"qemu-img failed making an overlay of {backing.name}: {said}")


def _template(disk: Path) -> Path:
    return disk.with_suffix(".qcow2")


def _make_template(disk: Path) -> None:
    """An empty qcow2 overlay of ``disk``: what every container's disk starts as."""
    template = _template(disk)
    tmp = template.with_name(f".{template.name}.{os.getpid()}")
    try:
        _make_overlay(disk, tmp)
        _fsync(tmp)
        os.replace(tmp, template)
    finally:
        tmp.unlink(missing_ok=True)  # a failed or interrupted qemu-img's file


def _virtual_size(disk: Path) -> int:
    """The size the guest sees: a whole disk's length, or a qcow2's from its header."""
    if disk.suffix == _WHOLE:
        return disk.stat().st_size
    with open(disk, "rb") as f:
        header = f.read(32)
    if header[:4] != b"QFI\xfb":
        raise Corrupt(f"{disk.name} is not a qcow2 disk")
    return int.from_bytes(header[24:32], "big")


def check_disk_size(image_disk: Path, size: int) -> None:
    """A container's disk may be larger than its image's filesystem, never smaller."""
    smallest = _virtual_size(image_disk)
    if size < smallest:
        raise InvalidArgument(
            f"--storage-opt size={size >> 20}M: a container's disk is at least its "
            f"image's, {smallest >> 20}M"
        )


def container_disk(path: Path, image_disk: Path, size: int | None = None) -> Path:
    """Create ``path``: a new container's copy-on-write disk over ``image_disk``.

    ``size`` (at least the image disk's, see ``check_disk_size``) makes the
    disk larger than the image's filesystem; the guest grows the filesystem
    to fill it when it mounts it. A hard link to ``image_disk`` goes beside
    it (``_user``): while the container's folder exists, the image disk's
    link count says it is in use, with no list of users to keep in step.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        if size is None or size == _virtual_size(image_disk):
            shutil.copyfile(_template(image_disk), tmp)
        else:
            _make_overlay(image_disk, tmp, size)
        _link_user(image_disk, _user(path))
        os.replace(tmp, path)
    except BaseException:
        for partial in (tmp, _user(path)):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        raise
    return path


def _user(container_disk: Path) -> Path:
    return container_disk.with_name(f"{container_disk.name}.base")


def _link_user(image_disk: Path, user: Path) -> None:
    try:
        os.link(image_disk, user)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        # State split over filesystems: nothing then marks the disk in use,
        # and removing its image before the container would break the container.
        log.warning("%s is on another filesystem than %s: not marked in use", user, image_disk)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "ROOT_SIZE",
    "container_disk",
    "disk_key",
    "image_disk",
    "image_size",
    "prepare",
    "remove_unused",
]


def _main(argv: list[str]) -> int:
    """Entry for the fakeroot child: STORE_ROOT IMAGE_DIGEST WORK_DIR."""
    store_root, digest, work = argv
    store = ImageStore(Path(store_root))
    return child.main(lambda: make_disk(store, store.image(digest), Path(work), None))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
