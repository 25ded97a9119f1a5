"""Root filesystem disks: real layers through real mkfs.ext4, checked with debugfs."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from oci import Layer, store_unchecked, write_layout

from cocoon.errors import CocoonError, Corrupt, InvalidState
from cocoon.image.archive import load
from cocoon.image.model import Image, Platform
from cocoon.image.store import ImageStore
from cocoon.rootfs import delta, disks
from cocoon.rootfs.disks import ROOT_SIZE, container_disk, image_disk, remove_unused


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "state" / "images", Platform("linux", "amd64"))


def debugfs(image: Path, request: str) -> str:
    result = subprocess.run(
        [shutil.which("debugfs") or "/usr/sbin/debugfs", "-R", request, str(image)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def fsck(image: Path) -> None:
    e2fsck = shutil.which("e2fsck") or "/usr/sbin/e2fsck"
    subprocess.run([e2fsck, "-fn", str(image)], check=True, capture_output=True)


def loaded(
    store: ImageStore, tmp_path: Path, stack: list[Layer], ref: str, prepare: bool = True
) -> Image:
    layout = tmp_path / ref.replace("/", "_").replace(":", "_")
    write_layout(layout, stack, ref=ref)
    (image,) = load(store, layout, prepare=prepare)
    return image


def stack() -> list[Layer]:
    fifo = tarfile.TarInfo("run/fifo")
    fifo.type, fifo.mode = tarfile.FIFOTYPE, 0o600
    null = tarfile.TarInfo("dev/null")
    null.type, null.mode, null.devmajor, null.devminor = tarfile.CHRTYPE, 0o666, 1, 3
    labelled = tarfile.TarInfo("etc/labelled")
    labelled.pax_headers = {"SCHILY.xattr.user.origin": "layer"}
    base = (
        Layer()
        .dir("bin")
        .file("bin/tool", b"#!/bin/sh\n", 0o4755, uid=0, gid=50)
        .hardlink("bin/tool-link", "bin/tool")
        .symlink("bin/sh", "/bin/tool")
        .dir("home/app", 0o700, uid=1000, gid=1000)
        .file("etc/removed", b"x")
        ._add(fifo)
        ._add(null)
        ._add(labelled, b"")
    )
    return [base, Layer().whiteout("etc/removed").file("hello", b"hi there\n")]


@pytest.mark.parametrize("privileged", [True, False], ids=["root", "user-fakeroot"])
def test_image_disk_holds_the_layers(
    store: ImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, privileged: bool
) -> None:
    # Unprivileged, the build runs under fakeroot: owners, modes and device
    # nodes must come out the same as when root builds it.
    monkeypatch.setattr(disks, "_privileged", lambda: privileged)
    image = loaded(store, tmp_path, stack(), "localhost/app:1")
    disk = image_disk(store, image)
    assert disk.parent == tmp_path / "state" / "rootfs"
    assert disk.name == f"{disks.disk_key(image)}.ext4"
    fsck(disk)
    # Containers write to it through their overlays: room, and a journal.
    assert "has_journal" in debugfs(disk, "features")
    info = disk.stat()
    assert info.st_size == ROOT_SIZE and info.st_blocks * 512 < 32 << 20
    listing = debugfs(disk, "ls -l /")
    assert "hello" in listing and "removed" not in debugfs(disk, "ls -l /etc")
    assert debugfs(disk, "cat /hello") == "hi there\n"
    tool = debugfs(disk, "stat /bin/tool")
    assert "Mode:  04755" in tool and "Group:    50" in tool and "Links: 2" in tool
    assert 'Fast link dest: "/bin/tool"' in debugfs(disk, "stat /bin/sh")
    home = debugfs(disk, "stat /home/app")
    assert "Mode:  0700" in home and "User:  1000" in home
    assert "Type: character special" in debugfs(disk, "stat /dev/null")
    assert "Type: FIFO" in debugfs(disk, "stat /run/fifo")
    assert "user.origin" in debugfs(disk, "ea_list /etc/labelled")


def test_image_disk_is_cached_and_shared_by_tags(store: ImageStore, tmp_path: Path) -> None:
    image = loaded(store, tmp_path, stack(), "localhost/app:1")
    disk = image_disk(store, image)
    built = disk.stat().st_mtime_ns
    store.tag("localhost/other:2", store.entries()[0])
    assert image_disk(store, store.resolve("localhost/other:2")) == disk
    assert disk.stat().st_mtime_ns == built
    leftovers = sorted(p.name for p in disk.parent.iterdir() if p.suffix not in (".ext4", ".lock"))
    # The image's size, and the containers' overlay template.
    assert leftovers == [f"{disk.stem}.json", f"{disk.stem}.qcow2"]


def test_failed_build_leaves_nothing(store: ImageStore, tmp_path: Path) -> None:
    image = store_unchecked(store, Layer().file("../evil", b"x"), "localhost/bad:1")
    with pytest.raises(Corrupt, match="escapes the root"):
        image_disk(store, image)
    assert sorted(p.suffix for p in (tmp_path / "state" / "rootfs").iterdir()) == [".lock"]
    assert not (tmp_path / "state" / "evil").exists()


def test_corrupted_layer_blob_is_caught_at_build(store: ImageStore, tmp_path: Path) -> None:
    # Loaded without its disk (as by an older cocoon), so the run builds it.
    image = loaded(store, tmp_path, stack(), "localhost/app:1", prepare=False)
    blob = store.blob_path(image.layers[1].digest)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[-12] ^= 0xFF  # in the gzip trailer: still decompresses, no longer matches
    blob.write_bytes(bytes(data))
    with pytest.raises(Corrupt):
        image_disk(store, image)


def _build(state: str) -> None:
    os.environ["COCOON_STATE_DIR"] = state
    store = ImageStore(Path(state) / "images", Platform("linux", "amd64"))
    image_disk(store, store.resolve("localhost/app:1"))


def test_concurrent_builders_make_one_disk(store: ImageStore, tmp_path: Path) -> None:
    image = loaded(store, tmp_path, stack(), "localhost/app:1", prepare=False)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_build, args=(str(tmp_path / "state"),)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    disks_built = list((tmp_path / "state" / "rootfs").glob("*.ext4"))
    assert disks_built == [image_disk(store, image)]
    fsck(disks_built[0])
    assert len(list((tmp_path / "state" / "rootfs").glob("*.qcow2"))) == 1


def test_remove_unused(store: ImageStore, tmp_path: Path) -> None:
    image = loaded(store, tmp_path, stack(), "localhost/app:1")
    disk = image_disk(store, image)
    assert remove_unused(store) == []
    container = container_disk(tmp_path / "container.qcow2", disk)
    # The library's removal takes the disk with the image, once no container runs on it.
    store.remove("localhost/app:1")
    assert disk.exists()
    container.unlink()
    (tmp_path / "container.qcow2.base").unlink()  # what removing the container's folder does
    assert remove_unused(store) == [disk]
    assert list(disk.parent.iterdir()) == []


def test_image_removal_takes_its_disk(store: ImageStore, tmp_path: Path) -> None:
    disk = image_disk(store, loaded(store, tmp_path, stack(), "localhost/app:1"))
    store.remove("localhost/app:1")
    assert not disk.exists()
    assert list(disk.parent.iterdir()) == []


def qemu_img_info(path: Path) -> dict:
    argv = ["qemu-img", "info", "--output=json", "--force-share", str(path)]
    return json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)


def test_container_disk_is_a_copy_on_write_overlay(store: ImageStore, tmp_path: Path) -> None:
    disk = image_disk(store, loaded(store, tmp_path, stack(), "localhost/app:1"))
    first = container_disk(tmp_path / "one.qcow2", disk)
    second = container_disk(tmp_path / "two.qcow2", disk)
    for overlay in (first, second):
        info = qemu_img_info(overlay)
        assert info["format"] == "qcow2" and info["backing-filename-format"] == "raw"
        assert info["backing-filename"] == str(disk.resolve())
        assert info["virtual-size"] == disk.stat().st_size
        assert overlay.stat().st_size < 1 << 20  # nothing but metadata until written
    assert sorted(p.name for p in tmp_path.glob("*.qcow2")) == ["one.qcow2", "two.qcow2"]


needs_overlays = pytest.mark.skipif(
    not delta.available(), reason="overlay disks need root, FUSE and qemu-storage-daemon"
)


def upper(name: str) -> Layer:
    """A child image's layer over ``stack()``: a whiteout, an opaque folder, a link down."""
    return (
        Layer()
        .whiteout("hello")
        .opaque("bin")
        .file("bin/new", name.encode(), 0o755)
        .hardlink("home/labelled", "etc/labelled")  # to a lower layer's file
        .file(f"{name}.txt", b"upper\n", uid=1000)
    )


def as_raw(disk: Path, tmp_path: Path) -> Path:
    """A disk (and its backing chain) flattened, for debugfs and e2fsck."""
    raw = tmp_path / f"{disk.name}.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(raw)], check=True)
    return raw


@needs_overlays
def test_child_disk_is_a_thin_overlay_of_its_parent(store: ImageStore, tmp_path: Path) -> None:
    base = image_disk(store, loaded(store, tmp_path, stack(), "localhost/base:1"))
    child_image = loaded(store, tmp_path, [*stack(), upper("child")], "localhost/child:1")
    child = image_disk(store, child_image)
    assert (base.suffix, child.suffix) == (".ext4", ".delta")
    info = qemu_img_info(child)
    assert info["backing-filename"] == str(base.resolve()) and info["virtual-size"] == ROOT_SIZE
    assert child.stat().st_blocks * 512 < 8 << 20  # only what the upper layer changed
    template = qemu_img_info(child.with_suffix(".qcow2"))
    assert template["backing-filename-format"] == "qcow2"
    raw = as_raw(child, tmp_path)
    fsck(raw)
    assert "hello" not in debugfs(raw, "ls /") and "child.txt" in debugfs(raw, "ls /")
    names = [line.split("/")[5] for line in debugfs(raw, "ls -p /bin").splitlines() if line]
    assert names == [".", "..", "new"]
    assert "Links: 2" in debugfs(raw, "stat /home/labelled")
    assert "User:  1000" in debugfs(raw, "stat /child.txt")
    assert "hello" in debugfs(base, "ls /")  # the parent is untouched
    assert disks.image_size(child_image) > disks.image_size(store.resolve("localhost/base:1"))


@needs_overlays
def test_parent_disk_stays_while_a_child_needs_it(store: ImageStore, tmp_path: Path) -> None:
    base = image_disk(store, loaded(store, tmp_path, stack(), "localhost/base:1"))
    child = image_disk(store, loaded(store, tmp_path, [*stack(), upper("c")], "localhost/c:1"))
    store.remove("localhost/base:1")
    assert base.exists() and child.exists()
    store.remove("localhost/c:1")
    assert not base.exists() and not child.exists()
    assert [p.suffix for p in base.parent.iterdir()] == []


def _load_child(state: str, layout: str) -> None:
    os.environ["COCOON_STATE_DIR"] = state
    load(ImageStore(Path(state) / "images", Platform("linux", "amd64")), layout)


@needs_overlays
def test_concurrent_loads_of_related_images_build_the_base_once(
    store: ImageStore, tmp_path: Path
) -> None:
    # The base is stored without its disk: each child needs it built first.
    loaded(store, tmp_path, stack(), "localhost/base:1", prepare=False)
    layouts = []
    for i in range(3):
        layouts.append(tmp_path / f"child{i}")
        write_layout(layouts[-1], [*stack(), upper(f"c{i}")], ref=f"localhost/c{i}:1")
    context = multiprocessing.get_context("fork")
    state = str(tmp_path / "state")
    workers = [context.Process(target=_load_child, args=(state, str(o))) for o in layouts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    folder = tmp_path / "state" / "rootfs"
    (base,) = folder.glob("*.ext4")
    assert base.stat().st_nlink == 4  # itself and one .parent link per child
    children = sorted(folder.glob("*.delta"))
    assert len(children) == 3
    for child in children:
        raw = as_raw(child, tmp_path)
        fsck(raw)
        raw.unlink()
    assert not list(folder.glob(".build-*"))


def test_no_room_to_unpack_fails_cleanly(
    store: ImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a full host disk: one clear error before the disk fills, and no partial files.
    monkeypatch.setattr(disks, "free_space", lambda folder: disks._SPARE + (64 << 10))
    layers = [Layer().file("big", os.urandom(1 << 20))]
    with pytest.raises(InvalidState, match="not enough free space"):
        loaded(store, tmp_path, layers, "localhost/big:1")
    assert [p.suffix for p in (tmp_path / "state" / "rootfs").iterdir()] == [".lock"]
    assert not list(Path("/dev/shm").glob("cocoon-.build-*"))
    assert store.images() == []


def test_image_size_is_the_unpacked_size(store: ImageStore, tmp_path: Path) -> None:
    # As docker images shows: what the files hold, not what the gzip layers weigh.
    image = loaded(store, tmp_path, [Layer().file("zeros", bytes(4 << 20))], "localhost/z:1")
    assert image.size < 64 << 10
    assert disks.image_size(image) == 4 << 20


def test_tree_too_big_for_memory_is_unpacked_on_disk_instead(
    store: ImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A layer that expands far beyond its size outgrows the in-memory scratch
    # space (which it may only half fill); the build starts again on disk.
    scratch = tmp_path / "shm"
    scratch.mkdir()
    monkeypatch.setattr(disks, "_SCRATCH", scratch)
    real = disks.free_space
    monkeypatch.setattr(
        disks, "free_space", lambda f: disks._SPARE + (2 << 20) if f == scratch else real(f)
    )
    image = loaded(store, tmp_path, [Layer().file("zeros", bytes(4 << 20))], "localhost/z:1")
    disk = image_disk(store, image)
    assert "Size: 4194304" in debugfs(disk, "stat /zeros")
    assert list(scratch.iterdir()) == []


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 24 MiB filesystem (tmpfs), to fill."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_full_host_disk_fails_with_one_line_and_leaves_nothing(
    small_fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Free space checked too late (as when something else fills the disk
    # meanwhile): the writes themselves meet ENOSPC, which must end cleanly.
    monkeypatch.setenv("COCOON_STATE_DIR", str(small_fs / "state"))
    monkeypatch.setattr(disks, "_SCRATCH", small_fs)
    monkeypatch.setattr(disks, "free_space", lambda folder: 1 << 40)
    store = ImageStore(small_fs / "state" / "images", Platform("linux", "amd64"))
    layout = small_fs / "layout"
    write_layout(layout, [Layer().file("noise", os.urandom(7 << 20))], ref="localhost/big:1")
    with pytest.raises(CocoonError) as failed:
        load(store, layout)
    assert "\n" not in str(failed.value) and "space" in str(failed.value)
    assert [p.suffix for p in (small_fs / "state" / "rootfs").iterdir()] == [".lock"]
    assert sorted(p.name for p in small_fs.iterdir()) == ["layout", "state"]
    assert store.images() == []
