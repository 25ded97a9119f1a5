"""A built stage becomes an OCI image in the store: config, manifest, tags.

The base image's layers (as stored, compressed as pulled) come first, then
the build's; ``rootfs.diff_ids`` and ``history`` follow the same order
(``empty_layer`` on the entries of instructions that only change the
config, as docker build writes them). Layers from the guest are hostile:
the image is checked by the rules every loaded image passes before it is
tagged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from cocoon.build.layers import Layer
from cocoon.image.model import OCI_CONFIG, OCI_MANIFEST, Image, Manifest, Platform, dumps
from cocoon.image.store import ImageStore
from cocoon.stamps import rfc3339


def assemble(
    store: ImageStore,
    base: Image | None,
    base_doc: Mapping[str, Any],
    layers: Sequence[Layer],
    history: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any],
    tags: Sequence[str],
) -> Image:
    """Store the image and tag it with each of ``tags`` (kept by id without any)."""
    from cocoon.rootfs.layers import check_image  # the rules of unpacking live there

    platform = Platform.host()
    base_rootfs = base_doc.get("rootfs") or {}
    doc = {
        "created": rfc3339(time.time()),
        "architecture": platform.architecture,
        "os": platform.os,
        "config": dict(config),
        "rootfs": {
            "type": "layers",
            "diff_ids": [*(base_rootfs.get("diff_ids") or []), *(x.diff_id for x in layers)],
        },
        "history": [*(base_doc.get("history") or []), *history],
    }
    config_desc = store.put_bytes(dumps(doc), OCI_CONFIG)
    base_layers = base.layers if base is not None else ()
    made = tuple(x.descriptor() for x in layers)
    manifest = Manifest(OCI_MANIFEST, config_desc, (*base_layers, *made))
    stored = store.put_bytes(dumps(manifest.to_json()), OCI_MANIFEST)
    check_image(store, store.image(stored.digest))
    for tag in tags:
        store.tag(tag, stored)
    if not tags:
        store.keep(stored)
    return store.image(stored.digest)


__all__ = ["assemble"]
