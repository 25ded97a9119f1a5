"""An image's disk as a thin qcow2 overlay of its parent image's disk.

An image built ``FROM`` another shares its parent's layers, so its disk is
the parent's disk plus what its own layers change. The overlay is made with
qemu-img and written through QEMU's own qcow2 code: qemu-storage-daemon
exports it as a plain file over FUSE, the kernel mounts that file (a loop
device) as ext4, and the layers are applied to the mounted tree by the same
extractor that builds whole disks, with its whiteout, opaque-folder and
path-safety rules. Only the clusters the layers touch land in the overlay.

All of that runs in a child process in a private mount namespace: the
mounts (and with them the loop device) go away when it exits, however it
exits, and the host's mount table never shows them. Mounting needs root;
without it images get whole disks (``disks._build_whole``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cocoon import tools
from cocoon.errors import ExternalError
from cocoon.image.store import ImageStore
from cocoon.rootfs import child

_MOUNT = "loop,nodev,nosuid,noexec"
_EXPORT_WAIT = 10.0  # seconds for qemu-storage-daemon to put its export in place
_SPARE = 256 << 20  # left free on the host while the overlay grows


def available() -> bool:
    """Whether this host and user can build overlay disks."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        return False
    names = ("qemu-storage-daemon", "unshare", "mount", "umount")
    return all(shutil.which(n) or os.path.exists(f"/usr/sbin/{n}") for n in names)


def build(store: ImageStore, digest: str, skip: int, overlay: Path, work: Path) -> int:
    """Apply the layers of image ``digest`` after its first ``skip`` onto ``overlay``
    (a qcow2 over the parent's disk); return the bytes of file content written."""
    argv = [tools.find("unshare"), "--mount", "--propagation", "private", "--",
            sys.executable, "-m", "cocoon.rootfs.delta",
            str(store.root), digest, str(skip), str(overlay), str(work)]  # fmt: skip
    return int(child.run(argv, f"cannot build the root filesystem of image {digest[7:19]}"))


def _qemu_path(path: Path) -> str:
    return str(path).replace(",", ",,")  # QEMU's option syntax doubles commas


def _export(overlay: Path, export: Path) -> subprocess.Popen[bytes]:
    """qemu-storage-daemon serving ``overlay`` as the plain file ``export``."""
    export.touch()
    argv = [tools.find("qemu-storage-daemon"),
            "--blockdev", f"driver=file,node-name=file,filename={_qemu_path(overlay)}",
            "--blockdev", "driver=qcow2,node-name=disk,file=file",
            "--export", f"type=fuse,id=disk,node-name=disk,mountpoint={_qemu_path(export)},"
                        "writable=on"]  # fmt: skip
    daemon = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + _EXPORT_WAIT
    while not os.path.ismount(export):
        if daemon.poll() is not None or time.monotonic() > deadline:
            _stop(daemon)
            said = daemon.stderr.read().decode(errors="replace").strip() if daemon.stderr else ""
            raise ExternalError(f"qemu-storage-daemon could not export {overlay.name}: {said}")
        time.sleep(0.01)
    return daemon


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    """Stop the daemon; on SIGTERM it flushes the overlay and closes it cleanly."""
    if daemon.poll() is None:
        daemon.terminate()
    if daemon.wait() not in (0, -15):
        raise ExternalError(f"qemu-storage-daemon failed (status {daemon.returncode})")


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = (result.stderr.strip() or "no output").splitlines()[-1]
        raise ExternalError(f"{what}: {said}")


def _apply(store: ImageStore, digest: str, skip: int, root: Path, overlay: Path) -> int:
    from cocoon.rootfs.layers import Room, apply_layer

    image = store.image(digest)
    free = min(shutil.disk_usage(root).free, shutil.disk_usage(overlay.parent).free - _SPARE)
    room = Room(max(0, free), overlay.parent)
    pairs = list(zip(image.layers, image.config.diff_ids, strict=True))[skip:]
    for layer, diff_id in pairs:
        with store.open_blob(layer.digest) as blob:
            apply_layer(blob, root, digest=layer.digest, diff_id=diff_id, room=room)
    return room.content


def _main(argv: list[str]) -> int:
    """Entry for the child in its own mount namespace: STORE DIGEST SKIP OVERLAY WORK."""
    store_root, digest, skip, overlay, work = argv
    return child.main(lambda: _mounted(ImageStore(Path(store_root)), digest, int(skip),
                                       Path(overlay), Path(work)))  # fmt: skip


def _mounted(store: ImageStore, digest: str, skip: int, overlay: Path, work: Path) -> int:
    export, root = work / "export", work / "root"
    root.mkdir()
    daemon = _export(overlay, export)
    try:
        _run([tools.find("mount"), "-t", "ext4", "-o", _MOUNT, str(export), str(root)],
             "cannot mount the parent image's disk")  # fmt: skip
        try:
            return _apply(store, digest, skip, root, overlay)
        finally:
            _run([tools.find("umount"), str(root)], "cannot unmount the new disk")
    finally:
        _stop(daemon)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
