"""Hostile archives and layers at load time: nothing from the host gets in, nothing stays.

No VM: these drive ``cocoon.image.archive.load`` (and the CLI for the exit
code and the one-line message) against stores in temporary folders.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from oci import Layer, busybox_layer, write_layout

from cocoon.errors import Corrupt, InvalidArgument, InvalidState
from cocoon.image.archive import load
from cocoon.image.model import Platform
from cocoon.image.store import ImageStore


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ImageStore:
    monkeypatch.setenv("COCOON_STATE_DIR", str(tmp_path / "state"))
    return ImageStore(tmp_path / "state" / "images", Platform("linux", "amd64"))


def blobs(store: ImageStore) -> list[str]:
    folder = store.root / "blobs" / "sha256"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def entries(store: ImageStore) -> list[str]:
    return [e.digest for e in store.entries()]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COCOON_STATE_DIR": str(tmp_path / "state")}
    argv = [sys.executable, "-m", "cocoon.cli.main", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def docker_folder(folder: Path, config: str, layers: list[str] | None = None) -> Path:
    folder.mkdir()
    manifest = [{"Config": config, "Layers": layers or [], "RepoTags": ["localhost/x:1"]}]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


# -- names and links leading out of the archive ---------------------------------------------


@pytest.mark.parametrize("name", ["/etc/shadow", "../../../../../../etc/shadow", "a/../../secret"])
def test_docker_folder_cannot_name_a_host_file(store: ImageStore, tmp_path: Path, name: str):
    folder = docker_folder(tmp_path / "archive", name)
    with pytest.raises(Corrupt, match="leads outside the folder"):
        load(store, folder)
    assert blobs(store) == [] and entries(store) == []


def test_host_json_is_not_taken_as_a_config(store: ImageStore, tmp_path: Path):
    # Shaped like a config, so only confinement stops it coming back out in a save or push.
    secret = tmp_path / "credentials.json"
    secret.write_text(json.dumps({"os": "linux", "rootfs": {"diff_ids": []}, "token": "t0p"}))
    folder = docker_folder(tmp_path / "archive", "config.json")
    (folder / "config.json").symlink_to(secret)
    with pytest.raises(Corrupt, match=r"config\.json leads outside the folder"):
        load(store, folder)
    assert blobs(store) == [] and entries(store) == []


def test_layout_blob_linked_to_a_host_file_is_refused(store: ImageStore, tmp_path: Path):
    # Even with the right content, a link out would tell whether a host file holds it.
    layout = tmp_path / "layout"
    digest = write_layout(layout, [Layer().file("f", b"x")], ref="localhost/oracle:1")
    blob = layout / "blobs/sha256" / digest.partition(":")[2]
    host_copy = tmp_path / "host-file"
    host_copy.write_bytes(blob.read_bytes())
    blob.unlink()
    blob.symlink_to(host_copy)
    with pytest.raises(Corrupt, match=f"blobs/sha256/{digest.partition(':')[2]} leads outside"):
        load(store, layout)
    assert blobs(store) == [] and entries(store) == []


def test_links_inside_the_folder_still_work(store: ImageStore, tmp_path: Path):
    layout = tmp_path / "layout"
    write_layout(layout, [Layer().file("f", b"x")], ref="localhost/linked:1")
    (layout / "real-index.json").write_bytes((layout / "index.json").read_bytes())
    (layout / "index.json").unlink()
    (layout / "index.json").symlink_to("real-index.json")
    assert [i.references for i in load(store, layout)] == [("localhost/linked:1",)]


def test_special_file_in_a_folder_is_refused_without_blocking(store: ImageStore, tmp_path: Path):
    layout = tmp_path / "layout"
    layout.mkdir()
    os.mkfifo(layout / "index.json")  # opening it for reading would wait for a writer
    with pytest.raises(Corrupt, match=r"index\.json is not a regular file"):
        load(store, layout)


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"{}") if member.isreg() else None)
    return path


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_link("index.json", "nowhere.json")], "index.json is missing (it links to nowhere.json)"),
        ([_link("index.json", "/etc/passwd")], "index.json is missing (it links to etc/passwd)"),
        ([_link("index.json", "a"), _link("a", "index.json")], "index.json is a loop of links"),
    ],
)
def test_tar_links_resolve_inside_the_archive(
    store: ImageStore, tmp_path: Path, members: list[tarfile.TarInfo], message: str
):
    archive = _tar(tmp_path / "image.tar", members)
    with pytest.raises(Corrupt) as caught:
        load(store, archive)
    assert str(caught.value) == f"{archive}: {message}"
    result = cli(tmp_path, "image", "load", str(archive))
    assert (result.returncode, result.stderr) == (125, f"cocoon: {archive}: {message}\n")


def test_dev_zero_is_refused_at_once(store: ImageStore, tmp_path: Path):
    with pytest.raises(InvalidArgument, match="not a file"):
        load(store, "/dev/zero")
    result = cli(tmp_path, "image", "load", "/dev/zero")
    assert result.returncode == 125
    assert result.stderr == (
        "cocoon: /dev/zero: not an OCI layout or a docker-archive (not a file)\n"
    )


def test_file_that_is_not_a_tar_is_refused(store: ImageStore, tmp_path: Path):
    junk = tmp_path / "junk"
    junk.write_bytes(bytes(1 << 20))
    with pytest.raises(InvalidArgument, match="not a tar file"):
        load(store, junk)


# -- a failed load leaves nothing -----------------------------------------------------------


def test_failed_load_removes_every_blob_it_added(store: ImageStore, tmp_path: Path):
    layout = tmp_path / "layout"
    digest = write_layout(layout, [Layer().file("a", b"1"), Layer().file("b", b"2")])
    manifest = json.loads((layout / "blobs/sha256" / digest.partition(":")[2]).read_text())
    # The second layer's blob is damaged: the config and first layer are stored by then.
    damaged = layout / "blobs/sha256" / manifest["layers"][1]["digest"].partition(":")[2]
    damaged.write_bytes(damaged.read_bytes()[::-1])
    with pytest.raises(Corrupt, match="does not match its digest"):
        load(store, layout)
    assert blobs(store) == [] and entries(store) == []
    assert list((store.root / ".ingest").iterdir()) == []


def test_blobs_are_not_readable_by_other_users(store: ImageStore, tmp_path: Path):
    write_layout(tmp_path / "layout", [Layer().file("a", b"1")], ref="localhost/own:1")
    load(store, tmp_path / "layout")
    modes = {(store.root / "blobs/sha256" / b).stat().st_mode & 0o777 for b in blobs(store)}
    assert modes == {0o400}
    assert store.root.stat().st_mode & 0o077 == 0


# -- hostile layers are refused at load, not first at run ----------------------------------


@pytest.mark.parametrize(
    ("stack", "message"),
    [
        ([Layer().file("../../../../victim", b"pwned")], "entry '../../../../victim' escapes"),
        ([Layer().file("/etc/cron.d/x", b"pwned")], "entry '/etc/cron.d/x' escapes the root"),
        ([Layer().hardlink("shadow", "../../etc/shadow")], "escapes the root"),
        (
            [Layer().symlink("etc", "/etc"), Layer().file("etc/cron.d/x", b"pwned")],
            "entry 'etc/cron.d/x' is below 'etc', which is a symbolic link",
        ),
        ([Layer().hardlink("a", "missing")], "hardlink 'a' -> 'missing': the target does not"),
        ([Layer().whiteout("..")], "is not a valid whiteout"),
    ],
)
def test_hostile_layer_is_refused_at_load(
    store: ImageStore, tmp_path: Path, stack: list[Layer], message: str
):
    layout = tmp_path / "layout"
    write_layout(layout, [busybox_layer(), *stack], ref="localhost/hostile:1")
    with pytest.raises(Corrupt, match=message.replace(".", r"\.")):
        load(store, layout)
    assert blobs(store) == [] and entries(store) == []
    assert not (tmp_path / "victim").exists()
    result = cli(tmp_path, "image", "load", str(layout))
    assert result.returncode == 125 and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_decompression_bomb_fails_cleanly_when_unpacked(
    store: ImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from cocoon.rootfs import disks

    # A few hundred kilobytes that expand to 256 MiB: unpacking it (as a load
    # builds the disk) may not take more than the filesystem has room for.
    bomb = Layer().file("zeros", bytes(256 << 20))
    layout = tmp_path / "layout"
    write_layout(layout, [bomb], ref="localhost/bomb:1")
    assert os.path.getsize(max((layout / "blobs/sha256").iterdir(), key=os.path.getsize)) < 1 << 20
    monkeypatch.setattr(disks, "free_space", lambda folder: 300 << 20)
    with pytest.raises(InvalidState, match="not enough free space"):
        load(store, layout)
    assert store.images() == []
    # The same when an image stored without its disk is run.
    (image,) = load(store, layout, prepare=False)
    with pytest.raises(InvalidState, match="not enough free space"):
        disks.image_disk(store, image)
    assert sorted(p.suffix for p in disks.rootfs_dir().iterdir()) == [".lock"]
