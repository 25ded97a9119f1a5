"""The build cache: which layer a filesystem step made, by what it depended on.

A step's key chains the key of everything before it in its stage (the base
image's id, each earlier instruction) with its own instruction text, the
build arguments in scope and, for COPY/ADD, the content hash of what it
copies. The entry names a layer blob in the image store; an entry whose
blob has since been collected is a miss. Entries live beside the store
(``<state>/build-cache``), since they only mean something with its blobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cocoon import paths
from cocoon.builder.layers import Layer
from cocoon.files import write_atomic
from cocoon.image.store import ImageStore


def chain(parent: str, *parts: object) -> str:
    """The key of a step from its parent's and its own parts (JSON-able)."""
    doc = json.dumps([parent, *parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    layer: Layer
    created: str  # RFC 3339, when its step ran


@dataclass(frozen=True, slots=True)
class Cleared:
    keys: list[str]
    reclaimed: int  # bytes of layer blobs freed


class LayerCache:
    def __init__(self, store: ImageStore, root: Path | None = None) -> None:
        self.store = store
        self.root = root or paths.state_dir() / "build-cache"

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> tuple[Layer, str] | None:
        """The layer of ``key`` and when it was made (its history's ``created``)."""
        try:
            doc = json.loads(self._path(key).read_bytes())
            layer, created = Layer.from_json(doc), str(doc["created"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, or damaged: built again
        return (layer, created) if self.store.has_blob(layer.digest) else None

    def put(self, key: str, layer: Layer, created: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self._path(key), json.dumps({**layer.to_json(), "created": created}).encode())

    def entries(self) -> list[Entry]:
        """Every entry whose layer is still stored, oldest first."""
        found = []
        for path in self.root.glob("*.json"):
            hit = self.get(path.stem)
            if hit is not None:
                found.append(Entry(path.stem, *hit))
        return sorted(found, key=lambda e: e.created)

    def clear(self, *, everything: bool = False) -> Cleared:
        """Docker's ``builder prune``: the entries whose layer no stored image holds (with
        ``everything``, all of them), then the blobs nothing else reaches any more."""
        held = {layer.digest for image in self.store.images() for layer in image.layers}
        doomed = [e for e in self.entries() if everything or e.layer.digest not in held]
        self._remove(e.key for e in doomed)
        self.prune()
        # A build writing blobs now holds them: they go with a later collection.
        gone = set(self.store.gc()) if doomed else set()
        sizes = {e.layer.digest: e.layer.size for e in doomed if e.layer.digest in gone}
        return Cleared([e.key for e in doomed], sum(sizes.values()))

    def _remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()

    def prune(self) -> int:
        """Drop entries whose blob is gone; the count removed."""
        removed = 0
        for entry in self.root.glob("*.json"):
            if self.get(entry.stem) is None:
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed += 1
        return removed


__all__ = ["Cleared", "Entry", "LayerCache", "chain"]
