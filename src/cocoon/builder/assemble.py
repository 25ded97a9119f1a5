"""A built stage becomes an OCI image in the store: config, manifest, tags.

The base image's layers (as stored, compressed as pulled) come first, then
the build's; ``rootfs.diff_ids`` and ``history`` follow the same order
(``empty_layer`` on the entries of instructions that only change the
config, as docker build writes them). Layers from the guest are hostile:
before the image is tagged, they are checked by the rules every loaded
image's layers pass (names, links, whiteouts), on their own: the base was
checked when it was stored, and what a layer does to the base's files (a
write through its symlink) is refused when the image's disk is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cocoon.image.digest import of_bytes
from cocoon.image.model import OCI_CONFIG, OCI_MANIFEST, Image, Manifest, Platform, dumps
from cocoon.image.store import ImageStore

if TYPE_CHECKING:
    from cocoon.builder.layers import Layer

EPOCH = "1970-01-01T00:00:00Z"


@dataclass(slots=True)
class StageResult:
    """A stage's outcome: its base image, the layers and history made on top, its config."""

    base: Image | None
    base_doc: dict[str, Any]
    layers: list[Layer]
    history: list[dict[str, Any]]
    config: dict[str, Any]
    key: str  # the cache chain at the stage's end
    # When the last step was made: a cached step keeps its time, so a build
    # that is all cache hits makes the very same image (same id).
    created: str = EPOCH
    author: str | None = None  # MAINTAINER

    def copy(self) -> StageResult:
        return StageResult(
            self.base,
            self.base_doc,
            list(self.layers),
            [dict(h) for h in self.history],
            dict(self.config),
            self.key,
            self.created,
            self.author,
        )


def assemble(
    store: ImageStore, result: StageResult, config: Mapping[str, Any], tags: Sequence[str]
) -> Image:
    """Store the stage's image and tag it with each of ``tags`` (kept by id without any).

    Its ``created`` is its last step's, so the same steps make the same image.
    """
    from cocoon.rootfs.layers import Tree, check_layer  # the rules of unpacking live there

    base, base_doc, layers, history = result.base, result.base_doc, result.layers, result.history
    platform = Platform.host()
    base_rootfs = base_doc.get("rootfs") or {}
    doc = {
        "created": result.created,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": dict(config),
        "rootfs": {
            "type": "layers",
            "diff_ids": [*(base_rootfs.get("diff_ids") or []), *(x.diff_id for x in layers)],
        },
        "history": [*(base_doc.get("history") or []), *history],
    }
    author = result.author or base_doc.get("author")
    if author:
        doc["author"] = author
    config_desc = store.put_bytes(dumps(doc), OCI_CONFIG)
    base_layers = base.layers if base is not None else ()
    made = tuple(x.descriptor() for x in layers)
    manifest = Manifest(OCI_MANIFEST, config_desc, (*base_layers, *made))
    data = dumps(manifest.to_json())
    known = store.has_blob(of_bytes(data))  # built before: checked then
    stored = store.put_bytes(data, OCI_MANIFEST)
    if not known:
        tree = Tree()
        for layer in layers:
            with store.open_blob(layer.digest) as blob:
                check_layer(blob, tree, digest=layer.digest, diff_id=layer.diff_id)
    for tag in tags:
        store.tag(tag, stored)
    if not tags:
        store.keep(stored)
    return store.image(stored.digest)


__all__ = ["assemble"]
