"""What cocoon holds on the host's disk, and removing what nothing needs: the one
source of ``cocoon system df``/``system prune``/``builder prune``, the API's
``/system/df``, ``/build/prune`` and ``/containers/json?size=1``, and the
client's ``df()``.

The sizes are what ``docker system df`` means by them:
- an image: its unpacked files, as ``image ls`` and ``docker images`` show
  them (Docker's are uncompressed too). An image made on another counts the
  other's files too, as Docker's virtual size does;
- a container: the blocks its copy-on-write disk holds over its image's
  (Docker's ``SizeRw``, the writable layer; the log is not counted, as
  Docker's is not); with its image's, its ``SizeRootFs``;
- a volume: the blocks its disk image or folder holds;
- a build cache entry: its layer blob as stored (gzip).
Reclaimable is what ``system prune -a --volumes`` could free: images no
container uses, containers not running, volumes no container uses, build
cache entries whose layer no image holds.

Above ``container`` and ``builder`` (it counts both); nothing in the library
below imports it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from cocoon.builder.cache import Entry, LayerCache
from cocoon.container import manager
from cocoon.container import record as records
from cocoon.container.record import Record
from cocoon.container.state import State
from cocoon.diskuse import allocated
from cocoon.errors import CocoonError
from cocoon.image.model import Image
from cocoon.image.store import ImageStore
from cocoon.volume.store import Volume


@dataclass(frozen=True, slots=True)
class Usage:
    """One line of ``system df``."""

    type: str  # Images, Containers, Local Volumes, Build Cache
    total: int
    active: int
    size: int  # bytes
    reclaimable: int  # bytes

    def to_json(self) -> dict[str, object]:
        return {"Type": self.type, "TotalCount": self.total, "Active": self.active,
                "Size": self.size, "Reclaimable": self.reclaimable}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ImageUse:
    image: Image
    size: int
    containers: int  # how many containers use it


@dataclass(frozen=True, slots=True)
class ContainerUse:
    record: Record
    size: int  # its own (SizeRw)
    root_size: int  # with its image's (SizeRootFs)


@dataclass(frozen=True, slots=True)
class VolumeUse:
    volume: Volume
    size: int
    users: int  # containers that still exist


@dataclass(frozen=True, slots=True)
class CacheUse:
    entry: Entry
    shared: bool  # a stored image holds its layer: pruning it frees nothing


@dataclass(frozen=True, slots=True)
class DiskUse:
    images: list[ImageUse]
    containers: list[ContainerUse]
    volumes: list[VolumeUse]
    build_cache: list[CacheUse]

    def summary(self) -> list[Usage]:
        images, containers, volumes, cache = (
            self.images, self.containers, self.volumes, self.build_cache
        )  # fmt: skip
        running = [c for c in containers if c.record.state == State.RUNNING]
        return [
            Usage("Images", len(images), sum(1 for i in images if i.containers),
                  sum(i.size for i in images), sum(i.size for i in images if not i.containers)),
            Usage("Containers", len(containers), len(running), sum(c.size for c in containers),
                  sum(c.size for c in containers if c.record.state != State.RUNNING)),
            Usage("Local Volumes", len(volumes), sum(1 for v in volumes if v.users),
                  sum(v.size for v in volumes), sum(v.size for v in volumes if not v.users)),
            Usage("Build Cache", len(cache), 0, sum(c.entry.layer.size for c in cache),
                  sum(c.entry.layer.size for c in cache if not c.shared)),
        ]  # fmt: skip


def image_sizes(images: list[Image]) -> dict[str, int]:
    """Image id -> unpacked bytes."""
    from cocoon.rootfs.disks import image_size

    return {i.id: image_size(i) for i in images}


def container_size(rec: Record, image_bytes: dict[str, int]) -> ContainerUse:
    """The container's own bytes, and with ``image_bytes`` (of ``image_sizes``) its image's."""
    from cocoon.container.boot import DISK

    own = allocated(records.folder(rec.id) / DISK)
    return ContainerUse(rec, own, own + image_bytes.get(rec.image_id, 0))


def disk_usage() -> DiskUse:
    from cocoon.volume.store import VolumeStore

    store = ImageStore()
    recs = manager.containers(all=True)
    images = store.images()
    sizes = image_sizes(images)
    users = {i.id: sum(1 for r in recs if r.image_id == i.id) for i in images}
    held = {layer.digest for i in images for layer in i.layers}
    volumes = [
        VolumeUse(v, allocated(v.path), sum(1 for i in v.users if records.exists(i)))
        for v in VolumeStore().volumes()
    ]
    return DiskUse(
        [ImageUse(i, sizes[i.id], users[i.id]) for i in images],
        [container_size(r, sizes) for r in recs],
        volumes,
        [CacheUse(e, e.layer.digest in held) for e in LayerCache(store).entries()],
    )


@dataclass(slots=True)
class Pruned:
    containers: list[str]
    networks: list[str]
    images: list[str]  # image ids (or manifest digests of untagged ones)
    volumes: list[str]
    build_cache: list[str]  # cache keys
    reclaimed: int  # bytes


def prune(*, all_images: bool = False, volumes: bool = False) -> Pruned:
    """``docker system prune``: stopped containers, networks without containers, untagged
    images (with ``all_images``: every image no container uses) and the build cache no
    image holds (with ``all_images``: all of it); with ``volumes`` the anonymous
    volumes no container uses."""
    from cocoon.network import teardown
    from cocoon.volume.store import VolumeStore

    def total() -> int:
        return sum(u.size for u in disk_usage().summary())

    before = total()
    containers = [r.id for r in manager.prune()]
    networks = teardown.prune(records.exists)
    store = ImageStore()
    images, _ = store.prune()
    if all_images:
        used = {r.image_id for r in manager.containers(all=True)}
        for image in store.images():
            if image.id not in used:
                with contextlib.suppress(CocoonError):  # gone meanwhile, or in use now
                    images.append(store.remove(image.id, force=True).deleted or image.id)
    cache = LayerCache(store).clear(everything=all_images).keys
    gone_volumes = VolumeStore().prune(exists=records.exists) if volumes else []
    return Pruned(containers, networks, list(dict.fromkeys(images)), gone_volumes, cache,
                  max(0, before - total()))  # fmt: skip


__all__ = [
    "CacheUse",
    "ContainerUse",
    "DiskUse",
    "ImageUse",
    "Pruned",
    "Usage",
    "VolumeUse",
    "container_size",
    "disk_usage",
    "image_sizes",
    "prune",
]
