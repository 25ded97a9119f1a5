"""Networks as objects: ``client.networks`` and :class:`Network`, over ``cocoon.network``."""

from __future__ import annotations

from typing import Any

from cocoon.network import ipam


class Network:
    """One cocoon network (a bridge with its subnet); ``attrs`` as ``network inspect``."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs

    def __repr__(self) -> str:
        return f"<Network {self.name} {self.attrs['subnet']}>"

    @property
    def id(self) -> str:
        return self.name  # cocoon names networks uniquely; the name is the id

    @property
    def name(self) -> str:
        return str(self.attrs["name"])

    @property
    def containers(self) -> dict[str, str]:
        """The containers on it: name -> address."""
        return dict(self.attrs["containers"])

    def reload(self) -> None:
        self.attrs = ipam.view(ipam.get(self.name))

    def remove(self) -> None:
        from cocoon.network.teardown import delete

        delete(self.name)


class NetworkCollection:
    """``client.networks``."""

    def create(self, name: str, subnet: str | None = None) -> Network:
        """A new bridge network; ``subnet`` (``10.5.0.0/24``) picked when not given."""
        return Network(ipam.view(ipam.create(name, subnet)))

    def get(self, name: str) -> Network:
        return Network(ipam.view(ipam.get(name)))

    def list(self) -> list[Network]:
        return [Network(ipam.view(n)) for n in ipam.all_networks()]

    def prune(self) -> dict[str, list[str]]:
        """Remove the networks no container is on (never the default one)."""
        from cocoon.container.record import exists
        from cocoon.network.teardown import prune

        return {"NetworksDeleted": prune(exists)}


__all__ = ["Network", "NetworkCollection"]
