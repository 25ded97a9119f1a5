"""What cocoon holds on the host's disk, in dockerd's terms: ``GET /system/df``
and the sizes ``GET /containers/json?size=1`` adds.

A container's own bytes (dockerd's ``SizeRw``) are the blocks its
copy-on-write disk holds over its image's; ``SizeRootFs`` adds the image's
bytes as stored (layers as distributed, what ``docker images`` shows). A
volume's are the blocks of its disk image or folder. Every figure is
counted, none estimated.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from cocoon.container import manager
from cocoon.container.record import Record, folder
from cocoon.diskuse import allocated
from cocoon.image.model import Image
from cocoon.image.store import ImageStore
from cocoon.service import images, volumes
from cocoon.service.http import Request


def container_bytes(rec: Record) -> int:
    from cocoon.container.boot import DISK

    return allocated(folder(rec.id) / DISK)


def image_bytes(found: list[Image]) -> dict[str, int]:
    return {image.id: image.size for image in found}


def with_sizes(summary: dict[str, Any], rec: Record, image_sizes: dict[str, int]) -> dict[str, Any]:
    own = container_bytes(rec)
    return {**summary, "SizeRw": own, "SizeRootFs": own + image_sizes.get(rec.image_id, 0)}


def df(req: Request) -> dict[str, Any]:
    from cocoon.client.volumes import VolumeCollection
    from cocoon.service.containers import summary

    found = ImageStore().images()
    records = manager.containers(all=True)
    users = Counter(r.image_id for r in records)
    blobs: dict[str, int] = {}
    holders: Counter[str] = Counter()
    for image in found:
        for blob in (image.manifest.config, *image.layers):
            blobs[blob.digest] = blob.size
            holders[blob.digest] += 1
    image_rows = [
        {**images.summary(image), "Containers": users[image.id],
         "SharedSize": sum(b.size for b in image.layers if holders[b.digest] > 1)}
        for image in found
    ]  # fmt: skip
    sizes = image_bytes(found)
    collection = VolumeCollection()
    volume_rows = []
    for volume in collection.list():
        row = volumes.view(volume, collection)
        row["UsageData"]["Size"] = allocated(collection.store.get(volume.name).path)
        volume_rows.append(row)
    return {
        "LayersSize": sum(blobs.values()),
        "Images": image_rows,
        "Containers": [with_sizes(summary(r), r, sizes) for r in records],
        "Volumes": volume_rows,
        "BuildCache": [],
    }


__all__ = ["container_bytes", "df", "image_bytes", "with_sizes"]
