"""``GET /system/df`` and ``POST /build/prune``: ``cocoon.system``'s counts in dockerd's
shape (what each size means is written there)."""

from __future__ import annotations

from typing import Any

from cocoon.service import images, params, volumes
from cocoon.service.containers import summary
from cocoon.service.http import Request


def df(req: Request) -> dict[str, Any]:
    from cocoon.client.volumes import Volume, VolumeCollection
    from cocoon.system import disk_usage

    use = disk_usage()
    collection = VolumeCollection()
    volume_rows = []
    for v in use.volumes:
        row = volumes.view(Volume(v.volume.to_json(), collection.store), collection)
        row["UsageData"] = {"Size": v.size, "RefCount": v.users}
        volume_rows.append(row)
    return {
        # The docker CLI's Images total; images are counted whole, nothing shared.
        "LayersSize": sum(i.size for i in use.images),
        "Images": [
            {**images.summary(i.image, i.size), "Containers": i.containers, "SharedSize": 0}
            for i in use.images
        ],
        "Containers": [
            {**summary(c.record), "SizeRw": c.size, "SizeRootFs": c.root_size}
            for c in use.containers
        ],
        "Volumes": volume_rows,
        "BuildCache": [
            {
                "ID": c.entry.key[:25],
                "Parent": "",
                "Type": "regular",
                "Description": f"layer {c.entry.layer.digest}",
                "InUse": False,
                "Shared": c.shared,
                "Size": c.entry.layer.size,
                "CreatedAt": c.entry.created,
                "LastUsedAt": None,
                "UsageCount": 0,
            }
            for c in use.build_cache
        ],
    }


def build_prune(req: Request) -> dict[str, Any]:
    """``docker builder prune [-a]``: the cache no image holds, or all of it."""
    from cocoon.builder.cache import LayerCache
    from cocoon.errors import Unsupported
    from cocoon.image.store import ImageStore

    if params.filters(req.arg("filters")) or req.arg("keep-storage") not in (None, "", "0"):
        raise Unsupported("cocoon's builder prune takes no filters and no keep-storage")
    cleared = LayerCache(ImageStore()).clear(everything=req.flag("all"))
    return {"CachesDeleted": [k[:25] for k in cleared.keys], "SpaceReclaimed": cleared.reclaimed}


__all__ = ["build_prune", "df"]
