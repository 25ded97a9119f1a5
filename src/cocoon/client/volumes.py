"""Named volumes as objects: ``client.volumes`` and :class:`Volume`, over ``cocoon.volume``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cocoon.container import record
from cocoon.volume.store import VolumeStore


class Volume:
    """One named volume; ``attrs`` is its record."""

    def __init__(self, attrs: dict[str, Any], store: VolumeStore) -> None:
        self.attrs = attrs
        self._store = store

    def __repr__(self) -> str:
        return f"<Volume {self.name}>"

    @property
    def id(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return str(self.attrs["name"])

    def reload(self) -> None:
        self.attrs = self._store.get(self.name).to_json()

    def remove(self, force: bool = False) -> None:
        self._store.remove(self.name, force=force, exists=record.exists)


class VolumeCollection:
    """``client.volumes``."""

    def __init__(self) -> None:
        self._store: VolumeStore | None = None

    @property
    def store(self) -> VolumeStore:
        if self._store is None:
            self._store = VolumeStore()
        return self._store

    def create(
        self,
        name: str | None = None,
        *,
        driver_opts: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Volume:
        """A volume (``driver_opts``: ``type=disk|dir``, ``size=1g``); a random name if none."""
        volume = self.store.create(name, options=driver_opts or {}, labels=labels or {})
        return Volume(volume.to_json(), self.store)

    def get(self, name: str) -> Volume:
        return Volume(self.store.get(name).to_json(), self.store)

    def list(self) -> list[Volume]:
        return [Volume(v.to_json(), self.store) for v in self.store.volumes()]

    def prune(self) -> dict[str, list[str]]:
        """Remove anonymous volumes no container uses (Docker's default)."""
        return {"VolumesDeleted": self.store.prune(exists=record.exists)}


__all__ = ["Volume", "VolumeCollection"]
