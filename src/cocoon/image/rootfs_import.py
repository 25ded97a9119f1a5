"""``cocoon image import``: a root filesystem tar (``cocoon export``'s) becomes a one-layer image.

The tar is stored as it comes (plain or gzip) as the image's only layer; its
config names the host's platform and nothing else, as ``docker import``'s
does. The layer is then checked by the same rules as any loaded image's, so
a hostile tar is refused before it is tagged.
"""

from __future__ import annotations

import gzip
import time

from cocoon.errors import Corrupt
from cocoon.image.digest import CHUNK, HashingReader, Readable
from cocoon.image.model import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Image,
    Manifest,
    Platform,
    dumps,
)
from cocoon.image.store import ImageStore
from cocoon.stamps import rfc3339

_GZIP = b"\x1f\x8b"


def import_rootfs(store: ImageStore, source: Readable, reference: str | None = None) -> Image:
    """Store the tar read from ``source`` as a new image; tag it ``reference`` if given."""
    from cocoon.rootfs.layers import check_image  # the rules of unpacking live there

    with store.transaction():
        blob = store.put_blob(source)
        with store.open_blob(blob.digest) as f:
            compressed = f.read(2) == _GZIP
        diff_id = _diff_id(store, blob.digest) if compressed else blob.digest
        layer = Descriptor(OCI_LAYER_GZIP if compressed else OCI_LAYER, blob.digest, blob.size)
        platform = Platform.host()
        config = {
            "created": rfc3339(time.time()),
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": rfc3339(time.time()), "created_by": "cocoon image import"}],
        }
        config_desc = store.put_bytes(dumps(config), OCI_CONFIG)
        manifest = Manifest(OCI_MANIFEST, config_desc, (layer,))
        stored = store.put_bytes(dumps(manifest.to_json()), OCI_MANIFEST)
        check_image(store, store.image(stored.digest))
        if reference:
            store.tag(reference, stored)
        else:
            store.keep(stored)
    return store.image(stored.digest)


def _diff_id(store: ImageStore, digest: str) -> str:
    """The digest of a gzip layer's uncompressed tar."""
    try:
        with store.open_blob(digest) as f, gzip.GzipFile(fileobj=f) as plain:
            reader = HashingReader(plain)
            while reader.read(CHUNK):
                pass
    except (OSError, EOFError) as e:
        raise Corrupt(f"the imported archive is not a valid gzip: {e}") from e
    return reader.digest


__all__ = ["import_rootfs"]
