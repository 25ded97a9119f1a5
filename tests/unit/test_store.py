"""The content-addressed image store: blobs, tags, resolution, gc, atomicity."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from cocoon.errors import Corrupt, InvalidArgument, InvalidState, NotFound
from cocoon.image.model import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Descriptor, dumps
from cocoon.image.store import ImageStore


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(store: ImageStore, label: str, layers: list[bytes] | None = None) -> Descriptor:
    """Store a small image straight through the blob API; return its manifest."""
    layers = [f"layer of {label}".encode()] if layers is None else layers
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"], "Labels": {"label": label}},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
    }
    config_desc = store.put_bytes(dumps(config), OCI_CONFIG)
    layer_descs = [store.put_bytes(layer, OCI_LAYER).to_json() for layer in layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.to_json(),
        "layers": layer_descs,
    }
    return store.put_bytes(dumps(manifest), OCI_MANIFEST)


def blobs(store: ImageStore) -> set[str]:
    return {f"sha256:{p.name}" for p in (store.root / "blobs" / "sha256").iterdir()}


def test_put_blob_streams_verifies_and_stores_read_only(store: ImageStore) -> None:
    data = os.urandom(3 << 20)
    desc = store.put_blob(io.BytesIO(data), sha(data), size=len(data), media_type=OCI_LAYER)
    assert desc == Descriptor(OCI_LAYER, sha(data), len(data))
    assert store.has_blob(desc.digest)
    assert store.blob_path(desc.digest).read_bytes() == data
    # Blobs hold what archives and registries sent, secrets included: the owner's only.
    assert store.blob_path(desc.digest).stat().st_mode & 0o777 == 0o400
    assert store.root.stat().st_mode & 0o777 == 0o700
    with store.open_blob(desc.digest) as f:
        assert f.read() == data
    assert (store.root / "oci-layout").is_file()


def test_put_blob_without_digest_computes_it(store: ImageStore, tmp_path: Path) -> None:
    source = tmp_path / "file"
    source.write_bytes(b"hello")
    assert store.put_blob(source).digest == sha(b"hello")


def test_digest_mismatch_leaves_nothing_behind(store: ImageStore) -> None:
    wrong = sha(b"something else")
    with pytest.raises(Corrupt, match="does not match its digest"):
        store.put_blob(io.BytesIO(b"payload"), wrong)
    assert not store.has_blob(wrong)
    assert blobs(store) == set()
    assert list((store.root / ".ingest").iterdir()) == []


def test_size_mismatch_is_corrupt_and_stops_reading(store: ImageStore) -> None:
    endless = io.BytesIO(b"x" * (5 << 20))
    with pytest.raises(Corrupt, match="expected 10 bytes, got more"):
        store.put_blob(endless, size=10)
    assert endless.tell() < (2 << 20)
    assert blobs(store) == set()


def test_existing_blob_is_not_read_again(store: ImageStore) -> None:
    store.put_bytes(b"data")

    class Unreadable(io.RawIOBase):
        def read(self, n: int = -1) -> bytes:
            raise AssertionError("read an existing blob again")

    assert store.put_blob(Unreadable(), sha(b"data")).size == 4  # type: ignore[arg-type]


def test_missing_blob_is_not_found(store: ImageStore) -> None:
    with pytest.raises(NotFound, match="not in the image store"):
        store.open_blob(sha(b"nothing"))


def test_tag_and_resolve_by_name_id_and_prefix(store: ImageStore) -> None:
    manifest = make_image(store, "one")
    assert store.tag("busybox", manifest) == "docker.io/library/busybox:latest"
    image = store.resolve("busybox")
    assert image.references == ("docker.io/library/busybox:latest",)
    assert image.digest == image.manifest_digest == manifest.digest
    assert image.config.labels == {"label": "one"}
    assert image.config.cmd == ("sh",)
    for text in (
        "docker.io/library/busybox:latest",
        "busybox:latest",
        image.id,
        image.id.removeprefix("sha256:"),
        image.short_id,
        image.short_id[:4],
        "sha256:" + image.short_id,
        f"busybox@{manifest.digest}",
    ):
        assert store.resolve(text).id == image.id, text


def test_resolve_not_found_and_malformed(store: ImageStore) -> None:
    store.tag("busybox", make_image(store, "one"))
    with pytest.raises(NotFound, match="image 'alpine' not found"):
        store.resolve("alpine")
    with pytest.raises(NotFound):
        store.resolve("sha256:" + "0" * 64)
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        store.resolve("Alpine")


def test_resolve_ambiguous_id_prefix(store: ImageStore) -> None:
    by_first_char: dict[str, str] = {}
    for i in range(200):
        manifest = make_image(store, f"image {i}")
        store.tag(f"app:{i}", manifest)
        image_id = store.resolve(f"app:{i}").id
        first = image_id.removeprefix("sha256:")[0]
        if first in by_first_char:
            break
        by_first_char[first] = image_id
    with pytest.raises(InvalidArgument, match="ambiguous"):
        store.resolve(first)


def test_one_id_stored_as_several_variants_is_not_picked_silently(store: ImageStore) -> None:
    # The same config under two manifests (say, gzip and zstd layers): one image id.
    plain = make_image(store, "same")
    config = json.loads(store.read_blob(plain.digest))
    layer = store.put_bytes(b"the same layer, compressed differently", "x+zstd")
    other = store.put_bytes(dumps({**config, "layers": [layer.to_json()]}), OCI_MANIFEST)
    store.tag("localhost/app:gzip", plain)
    store.tag("localhost/app:zstd", other)
    image_id = store.resolve("localhost/app:gzip").id
    assert store.resolve("localhost/app:zstd").id == image_id
    for text in (image_id, image_id.removeprefix("sha256:")[:12]):
        with pytest.raises(InvalidArgument, match=r"2 variants.*app:gzip.*app:zstd"):
            store.resolve(text)
    # A manifest digest names one of them exactly.
    assert store.resolve(other.digest).references == ("localhost/app:zstd",)


def test_empty_store_lists_nothing(store: ImageStore) -> None:
    assert store.images() == []
    assert store.gc() == []
    with pytest.raises(NotFound):
        store.resolve("busybox")


def test_images_group_tags(store: ImageStore) -> None:
    one, two = make_image(store, "one"), make_image(store, "two")
    store.tag("a", one)
    store.tag("b:1", one)
    store.tag("c", two)
    images = {i.config.labels["label"]: i for i in store.images()}
    assert images["one"].references == ("docker.io/library/a:latest", "docker.io/library/b:1")
    assert images["two"].references == ("docker.io/library/c:latest",)
    index = json.loads((store.root / "index.json").read_text())
    names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert sorted(names) == sorted([*images["one"].references, *images["two"].references])


def test_tag_needs_a_stored_manifest(store: ImageStore) -> None:
    ghost = Descriptor(OCI_MANIFEST, sha(b"ghost"), 5)
    with pytest.raises(NotFound, match="not stored"):
        store.tag("ghost", ghost)


def test_retag_keeps_the_old_image_untagged(store: ImageStore) -> None:
    one, two = make_image(store, "one"), make_image(store, "two")
    store.tag("app", one)
    old_id = store.resolve("app").id
    store.tag("app", two)
    assert store.resolve("app").config.labels == {"label": "two"}
    old = store.resolve(old_id)
    assert old.references == ()
    assert store.gc() == []
    store.tag("again", one)  # tagging an untagged image replaces its untagged entry
    assert len(store.entries()) == 2


def test_untag_then_gc_deletes_only_unreachable_blobs(store: ImageStore) -> None:
    shared = b"shared layer"
    one = make_image(store, "one", [shared, b"only one"])
    two = make_image(store, "two", [shared])
    store.tag("one", one)
    store.tag("two", two)
    one_id = store.resolve("one").id
    before = blobs(store)
    assert store.untag("one") == one.digest
    deleted = set(store.gc())
    assert deleted == {one.digest, one_id, sha(b"only one")}
    assert blobs(store) == before - deleted
    assert store.resolve("two").layers[0].digest == sha(shared)
    with pytest.raises(NotFound, match="no such image tag"):
        store.untag("one")


def test_gc_waits_for_writers(store: ImageStore) -> None:
    store.tag("keep", make_image(store, "keep"))
    with store.ingest():
        pending = store.put_bytes(b"not tagged yet")
        assert store.gc() == []
    assert store.gc() == [pending.digest]


def test_failed_transaction_collects_what_it_stored(store: ImageStore) -> None:
    store.tag("keep", make_image(store, "keep"))
    kept = blobs(store)
    with pytest.raises(Corrupt), store.transaction():
        store.put_bytes(b"stored, then the load fails")
        raise Corrupt("the archive turned out bad")
    assert blobs(store) == kept


def test_failed_transaction_that_stored_nothing_does_not_wait(store: ImageStore) -> None:
    outcome: list[str] = []

    def fail_early() -> None:
        try:
            with store.transaction():
                raise InvalidArgument("not an archive")
        except InvalidArgument:
            outcome.append("failed")

    with store.ingest():  # another writer, mid-pull: a collection would wait for it
        worker = threading.Thread(target=fail_early)
        worker.start()
        worker.join(60)  # a deadlock detector, not a timing: it returns at once
        assert outcome == ["failed"]


def test_remove_by_tag_then_last_tag_deletes(store: ImageStore) -> None:
    manifest = make_image(store, "one")
    store.tag("a", manifest)
    store.tag("b", manifest)
    removed = store.remove("a")
    assert removed.untagged == ("docker.io/library/a:latest",)
    assert removed.deleted is None
    assert store.resolve("b").id
    image_id = store.resolve("b").id
    removed = store.remove("b")
    assert removed.deleted == image_id != manifest.digest  # docker rmi prints the image id
    assert store.images() == []
    assert blobs(store) == set()


def test_remove_by_id_needs_force_when_tagged_twice(store: ImageStore) -> None:
    manifest = make_image(store, "one")
    store.tag("a", manifest)
    store.tag("b", manifest)
    image_id = store.resolve("a").id
    with pytest.raises(InvalidState, match="tagged 2 times"):
        store.remove(image_id)
    removed = store.remove(image_id[:12], force=True)
    assert set(removed.untagged) == {"docker.io/library/a:latest", "docker.io/library/b:latest"}
    assert store.images() == []


def test_remove_untagged_image_by_id(store: ImageStore) -> None:
    manifest = make_image(store, "loose")
    store.keep(manifest)
    image = store.image(manifest.digest)
    assert store.resolve(image.short_id).references == ()
    assert store.remove(image.short_id).deleted == image.id
    assert blobs(store) == set()


def test_manifest_and_config_are_verified_when_read(store: ImageStore) -> None:
    manifest = make_image(store, "one")
    store.tag("app", manifest)
    config = store.resolve("app").id
    path = store.blob_path(config)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"one", b"two"))
    with pytest.raises(Corrupt, match=f"image config {config}: content does not match"):
        store.resolve("app")


def test_failed_index_write_leaves_the_old_index(
    store: ImageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.tag("first", make_image(store, "one"))
    before = (store.root / "index.json").read_bytes()
    second = make_image(store, "two")

    def crash(fd: int) -> None:
        raise OSError(5, "simulated crash")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.tag("second", second)
    monkeypatch.undo()
    assert (store.root / "index.json").read_bytes() == before
    assert sorted(p.name for p in store.root.iterdir() if p.name.startswith(".index.json")) == []


def _tag_many(root: str, worker: int) -> None:
    store = ImageStore(root)
    for i in range(15):
        store.tag(f"w{worker}:{i}", make_image(store, f"{worker}-{i}"))


def test_concurrent_taggers_lose_nothing(store: ImageStore) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_tag_many, args=(str(store.root), w)) for w in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    names = {n for image in store.images() for n in image.references}
    assert names == {f"docker.io/library/w{w}:{i}" for w in range(6) for i in range(15)}
