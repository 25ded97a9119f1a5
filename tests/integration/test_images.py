"""Images from files into VMs: layers, whiteouts, hostile layers, docker-archives."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from oci import Layer, busybox_layer, store_unchecked, write_layout

from cocoon.image.store import ImageStore
from cocoon.rootfs.disks import disk_key

pytestmark = pytest.mark.vm


def test_layers_and_whiteouts(cocoon, tmp_path):
    base = busybox_layer()
    base.dir("data").file("data/keep", b"keep\n").file("data/gone", b"x")
    base.dir("data/opaque").file("data/opaque/old", b"old").file("etc/replaced", b"v1\n")
    second = Layer().whiteout("data/gone").opaque("data/opaque").file("data/opaque/new", b"new")
    third = Layer().file("etc/replaced", b"v3\n").dir("data/added").file("data/added/f", b"f")
    cocoon.load_layout(tmp_path, [base, second, third], "localhost/layered:1")
    result = cocoon("run", "--rm", "localhost/layered:1", "sh", "-c",
                    "ls -A /data /data/opaque; cat /etc/replaced")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split("\n\n") == [
        "/data:\nadded\nkeep\nopaque",
        "/data/opaque:\nnew\nv3\n",
    ]


def _load_refused(cocoon, tmp_path, layers: list[Layer], ref: str) -> str:
    """Load a layout that must be refused: its stderr line, after checking nothing was kept."""
    layout = tmp_path / "hostile-layout"
    write_layout(layout, layers, ref=ref)
    blobs = sorted((cocoon.state / "images" / "blobs" / "sha256").iterdir())
    result = cocoon("image", "load", str(layout))
    assert result.returncode == 125
    assert sorted((cocoon.state / "images" / "blobs" / "sha256").iterdir()) == blobs
    assert cocoon("image", "inspect", ref).returncode == 125
    return result.stderr.decode()


def _layer_digest(layers: list[Layer], index: int) -> str:
    """As write_layout stores it: gzip without a timestamp."""
    return "sha256:" + hashlib.sha256(gzip.compress(layers[index].tar(), mtime=0)).hexdigest()


def test_hostile_layer_is_refused(cocoon, busybox, tmp_path):
    victim = tmp_path / "victim"
    name = f"../../../../../../../..{victim}"
    layers = [busybox_layer(), Layer().file(name, b"pwned")]
    stderr = _load_refused(cocoon, tmp_path, layers, "localhost/hostile:1")
    assert stderr == f"cocoon: layer {_layer_digest(layers, 1)}: entry {name!r} escapes the root\n"
    # An image that reached the store unchecked (before loads checked layers) is
    # still refused when it runs, before any VM or container exists.
    store_unchecked(ImageStore(cocoon.state / "images"), layers[1], "localhost/hostile:2")
    records = set((cocoon.state / "containers").glob("*/container.json"))
    result = cocoon("run", "--rm", "localhost/hostile:2", "true")
    assert result.returncode == 125
    assert result.stderr.decode().endswith(f"entry {name!r} escapes the root\n")
    assert result.stderr.decode().count("\n") == 1
    assert not victim.exists()
    assert set((cocoon.state / "containers").glob("*/container.json")) == records


def test_symlink_escape_is_not_followed(cocoon, busybox, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    layers = [busybox_layer().symlink("link", str(outside)).file("link/planted", b"x")]
    stderr = _load_refused(cocoon, tmp_path, layers, "localhost/linky:1")
    assert stderr == (
        f"cocoon: layer {_layer_digest(layers, 0)}: entry 'link/planted' is below 'link', "
        "which is a symbolic link or not a directory\n"
    )
    assert not (outside / "planted").exists()


def test_docker_archive_from_skopeo(cocoon, tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, [busybox_layer(), Layer().file("hello.txt", b"from docker-archive\n")])
    archive = tmp_path / "image.tar"
    subprocess.run(
        ["skopeo", "copy", "-q", f"oci:{layout}:latest",
         f"docker-archive:{archive}:localhost/from-skopeo:2"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert cocoon("image", "load", str(archive)).returncode == 0
    result = cocoon("run", "--rm", "localhost/from-skopeo:2", "cat", "/hello.txt")
    assert result.stdout == b"from docker-archive\n"


def test_image_ls_json(cocoon, busybox):
    result = cocoon("image", "ls", "--format", "json")
    images = json.loads(result.stdout)
    assert any(i["reference"] == busybox and i["id"].startswith("sha256:") for i in images)
    table = cocoon("image", "ls").stdout.decode().splitlines()
    assert table[0].split()[:2] == ["REPOSITORY", "TAG"]
    assert any(line.split()[:2] == ["localhost/busybox", "latest"] for line in table)


def test_rootfs_disk_is_shared_and_cached(cocoon, busybox):
    # Each container writes to its own copy-on-write overlay of the shared
    # disk: what one changes, the image and the next container never see.
    change = "echo mine > /etc/note && rm /etc/group && echo changed"
    assert cocoon("run", "--rm", busybox, "sh", "-c", change).stdout == b"changed\n"
    disks = sorted(Path(cocoon.state, "rootfs").glob("*.ext4"))
    look = "cat /etc/note; test -s /etc/group && echo intact"
    result = cocoon("run", "--rm", busybox, "sh", "-c", look)
    assert result.stdout == b"intact\n"
    assert b"/etc/note" in result.stderr
    assert sorted(Path(cocoon.state, "rootfs").glob("*.ext4")) == disks


def test_corrupt_layer_blob_is_caught(cocoon, tmp_path):
    layer = busybox_layer().file("marker", b"m")
    cocoon.load_layout(tmp_path, [layer], "localhost/tampered:1")
    image = ImageStore(cocoon.state / "images").resolve("localhost/tampered:1")
    # As in a store from before disks were built at load: the run builds it.
    for made in (cocoon.state / "rootfs").glob(f"{disk_key(image)}.*"):
        made.unlink()
    # A blob changed on disk behind cocoon's back must not become a root filesystem.
    blob = cocoon.state / "images" / "blobs" / "sha256" / image.layers[0].digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 1
    blob.write_bytes(bytes(data))
    result = cocoon("run", "--rm", "localhost/tampered:1", "true")
    assert result.returncode == 125
    assert f"layer {image.layers[0].digest}" in result.stderr.decode()
    assert result.stderr.decode().count("\n") == 1


def test_unusable_rootfs_disk_is_one_line(cocoon, tmp_path):
    cocoon.load_layout(tmp_path, [busybox_layer().file("own", b"1")], "localhost/broken-disk:1")
    assert cocoon("run", "--rm", "localhost/broken-disk:1", "true").returncode == 0
    image = ImageStore(cocoon.state / "images").resolve("localhost/broken-disk:1")
    disk = cocoon.state / "rootfs" / f"{disk_key(image)}.ext4"
    with disk.open("r+b") as f:  # wipe the superblock behind cocoon's back
        f.write(bytes(4096))
    result = cocoon("run", "--rm", "localhost/broken-disk:1", "true")
    assert result.returncode == 125
    assert result.stderr.decode().count("\n") == 1
    assert "guest agent: mount /dev/vda" in result.stderr.decode()


def test_image_rm_keeps_the_disk_a_container_runs_on(cocoon, tmp_path):
    ref = "localhost/kept-disk:1"
    cocoon.load_layout(tmp_path, [busybox_layer().file("own", b"2")], ref)
    created = cocoon("create", "--name", "keeper", ref, "cat", "/own")
    assert created.returncode == 0, created.stderr
    image = ImageStore(cocoon.state / "images").resolve(ref)
    disk = cocoon.state / "rootfs" / f"{disk_key(image)}.ext4"
    assert disk.exists()
    assert cocoon("image", "rm", ref).returncode == 0
    assert disk.exists()  # the container's disk is an overlay of it
    started = cocoon("start", "-a", "keeper")
    assert (started.returncode, started.stdout) == (0, b"2")
    assert cocoon("rm", "keeper").returncode == 0
    assert cocoon("image", "prune").returncode == 0
    assert not disk.exists()
