"""OCI and Docker schema 2 image documents, as the parts a runtime needs.

Parsing is strict about structure (a manifest without a config is corrupt)
and lenient about what a runtime ignores (unknown fields, annotations).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cocoon.errors import Corrupt, Unsupported
from cocoon.image import digest as digests

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"

_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


def loads(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise Corrupt(f"{what} is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise Corrupt(f"{what} is not a JSON object")
    return doc


def dumps(doc: Mapping[str, Any]) -> bytes:
    """Canonical bytes, so a document written twice has the same digest."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Platform:
    """An OCI platform: os, architecture and variant."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def host(cls) -> Platform:
        machine = os.uname().machine  # what platform.machine() says, without importing it
        return cls("linux", _ARCHITECTURES.get(machine, machine))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Platform:
        return cls(str(doc.get("os", "")), str(doc.get("architecture", "")), doc.get("variant"))

    def to_json(self) -> dict[str, str]:
        doc = {"os": self.os, "architecture": self.architecture}
        return doc | ({"variant": self.variant} if self.variant else {})

    def __str__(self) -> str:
        return "/".join(filter(None, (self.os, self.architecture, self.variant)))


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI descriptor: a blob by media type, digest and size."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    @classmethod
    def from_json(cls, doc: Any, what: str) -> Descriptor:
        try:
            size = doc["size"]
            if not isinstance(size, int) or size < 0:
                raise TypeError("size")
            annotations = doc.get("annotations") or {}
            platform = doc.get("platform")
            return cls(
                media_type=str(doc.get("mediaType", "")),
                digest=digests.check(doc["digest"]),
                size=size,
                annotations={str(k): str(v) for k, v in annotations.items()},
                platform=Platform.from_json(platform) if platform else None,
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise Corrupt(f"{what}: malformed descriptor ({e})") from e

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        if self.platform:
            doc["platform"] = self.platform.to_json()
        return doc


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest: its config blob and its layers, bottom first."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes, what: str) -> Manifest:
        doc = loads(data, what)
        media_type = doc.get("mediaType") or OCI_MANIFEST
        if media_type not in MANIFEST_TYPES or "config" not in doc:
            raise Corrupt(f"{what} is not an image manifest (media type {media_type})")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise Corrupt(f"{what}: layers is not a list")
        return cls(
            media_type=media_type,
            config=Descriptor.from_json(doc["config"], what),
            layers=tuple(Descriptor.from_json(layer, what) for layer in layers),
            annotations=doc.get("annotations") or {},
        )

    def to_json(self) -> dict[str, Any]:
        doc = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        return doc | ({"annotations": dict(self.annotations)} if self.annotations else {})


@dataclass(frozen=True, slots=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]

    @classmethod
    def parse(cls, data: bytes, what: str) -> Index:
        doc = loads(data, what)
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise Corrupt(f"{what} is not an image index")
        return cls(
            media_type=doc.get("mediaType") or OCI_INDEX,
            manifests=tuple(Descriptor.from_json(m, what) for m in manifests),
        )

    def select(self, want: Platform, what: str) -> Descriptor:
        """The manifest for ``want``; an entry without a platform fits only if it is alone."""
        if len(self.manifests) == 1 and self.manifests[0].platform is None:
            return self.manifests[0]
        fits = [
            m
            for m in self.manifests
            if m.platform
            and (m.platform.os, m.platform.architecture) == (want.os, want.architecture)
        ]
        exact = [m for m in fits if m.platform and m.platform.variant == want.variant]
        if not fits:
            offered = ", ".join(sorted({str(m.platform) for m in self.manifests if m.platform}))
            raise Unsupported(f"{what} has no image for {want} (it offers: {offered or 'none'})")
        return (exact or fits)[0]


def is_index(media_type: str, data: bytes) -> bool:
    """Whether a document is an index, trusting its media type, else its shape."""
    if media_type in INDEX_TYPES:
        return True
    if media_type in MANIFEST_TYPES:
        return False
    doc = loads(data, "manifest")
    return doc.get("mediaType") in INDEX_TYPES or "manifests" in doc


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):  # Docker reads a lone string as a one-element list
        return (value,)
    return tuple(str(v) for v in value)


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What a runtime needs from an image's config blob."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    exposed_ports: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str | None = None
    architecture: str = ""
    os: str = ""
    variant: str | None = None
    diff_ids: tuple[str, ...] = ()
    created: str | None = None
    healthcheck: Mapping[str, Any] | None = None  # HEALTHCHECK, unchecked: see container/health

    @classmethod
    def parse(cls, data: bytes, what: str) -> ImageConfig:
        doc = loads(data, what)
        run = doc.get("config") or {}
        rootfs = doc.get("rootfs") or {}
        try:
            return cls(
                entrypoint=_strings(run.get("Entrypoint")),
                cmd=_strings(run.get("Cmd")),
                env=tuple(run.get("Env") or ()),
                working_dir=run.get("WorkingDir") or None,
                user=run.get("User") or None,
                exposed_ports=tuple(sorted(run.get("ExposedPorts") or {})),
                labels=dict(run.get("Labels") or {}),
                stop_signal=run.get("StopSignal") or None,
                architecture=str(doc.get("architecture", "")),
                os=str(doc.get("os", "")),
                variant=doc.get("variant"),
                diff_ids=tuple(digests.check(d) for d in rootfs.get("diff_ids") or ()),
                created=doc.get("created"),
                healthcheck=_mapping(run.get("Healthcheck")),
            )
        except (TypeError, ValueError, AttributeError) as e:
            raise Corrupt(f"{what}: malformed image config ({e})") from e


@dataclass(frozen=True, slots=True)
class Image:
    """One runnable image: what is tagged, its manifest and its config."""

    references: tuple[str, ...]
    digest: str  # what the references point at: a manifest, or an index holding it
    manifest_digest: str
    manifest: Manifest
    config: ImageConfig

    @property
    def id(self) -> str:
        """Docker's image id: the digest of the config blob."""
        return self.manifest.config.digest

    @property
    def short_id(self) -> str:
        return self.id.partition(":")[2][:12]

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.manifest.layers

    @property
    def size(self) -> int:
        """Bytes stored: config plus layers as distributed (usually compressed)."""
        return self.manifest.config.size + sum(layer.size for layer in self.layers)


__all__ = [
    "Descriptor",
    "Image",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "dumps",
    "is_index",
    "loads",
]
