"""Image disks in real VMs: ready once an image is loaded, shared by related images."""

from __future__ import annotations

from pathlib import Path

import pytest
from oci import Layer, busybox_layer, write_layout

from cocoon.image.store import ImageStore
from cocoon.rootfs.disks import disk_key

pytestmark = pytest.mark.vm

# Every path below /data and /etc/conf with its type, mode, owner, size and link count.
LISTING = "cd / && find data etc/conf | sort | xargs stat -c '%n %F %a %u:%g %s %h'"


def base_layer() -> Layer:
    layer = busybox_layer()
    layer.dir("data").file("data/keep", b"keep\n").file("data/gone", b"gone\n")
    layer.hardlink("data/keep-link", "data/keep")
    layer.dir("data/opaque").file("data/opaque/old", b"old\n")
    layer.dir("data/opaque/sub").file("data/opaque/sub/older", b"older\n")
    layer.dir("data/tree").file("data/tree/leaf", b"leaf\n")
    return layer.file("etc/conf", b"v1\n")


def upper_layer() -> Layer:
    layer = Layer().whiteout("data/gone").whiteout("data/tree").opaque("data/opaque")
    layer.file("data/opaque/new", b"new\n", uid=1000, gid=50)
    layer.hardlink("data/keep-link2", "data/keep")  # to a file of the lower layer
    return layer.file("etc/conf", b"v2\n", mode=0o600).dir("data/added", 0o750)


def listing(cocoon, ref: str) -> str:
    result = cocoon("run", "--rm", ref, "sh", "-c", LISTING)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def disk_of(cocoon, ref: str) -> Path:
    image = ImageStore(cocoon.state / "images").resolve(ref)
    folder, key = cocoon.state / "rootfs", disk_key(image)
    (disk,) = [p for p in (folder / f"{key}.ext4", folder / f"{key}.delta") if p.exists()]
    return disk


def test_disk_is_ready_after_load(cocoon, tmp_path):
    ref = "localhost/prepared:1"
    cocoon.load_layout(tmp_path, [busybox_layer().file("marker", b"ready\n")], ref)
    assert disk_of(cocoon, ref).suffix == ".ext4"
    # The first run unpacks nothing: without the layer blobs, it still runs.
    image = ImageStore(cocoon.state / "images").resolve(ref)
    blob = cocoon.state / "images" / "blobs" / "sha256" / image.layers[0].digest.partition(":")[2]
    hidden = blob.rename(tmp_path / "hidden-blob")
    try:
        result = cocoon("run", "--rm", ref, "cat", "/marker")
    finally:
        hidden.rename(blob)
    assert (result.returncode, result.stdout) == (0, b"ready\n"), result.stderr


def test_related_images_share_their_base_disk(cocoon, tmp_path):
    # Built whole (no parent stored), the image's files are what they must be.
    cocoon.load_layout(tmp_path / "whole", [base_layer(), upper_layer()], "localhost/child:1")
    assert disk_of(cocoon, "localhost/child:1").suffix == ".ext4"
    expected = listing(cocoon, "localhost/child:1")
    assert "data/gone" not in expected and "data/tree" not in expected
    assert "data/opaque/old" not in expected and "data/opaque/sub" not in expected
    assert "data/opaque/new regular file 644 1000:50 4 1" in expected
    assert "data/keep-link2 regular file 644 0:0 5 3" in expected
    assert "etc/conf regular file 600 0:0 3 1" in expected
    assert cocoon("image", "rm", "localhost/child:1").returncode == 0

    # With the base stored, the same image's disk is a thin overlay of the base's.
    cocoon.load_layout(tmp_path / "base", [base_layer()], "localhost/base:1")
    cocoon.load_layout(tmp_path / "child", [base_layer(), upper_layer()], "localhost/child:1")
    base, child = disk_of(cocoon, "localhost/base:1"), disk_of(cocoon, "localhost/child:1")
    assert (base.suffix, child.suffix) == (".ext4", ".delta")
    assert child.stat().st_blocks * 512 < 8 << 20
    assert listing(cocoon, "localhost/child:1") == expected
    assert "data/gone" in listing(cocoon, "localhost/base:1")  # the base is unchanged

    # The base's disk stays while the child's is an overlay of it.
    assert cocoon("image", "rm", "localhost/base:1").returncode == 0
    assert base.exists()
    assert listing(cocoon, "localhost/child:1") == expected
    assert cocoon("image", "rm", "localhost/child:1").returncode == 0
    assert not base.exists() and not child.exists()


def test_image_without_its_disk_gets_it_at_its_first_run(cocoon, tmp_path):
    ref = "localhost/unprepared:1"
    layout = tmp_path / "layout"
    write_layout(layout, [busybox_layer().file("marker", b"late\n")], ref=ref)
    assert cocoon("image", "load", "--no-prepare", str(layout)).returncode == 0
    image = ImageStore(cocoon.state / "images").resolve(ref)
    assert not (cocoon.state / "rootfs" / f"{disk_key(image)}.ext4").exists()
    result = cocoon("run", "--rm", ref, "cat", "/marker")
    assert (result.returncode, result.stdout) == (0, b"late\n"), result.stderr
    assert disk_of(cocoon, ref).suffix == ".ext4"
