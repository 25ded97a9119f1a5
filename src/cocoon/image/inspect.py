"""An image's details in ``docker image inspect``'s shape (CLI, library and API faces)."""

from __future__ import annotations

from typing import Any

from cocoon.image.model import Image


def view(image: Image) -> dict[str, Any]:
    """``image`` as ``docker image inspect`` shows it, with the manifest's own details."""
    config = image.config
    return {
        "Id": image.id,
        "RepoTags": list(image.references),
        "Digest": image.digest,
        "ManifestDigest": image.manifest_digest,
        "MediaType": image.manifest.media_type,
        "Created": config.created,
        "Platform": "/".join(filter(None, (config.os, config.architecture, config.variant))),
        "Size": image.size,
        "Layers": [layer.to_json() for layer in image.layers],
        "Config": {
            "Entrypoint": config.entrypoint,
            "Cmd": config.cmd,
            "Env": list(config.env),
            "WorkingDir": config.working_dir,
            "User": config.user,
            "ExposedPorts": list(config.exposed_ports),
            "Labels": dict(config.labels),
            "StopSignal": config.stop_signal,
        },
    }


__all__ = ["view"]
