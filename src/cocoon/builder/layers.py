"""Layers a build makes: stored in the image store as gzip blobs, with their diff_ids.

The guest streams a step's layer as a plain tar; it is compressed on the way
into a temporary file while its digest (the diff_id) is taken, then stored
as a blob. gzip's header carries no time, so one tar always makes one blob.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from cocoon.image.model import OCI_LAYER_GZIP, Descriptor
from cocoon.image.store import ImageStore

Sink = Callable[[bytes], None]
COMPRESSION = 6  # gzip's default: what docker build writes
EMPTY_TAR = "sha256:" + hashlib.sha256(bytes(1024)).hexdigest()  # its end blocks alone


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str  # of the gzip blob
    diff_id: str  # of the tar inside
    size: int

    @property
    def empty(self) -> bool:
        """Whether the layer changes nothing (a tar of no entries)."""
        return self.diff_id == EMPTY_TAR

    def descriptor(self) -> Descriptor:
        return Descriptor(OCI_LAYER_GZIP, self.digest, self.size)

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "diff_id": self.diff_id, "size": self.size}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Layer:
        return cls(str(doc["digest"]), str(doc["diff_id"]), int(doc["size"]))


def store_layer(store: ImageStore, produce: Callable[[Sink], None]) -> Layer:
    """Store the tar that ``produce`` gives to its sink as a gzip layer blob."""
    tar_hash = hashlib.sha256()
    # Beside the blobs (one filesystem), and held from collection until tagged.
    with store.ingest(), tempfile.TemporaryFile(dir=store.root) as blob:
        with gzip.GzipFile(fileobj=blob, mode="wb", compresslevel=COMPRESSION, mtime=0) as gz:

            def sink(data: bytes) -> None:
                tar_hash.update(data)
                gz.write(data)

            produce(sink)
        blob.seek(0)
        desc = store.put_blob(blob, media_type=OCI_LAYER_GZIP)
    return Layer(desc.digest, f"sha256:{tar_hash.hexdigest()}", desc.size)


@contextmanager
def open_tar(store: ImageStore, layer: Descriptor) -> Iterator[IO[bytes]]:
    """A stored layer's tar, uncompressed (gzip or plain; what builds and pulls store)."""
    with store.open_blob(layer.digest) as raw:
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) as plain:
                yield plain  # type: ignore[misc]
        else:
            raw.seek(0)
            yield raw


def copy_tar(store: ImageStore, layer: Descriptor, out: IO[bytes]) -> None:
    with open_tar(store, layer) as tar:
        shutil.copyfileobj(tar, out, 1 << 16)


__all__ = ["Layer", "copy_tar", "open_tar", "store_layer"]
