"""``cocoon system df`` and ``system prune``: disk use of images, containers and volumes,
and removing what no container needs.

Sizes are bytes on the host's disk: an image's unpacked files (as ``image
ls`` shows them), a container's folder as allocated (its copy-on-write
disk and log; sparse files count what they hold), a volume's folder as
allocated. What is reclaimable is what ``system prune -a --volumes`` could
remove: images no container uses, containers not running, volumes no
container uses.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from cocoon.container import manager
from cocoon.container import record as records
from cocoon.container.state import State
from cocoon.diskuse import allocated
from cocoon.errors import CocoonError


@dataclass(frozen=True, slots=True)
class Usage:
    """One line of ``system df``."""

    type: str  # Images, Containers, Local Volumes
    total: int
    active: int
    size: int  # bytes
    reclaimable: int  # bytes

    def to_json(self) -> dict[str, object]:
        return {"Type": self.type, "TotalCount": self.total, "Active": self.active,
                "Size": self.size, "Reclaimable": self.reclaimable}  # fmt: skip


def disk_usage() -> list[Usage]:
    from cocoon.image.store import ImageStore
    from cocoon.rootfs.disks import image_size
    from cocoon.volume.store import VolumeStore

    recs = manager.containers(all=True)
    used_images = {r.image_id for r in recs}
    images = {i.id: image_size(i) for i in ImageStore().images()}
    sizes = {r.id: allocated(records.folder(r.id)) for r in recs}
    running = {r.id for r in recs if r.state == State.RUNNING}
    volumes = {v.name: (allocated(v.folder), bool(_live(v.users))) for v in VolumeStore().volumes()}
    return [
        Usage("Images", len(images), len(images.keys() & used_images), sum(images.values()),
              sum(s for i, s in images.items() if i not in used_images)),
        Usage("Containers", len(recs), len(running), sum(sizes.values()),
              sum(s for i, s in sizes.items() if i not in running)),
        Usage("Local Volumes", len(volumes), sum(a for _, a in volumes.values()),
              sum(s for s, _ in volumes.values()), sum(s for s, a in volumes.values() if not a)),
    ]  # fmt: skip


def _live(users: dict[str, str]) -> list[str]:
    return [i for i in users if records.exists(i)]


@dataclass(slots=True)
class Pruned:
    containers: list[str]
    networks: list[str]
    images: list[str]  # image ids (or manifest digests of untagged ones)
    volumes: list[str]
    reclaimed: int  # bytes


def prune(*, all_images: bool = False, volumes: bool = False) -> Pruned:
    """Remove stopped containers, networks without containers, untagged images (with
    ``all_images``: every image no container uses), and with ``volumes`` the
    anonymous volumes no container uses."""
    from cocoon.image.store import ImageStore
    from cocoon.volume.store import VolumeStore

    before = sum(u.size for u in disk_usage())
    containers = [r.id for r in manager.prune()]
    networks = _prune_networks()
    store = ImageStore()
    images, _ = store.prune()
    if all_images:
        used = {r.image_id for r in manager.containers(all=True)}
        for image in store.images():
            if image.id not in used:
                with contextlib.suppress(CocoonError):  # gone meanwhile, or in use now
                    images.append(store.remove(image.id, force=True).deleted or image.id)
    gone_volumes = []
    if volumes:
        gone_volumes = VolumeStore().prune(exists=records.exists)
    after = sum(u.size for u in disk_usage())
    return Pruned(containers, networks, list(dict.fromkeys(images)), gone_volumes,
                  max(0, before - after))  # fmt: skip


def _prune_networks() -> list[str]:
    """Networks but the default one whose every lease is of a container that is gone."""
    from cocoon.network import ipam

    gone = []
    for net in ipam.all_networks():
        if net.name == ipam.DEFAULT:
            continue
        if any(records.exists(lease["id"]) for lease in net.leases.values()):
            continue
        for lease in net.leases.values():
            ipam.release(lease["id"])
        with contextlib.suppress(CocoonError):
            ipam.remove(net.name)
            gone.append(net.name)
    return gone


__all__ = ["Pruned", "Usage", "disk_usage", "prune"]
