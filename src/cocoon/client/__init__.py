"""cocoon's high-level Python API, in docker-py's terms.

    import cocoon

    client = cocoon.Client()                  # or cocoon.from_env()
    out = client.containers.run("busybox", "echo hi")           # b"hi\\n"
    web = client.containers.run("nginx", detach=True, ports={"80/tcp": 8080},
                                environment={"MODE": "prod"}, name="web")
    web.exec_run(["cat", "/etc/hostname"])    # ExecResult(exit_code=0, output=b"...")
    web.stop(); web.remove()

A face over the library (``cocoon.container``, ``cocoon.image``,
``cocoon.network``, ``cocoon.volume``): every call acts at once on the
local state, as the CLI does; there is no daemon to connect to. Errors are
``cocoon.errors`` classes (NotFound, AlreadyExists, InvalidArgument, ...),
plus :class:`ContainerError` when a foreground ``run`` exits non-zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cocoon.client.containers import (
    Container,
    ContainerCollection,
    ContainerError,
    ExecResult,
)
from cocoon.client.images import Image, ImageCollection
from cocoon.client.networks import Network, NetworkCollection
from cocoon.client.volumes import Volume, VolumeCollection


class Client:
    """Entry point: ``containers``, ``images``, ``networks``, ``volumes``.

    State lives where the CLI keeps it (``COCOON_STATE_DIR``, default
    ``/var/lib/cocoon`` as root); a Client holds no connection and needs no
    closing.
    """

    def __init__(self) -> None:
        self.containers = ContainerCollection()
        self.images = ImageCollection()
        self.networks = NetworkCollection()
        self.volumes = VolumeCollection()

    def ping(self) -> bool:
        return True

    def version(self) -> dict[str, Any]:
        from cocoon import __version__

        return {"Version": __version__, "ApiVersion": None, "Os": "linux", "Runtime": "cocoon"}

    def events(
        self,
        since: float | None = None,
        until: float | None = None,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        decode: bool = False,
    ) -> Iterator[dict[str, Any] | bytes]:
        """What happens to containers, as ``cocoon events`` streams it (dockerd's shape):
        from ``since`` (epoch seconds; None: from now on) until ``until`` (None: for ever).
        JSON lines as bytes, as docker-py, or dicts with ``decode``."""
        import json

        from cocoon.container import events
        from cocoon.filters import check

        wanted = check(filters or {}, events.FILTERS)
        for event in events.follow(since, until, wanted):
            yield event if decode else json.dumps(event).encode() + b"\n"

    def close(self) -> None:
        """Nothing to release: there for code written against docker-py."""


def from_env() -> Client:
    """docker-py's constructor name: the same as ``Client()``."""
    return Client()


__all__ = [
    "Client",
    "Container",
    "ContainerCollection",
    "ContainerError",
    "ExecResult",
    "Image",
    "ImageCollection",
    "Network",
    "NetworkCollection",
    "Volume",
    "VolumeCollection",
    "from_env",
]
