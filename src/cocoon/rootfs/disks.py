"""A container's disk: a copy-on-write overlay of its image's root filesystem.

An image's ext4 is built once and shared by every container of it (and by
every tag of it): it is keyed by the chain of its layer digests, and QEMU
only ever opens it read-only. Each container gets a qcow2 file backed by it,
which holds just the blocks the container changed; the guest mounts the
result read-write as its root, with no overlay filesystem in the guest (no
second disk to probe, no second and third mount, no copy-up on first write).
Making one is copying the image's empty qcow2 template, a few kilobytes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cocoon import paths, sha256, tools
from cocoon.errors import CocoonError, Corrupt, ExternalError, InvalidArgument
from cocoon.image.model import Image
from cocoon.image.store import ImageStore
from cocoon.locks import flock
from cocoon.rootfs import ext4

log = logging.getLogger(__name__)

# The smallest root filesystem a container gets: room to write, like a
# Docker container's writable layer on a host disk.
ROOT_SIZE = 8 << 30
# Part of every cache key: bump it when the way disks are built changes.
FORMAT = "2"
# Left free when unpacking layers, for everything else on the host.
_SPARE = 256 << 20


def rootfs_dir() -> Path:
    return paths.state_dir() / "rootfs"


def disk_key(image: Image) -> str:
    chain = "\n".join((f"cocoon-rootfs-{FORMAT}", *(layer.digest for layer in image.layers)))
    return sha256.hexdigest(chain.encode())


def image_disk(store: ImageStore, image: Image) -> Path:
    """The ext4 holding ``image``'s root filesystem, built if needed, with its
    overlay template beside it (``_template``)."""
    folder = rootfs_dir()
    key = disk_key(image)
    disk = folder / f"{key}.ext4"
    # Made last, so it existing means the disk is complete.
    if _template(disk).exists():
        return disk
    folder.mkdir(parents=True, exist_ok=True)
    with flock(folder / f"{key}.lock"):
        if not disk.exists():  # another process may have built it while we waited
            _build(store, image, disk)
        if not _template(disk).exists():
            _make_template(disk)
    return disk


def make_disk(store: ImageStore, image: Image, work: Path) -> None:
    """Apply ``image``'s layers into ``work``/root and make ``work``/disk.ext4 of it."""
    # The extractor (tarfile, gzip) is only needed the first time an image runs.
    from cocoon.rootfs.layers import Room, apply_layer

    root = work / "root"
    root.mkdir(mode=0o755)
    # mkfs.ext4 copies the tree into an image beside it: the tree gets half the space.
    room = Room(max(0, free_space(work) - _SPARE) // 2, work.parent)
    for layer, diff_id in zip(image.layers, image.config.diff_ids, strict=True):
        with store.open_blob(layer.digest) as blob:
            apply_layer(blob, root, digest=layer.digest, diff_id=diff_id, room=room)
    ext4.make_image(root, work / "disk.ext4", ROOT_SIZE)


def free_space(folder: Path) -> int:
    """Bytes this user may still write on ``folder``'s filesystem."""
    return shutil.disk_usage(folder).free


def _privileged() -> bool:
    """Whether this process can give files any owner and make device nodes."""
    return os.geteuid() == 0


def _make_disk_under_fakeroot(store: ImageStore, image: Image, work: Path) -> None:
    """``make_disk`` for a user who cannot chown or mknod.

    Under fakeroot the extraction's owners and device nodes are recorded
    rather than made, and mkfs.ext4 (in the same fakeroot session) reads them
    back, so the image's files keep their owners inside the VM.
    """
    argv = [tools.find("fakeroot"), "--", sys.executable, "-m", "cocoon.rootfs.disks",
            str(store.root), image.digest, str(work)]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = (result.stderr.strip() or "no output").splitlines()[-1]
        raise CocoonError(f"cannot build the root filesystem of image {image.short_id}: {said}")


def _build(store: ImageStore, image: Image, disk: Path) -> None:
    diff_ids = image.config.diff_ids
    if len(diff_ids) != len(image.layers):
        raise Corrupt(
            f"image {image.short_id}: its config lists {len(diff_ids)} layers, "
            f"its manifest {len(image.layers)}"
        )
    prefix = f".build-{disk.stem[:12]}-"
    for stale in disk.parent.glob(f"{prefix}*"):  # left by a builder that was killed
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=disk.parent, prefix=prefix))
    try:
        built = work / "disk.ext4"
        if _privileged():
            make_disk(store, image, work)
        else:
            _make_disk_under_fakeroot(store, image, work)
        _fsync(built)
        os.replace(built, disk)
    except OSError as e:
        raise CocoonError(
            f"cannot build the root filesystem of image {image.short_id}: {e.strerror or e}"
        ) from e
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _template(disk: Path) -> Path:
    return disk.with_suffix(".qcow2")


def _overlay(disk: Path, out: Path, size: int | None = None) -> None:
    """``out``: an empty qcow2 overlay of ``disk`` (``size`` bytes, else as large as it)."""
    argv = [tools.find("qemu-img"), "create", "-q", "-f", "qcow2",
            "-F", "raw", "-b", str(disk.resolve()), str(out)]  # fmt: skip
    if size is not None:
        argv.append(str(size))
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = (result.stderr.strip() or "no output").splitlines()[-1]
        raise ExternalError(f"qemu-img failed making an overlay of {disk.name}: {said}")


def _make_template(disk: Path) -> None:
    """An empty qcow2 overlay of ``disk``: what every container's disk starts as."""
    template = _template(disk)
    tmp = template.with_name(f".{template.name}.{os.getpid()}")
    try:
        _overlay(disk, tmp)
        _fsync(tmp)
        os.replace(tmp, template)
    finally:
        tmp.unlink(missing_ok=True)  # a failed or interrupted qemu-img's file


def check_disk_size(image_disk: Path, size: int) -> None:
    """A container's disk may be larger than its image's filesystem, never smaller."""
    smallest = image_disk.stat().st_size
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
        if size is None or size == image_disk.stat().st_size:
            shutil.copyfile(_template(image_disk), tmp)
        else:
            _overlay(image_disk, tmp, size)
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


def remove_unused(store: ImageStore) -> list[Path]:
    """Delete cached root filesystems that no stored image uses any more,
    except those existing containers run on (see ``container_disk``)."""
    folder = rootfs_dir()
    if not folder.is_dir():
        return []
    wanted = {disk_key(image) for image in store.images()}
    removed = []
    for disk in folder.glob("*.ext4"):
        if disk.stem not in wanted and disk.stat().st_nlink == 1:
            with flock(folder / f"{disk.stem}.lock"):
                _template(disk).unlink(missing_ok=True)
                disk.unlink(missing_ok=True)
            (folder / f"{disk.stem}.lock").unlink(missing_ok=True)
            removed.append(disk)
    return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["ROOT_SIZE", "container_disk", "disk_key", "image_disk", "remove_unused"]


def _main(argv: list[str]) -> int:
    """Entry for the fakeroot child: STORE_ROOT IMAGE_DIGEST WORK_DIR."""
    store_root, digest, work = argv
    store = ImageStore(Path(store_root))
    try:
        make_disk(store, store.image(digest), Path(work))
    except (CocoonError, OSError) as e:
        print(getattr(e, "strerror", None) or e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
