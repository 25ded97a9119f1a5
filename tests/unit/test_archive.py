"""Loading OCI layouts and docker-archives, and saving OCI layout tars."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from oci import Layer, busybox_layer, write_layout

from cocoon.errors import Corrupt, InvalidArgument, NotFound, Unsupported
from cocoon.image.archive import load, save
from cocoon.image.model import OCI_INDEX, OCI_LAYER, Platform
from cocoon.image.store import ImageStore

AMD64 = Platform("linux", "amd64")


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store", platform=AMD64)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def small_layers() -> list[Layer]:
    return [
        Layer().dir("bin").file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755),
        Layer().file("etc/motd", b"welcome\n"),
    ]


def tar_directory(source: Path, target: Path, compress: bool = False) -> Path:
    with tarfile.open(target, "w:gz" if compress else "w") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, path.relative_to(source).as_posix(), recursive=False)
    return target


def skopeo(*args: str) -> None:
    # setup.sh installs skopeo, and the registry tests need it as much: no skip.
    subprocess.run(["skopeo", "--insecure-policy", *args], check=True, capture_output=True)


def test_load_layout_directory(store: ImageStore, tmp_path: Path) -> None:
    digest = write_layout(tmp_path / "layout", small_layers(), ref="localhost/app:1")
    (image,) = load(store, tmp_path / "layout")
    assert image.references == ("localhost/app:1",)
    assert image.digest == digest
    assert store.resolve("localhost/app:1").id == image.id
    assert len(image.layers) == 2
    assert all(store.has_blob(layer.digest) for layer in image.layers)


def test_layout_with_only_a_tag_loads_untagged(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "layout", small_layers(), ref="latest")
    (image,) = load(store, tmp_path / "layout")
    assert image.references == ()
    assert store.resolve(image.short_id).id == image.id
    assert store.gc() == []


def test_containerd_name_annotation_wins(store: ImageStore, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    write_layout(layout, small_layers(), ref="1.0")
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"]["io.containerd.image.name"] = "docker.io/me/app:1.0"
    (layout / "index.json").write_text(json.dumps(index))
    (image,) = load(store, layout)
    assert image.references == ("docker.io/me/app:1.0",)


def test_load_layout_tar_plain_and_gzipped(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "layout", small_layers(), ref="localhost/app:1")
    for compress in (False, True):
        archive = tar_directory(tmp_path / "layout", tmp_path / f"x{compress}.tar", compress)
        (image,) = load(ImageStore(tmp_path / f"store{compress}", AMD64), archive)
        assert image.references == ("localhost/app:1",)


def test_load_skopeo_docker_archive(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "layout", [busybox_layer(), *small_layers()], ref="latest")
    archive = tmp_path / "docker.tar"
    skopeo("copy", f"oci:{tmp_path / 'layout'}:latest", f"docker-archive:{archive}:localhost/bb:1")
    (image,) = load(store, archive)
    assert image.references == ("localhost/bb:1",)
    assert [layer.media_type for layer in image.layers] == [OCI_LAYER] * 3
    # Plain tar layers: the layer digests are the diff_ids.
    assert tuple(layer.digest for layer in image.layers) == image.config.diff_ids
    with store.open_blob(image.id) as f:
        assert sha(f.read()) == image.id
    assert image.config.cmd == ("sh",)
    again = load(store, archive)
    assert [i.digest for i in again] == [image.digest]


def test_load_skopeo_oci_archive(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "layout", small_layers(), ref="latest")
    archive = tmp_path / "oci.tar"
    skopeo("copy", f"oci:{tmp_path / 'layout'}:latest", f"oci-archive:{archive}:localhost/x:2")
    (image,) = load(store, archive)
    assert image.references == ("localhost/x:2",)


def docker_archive(path: Path, images: list[tuple[list[bytes], list[str]]]) -> Path:
    """A docker-save tarball: config <hex>.json, layers <n>/layer.tar."""
    manifest = []
    with tarfile.open(path, "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for layers, tags in images:
            names = []
            for layer in layers:
                names.append(f"{sha(layer)[7:19]}/layer.tar")
                if names[-1] not in tar.getnames():
                    add(names[-1], layer)
            config = json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "config": {"Entrypoint": ["/bin/app"], "Env": ["A=1"]},
                    "rootfs": {"type": "layers", "diff_ids": [sha(la) for la in layers]},
                }
            ).encode()
            add(f"{sha(config)[7:]}.json", config)
            manifest.append(
                {"Config": f"{sha(config)[7:]}.json", "RepoTags": tags, "Layers": names}
            )
        add("manifest.json", json.dumps(manifest).encode())
    return path


def test_load_docker_archive_with_shared_layers(store: ImageStore, tmp_path: Path) -> None:
    base, top = Layer().file("a", b"a").tar(), Layer().file("b", b"b").tar()
    archive = docker_archive(
        tmp_path / "save.tar", [([base], ["one:1", "one:latest"]), ([base, top], [])]
    )
    one, two = load(store, archive)
    assert one.references == ("docker.io/library/one:1", "docker.io/library/one:latest")
    assert two.references == ()
    assert two.layers[0] == one.layers[0]
    assert one.config.entrypoint == ("/bin/app",)
    assert store.resolve(two.short_id).digest == two.digest


def test_docker_archive_layer_must_match_diff_id(store: ImageStore, tmp_path: Path) -> None:
    archive = docker_archive(tmp_path / "save.tar", [([b"not really a layer"], ["x"])])
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    config_name = json.loads(members["manifest.json"])[0]["Config"]
    config = json.loads(members[config_name])
    config["rootfs"]["diff_ids"] = [sha(b"other")]
    members[config_name] = json.dumps(config).encode()
    manifest = json.loads(members["manifest.json"])
    manifest[0]["Config"] = "config.json"
    members["config.json"] = members.pop(config_name)
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(archive, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(Corrupt, match="does not match its diff_id"):
        load(store, archive)
    assert store.images() == []


def test_docker_archive_config_named_by_wrong_digest(store: ImageStore, tmp_path: Path) -> None:
    archive = docker_archive(tmp_path / "save.tar", [([Layer().tar()], ["x"])])
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    name = next(n for n in members if n.endswith(".json") and n != "manifest.json")
    members[name] = members[name].replace(b"A=1", b"A=2")
    with tarfile.open(archive, "w") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(Corrupt, match="does not match its digest"):
        load(store, archive)


def write_multi_platform(layout: Path) -> dict[str, str]:
    """An index with an arm64 and an amd64 image; return platform -> manifest digest."""
    blobs = layout / "blobs" / "sha256"
    found = {}
    entries = []
    for arch in ("arm64", "amd64"):
        sub = layout.parent / f"sub-{arch}"
        write_layout(sub, [Layer().file("arch", arch.encode())], config={"Labels": {"a": arch}})
        index = json.loads((sub / "index.json").read_text())
        entry = index["manifests"][0]
        entry["annotations"] = {}
        entry["platform"] = {"os": "linux", "architecture": arch}
        entries.append(entry)
        found[arch] = entry["digest"]
        if arch == "amd64":  # only the host's image is complete, as after a one-platform pull
            shutil.copytree(sub, layout, dirs_exist_ok=True)
    nested = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    (blobs / sha(nested.encode())[7:]).write_text(nested)
    top = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_INDEX,
                "digest": sha(nested.encode()),
                "size": len(nested),
                "annotations": {"org.opencontainers.image.ref.name": "localhost/multi:1"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(top))
    found["index"] = sha(nested.encode())
    return found


def test_index_selects_the_host_platform(store: ImageStore, tmp_path: Path) -> None:
    digests = write_multi_platform(tmp_path / "layout")
    (image,) = load(store, tmp_path / "layout")
    assert image.digest == digests["index"]
    assert image.manifest_digest == digests["amd64"]
    assert image.config.labels == {"a": "amd64"}
    assert store.has_blob(digests["index"])
    assert not store.has_blob(digests["arm64"])
    assert store.resolve(f"localhost/multi:1@{digests['amd64']}").id == image.id
    assert store.gc() == []


def test_index_without_the_host_platform(tmp_path: Path) -> None:
    write_multi_platform(tmp_path / "layout")
    s390 = ImageStore(tmp_path / "store", platform=Platform("linux", "s390x"))
    with pytest.raises(Unsupported, match=r"no image for linux/s390x \(it offers: linux/amd64"):
        load(s390, tmp_path / "layout")


def test_missing_blob_is_corrupt_and_tags_nothing(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "layout", small_layers(), ref="localhost/app:1")
    biggest = max((tmp_path / "layout/blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    biggest.unlink()
    with pytest.raises(Corrupt, match="is missing"):
        load(store, tmp_path / "layout")
    assert store.images() == []


def test_tampered_layout_blob_is_refused(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "layout", small_layers(), ref="localhost/app:1")
    blob = max((tmp_path / "layout/blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    blob.write_bytes(gzip.compress(b"evil" * 100))
    with pytest.raises(Corrupt):
        load(store, tmp_path / "layout")
    assert store.images() == []


def test_not_an_archive(store: ImageStore, tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"hello")
    with pytest.raises(InvalidArgument, match="not an OCI layout or a docker-archive"):
        load(store, tmp_path / "junk")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match=r"no index\.json"):
        load(store, tmp_path / "empty")
    with pytest.raises(NotFound):
        load(store, tmp_path / "absent")


def test_save_then_load_round_trip(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "a", small_layers(), ref="localhost/a:1")
    write_layout(tmp_path / "b", [Layer().file("b", b"b")], ref="latest")
    (a,) = load(store, tmp_path / "a")
    (b,) = load(store, tmp_path / "b")
    out = tmp_path / "saved.tar"
    save(store, ["localhost/a:1", b.short_id], out)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"oci-layout", "index.json", f"blobs/sha256/{a.id[7:]}"} <= names
    other = ImageStore(tmp_path / "other", AMD64)
    loaded = load(other, out)
    assert [(i.id, i.references) for i in loaded] == [(a.id, a.references), (b.id, ())]


def test_saved_archive_is_readable_by_skopeo(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "a", small_layers(), ref="localhost/a:1")
    load(store, tmp_path / "a")
    save(store, ["localhost/a:1"], tmp_path / "saved.tar")
    skopeo(
        "copy", f"oci-archive:{tmp_path / 'saved.tar'}:localhost/a:1", f"oci:{tmp_path / 'out'}:x"
    )
    assert (tmp_path / "out" / "index.json").is_file()


def test_save_unknown_image(store: ImageStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        save(store, ["nothing"], tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()
    assert list(tmp_path.glob(".x.tar*")) == []
