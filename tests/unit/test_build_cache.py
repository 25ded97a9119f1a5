"""The build cache and layer storage, without a VM: keys, hits, misses, diff_ids."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

from cocoon.builder.cache import LayerCache, chain
from cocoon.builder.layers import copy_tar, store_layer
from cocoon.image.store import ImageStore


def a_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/motd")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


def test_keys_chain_every_part():
    base = chain("sha256:base", "RUN a", ())
    assert base == chain("sha256:base", "RUN a", ())
    assert base != chain("sha256:other", "RUN a", ())
    assert base != chain("sha256:base", "RUN b", ())
    assert base != chain("sha256:base", "RUN a", (("V", "1"),))
    assert chain(base, "COPY . /", (), "h1") != chain(base, "COPY . /", (), "h2")


def test_a_stored_layer_has_its_tar_s_diff_id_and_reads_back(tmp_path):
    store = ImageStore(tmp_path / "store")
    data = a_tar()
    layer = store_layer(store, lambda sink: [sink(data[:700]), sink(data[700:])])
    assert layer.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert gzip.decompress(store.read_blob(layer.digest)) == data
    out = io.BytesIO()
    copy_tar(store, layer.descriptor(), out)
    assert out.getvalue() == data
    # The same tar makes the same blob: gzip's header carries no time.
    assert store_layer(store, lambda sink: sink(data)) == layer


def test_cache_hits_until_the_blob_is_gone(tmp_path):
    store = ImageStore(tmp_path / "store")
    cache = LayerCache(store, tmp_path / "cache")
    assert cache.get("k") is None
    layer = store_layer(store, lambda sink: sink(a_tar()))
    cache.put("k", layer, "2026-01-01T00:00:00Z")
    assert cache.get("k") == (layer, "2026-01-01T00:00:00Z")
    store.blob_path(layer.digest).unlink()
    assert cache.get("k") is None
    assert cache.prune() == 1


def test_a_damaged_entry_is_a_miss(tmp_path):
    cache = LayerCache(ImageStore(tmp_path / "store"), tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "k.json").write_text("{not json")
    assert cache.get("k") is None


def test_clear_takes_the_entries_no_image_holds_and_frees_their_blobs(tmp_path):
    store = ImageStore(tmp_path / "store")
    cache = LayerCache(store, tmp_path / "cache")
    layer = store_layer(store, lambda sink: sink(a_tar()))
    cache.put("k", layer, "2026-01-01T00:00:00Z")
    assert [e.key for e in cache.entries()] == ["k"]
    cleared = cache.clear()
    assert cleared.keys == ["k"] and cleared.reclaimed == layer.size
    assert cache.entries() == [] and not store.has_blob(layer.digest)
    assert cache.clear(everything=True).keys == []
