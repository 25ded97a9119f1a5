"""Networks as objects: ``client.networks`` and :class:`Network`, over ``cocoon.network``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cocoon.network import ipam

if TYPE_CHECKING:
    from cocoon.client.containers import Container


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

    def connect(self, container: Container | str, aliases: Sequence[str] | None = None) -> None:
        """Put a container that is not running on this network too (its next boot
        has a card here); ``aliases``: more names its peers here resolve."""
        from cocoon.container import manager

        manager.connect(_ref(container), self.name, aliases or ())
        self.reload()

    def disconnect(self, container: Container | str, force: bool = False) -> None:
        """Take a container off this network (a running VM's card there is cut off);
        ``force`` is docker-py's, with nothing more to force."""
        from cocoon.container import manager

        manager.disconnect(_ref(container), self.name)
        self.reload()

    def reload(self) -> None:
        self.attrs = ipam.view(ipam.get(self.name))

    def remove(self) -> None:
        from cocoon.network.teardown import delete

        delete(self.name)


def _ref(container: Container | str) -> str:
    return container if isinstance(container, str) else container.id


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
