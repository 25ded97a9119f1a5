"""``/volumes/...``: cocoon's named volumes in dockerd's terms.

Containers cannot mount them through the API yet (HostConfig.Binds and
Mounts answer 501): the volume wiring into containers is another branch.
"""

from __future__ import annotations

from typing import Any

from cocoon.client.volumes import Volume, VolumeCollection
from cocoon.errors import InvalidArgument, NotFound, Unsupported
from cocoon.service.http import Request
from cocoon.stamps import rfc3339


def view(volume: Volume, volumes: VolumeCollection) -> dict[str, Any]:
    attrs = volume.attrs
    options = {"type": attrs["driver"]}
    if attrs.get("size"):
        options["size"] = str(attrs["size"])
    return {
        "Name": volume.name,
        "Driver": "local",
        "Mountpoint": str(volumes.store.get(volume.name).path),
        "CreatedAt": rfc3339(attrs["created"]),
        "Labels": attrs.get("labels") or {},
        "Scope": "local",
        "Options": options,
        "UsageData": {"Size": -1, "RefCount": len(attrs.get("users") or {})},
    }


def _get(volumes: VolumeCollection, name: str) -> Volume:
    try:
        return volumes.get(name)
    except NotFound:
        raise NotFound(f"get {name}: no such volume") from None


def list_volumes(req: Request) -> dict[str, Any]:
    if req.arg("filters") not in (None, "", "{}"):
        raise Unsupported("cocoon does not serve volume list filters")
    volumes = VolumeCollection()
    return {"Volumes": [view(v, volumes) for v in volumes.list()], "Warnings": []}


def inspect(req: Request) -> dict[str, Any]:
    volumes = VolumeCollection()
    return view(_get(volumes, req.match["name"]), volumes)


def create(req: Request) -> dict[str, Any]:
    body = req.json_object()
    if (body.get("Driver") or "local") != "local":
        raise Unsupported(f"cocoon does not serve volume driver {body['Driver']!r}")
    options, labels = body.get("DriverOpts") or {}, body.get("Labels") or {}
    if not isinstance(options, dict) or not isinstance(labels, dict):
        raise InvalidArgument("DriverOpts and Labels must be JSON objects")
    volumes = VolumeCollection()
    volume = volumes.create(body.get("Name") or None, driver_opts=options, labels=labels)
    return view(volume, volumes)


def delete(req: Request) -> None:
    _get(VolumeCollection(), req.match["name"]).remove(force=req.flag("force"))


def prune(req: Request) -> dict[str, Any]:
    if req.arg("filters") not in (None, "", "{}"):
        raise Unsupported("cocoon does not serve volume prune filters")
    return {**VolumeCollection().prune(), "SpaceReclaimed": 0}


__all__ = ["create", "delete", "inspect", "list_volumes", "prune", "view"]
