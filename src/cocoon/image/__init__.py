"""OCI images on the host: the content store, image documents, archives.

store    content-addressed blobs in an OCI layout; tags; resolve; gc
model    manifests, indexes, configs (OCI and Docker schema 2)
archive  load OCI layouts and docker-archives; save OCI layout tars
digest   sha256 validation and hashing
"""

from __future__ import annotations

from cocoon.image.archive import load, save
from cocoon.image.model import Descriptor, Image, ImageConfig, Manifest, Platform
from cocoon.image.store import ImageStore, Removed

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
