"""What ``COPY --from`` reads: an earlier stage's or another image's files, on the host.

The layers are unpacked into a temporary folder by the same checked
extractor that builds image disks, so a hostile layer cannot write outside
it; that folder then serves as a build context with nothing ignored.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cocoon.build.layers import Layer
from cocoon.image.model import Descriptor
from cocoon.image.store import ImageStore


class Trees:
    """The unpacked file trees of one build, made once each, removed by ``close``."""

    def __init__(self, store: ImageStore, where: Path) -> None:
        self.store = store
        self.where = where
        self._made: dict[str, Path] = {}

    def tree(self, key: str, layers: Sequence[tuple[Descriptor, str]]) -> Path:
        """The files of ``layers`` ((blob, diff_id) bottom first), unpacked under ``key``."""
        from cocoon.rootfs.layers import apply_layer

        if key in self._made:
            return self._made[key]
        self.where.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="from-", dir=self.where))
        self._made[key] = root
        for desc, diff_id in layers:
            with self.store.open_blob(desc.digest) as blob:
                apply_layer(blob, root, digest=desc.digest, diff_id=diff_id)
        return root

    def close(self) -> None:
        for root in self._made.values():
            shutil.rmtree(root, ignore_errors=True)
        self._made.clear()


def chain_of(base: Sequence[Descriptor], base_diff_ids: Sequence[str], made: Sequence[Layer]):
    """(blob, diff_id) of an image's layers then a build's, for ``Trees.tree``."""
    return [*zip(base, base_diff_ids, strict=True), *((x.descriptor(), x.diff_id) for x in made)]


__all__ = ["Trees", "chain_of"]
