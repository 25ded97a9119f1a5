"""OCI images on the host: the content store, image documents, archives.

store    content-addressed blobs in an OCI layout; tags; resolve; gc
model    manifests, indexes, configs (OCI and Docker schema 2)
archive  load OCI layouts and docker-archives; save OCI layout tars
digest   sha256 validation and hashing
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cocoon.image.archive import load, save
    from cocoon.image.model import Descriptor, Image, ImageConfig, Manifest, Platform
    from cocoon.image.store import ImageStore, Removed

# Imported on first use: `cocoon run` of a stored image never needs the
# archive code (tarfile and friends), and start-up time is benchmarked.
_LAZY = {
    "load": "cocoon.image.archive",
    "save": "cocoon.image.archive",
    "Descriptor": "cocoon.image.model",
    "Image": "cocoon.image.model",
    "ImageConfig": "cocoon.image.model",
    "Manifest": "cocoon.image.model",
    "Platform": "cocoon.image.model",
    "ImageStore": "cocoon.image.store",
    "Removed": "cocoon.image.store",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = [
    "Descriptor",
    "Image",
    "ImageConfig",
    "ImageStore",
    "Manifest",
    "Platform",
    "Removed",
    "load",
    "save",
]
