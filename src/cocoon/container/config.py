"""A container's configuration as its record keeps it: typed, versioned, JSON both ways.

Everything a later ``cocoon start`` needs to boot the VM again is here,
fixed when the container is created. ``VERSION`` counts the record's
format: records written before it existed (no ``version`` key) have the
same keys as version 1 and load unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cocoon.agent.spec import ProcessSpec
from cocoon.errors import Corrupt
from cocoon.network.ports import PortSpec
from cocoon.volume import mounts as mount_model
from cocoon.volume.mounts import Mount

# 2: mounts, read-only root and disk size; a cocoon that knows only 1 must not
# start such a container without them.
VERSION = 2


@dataclass(slots=True)
class Attachment:
    """The container on one more bridge network (``network connect``, a second ``--network``):
    its VM's next card. The default route stays the first network's."""

    network: str
    ip: str
    prefix: int
    gateway: str
    mac: str


@dataclass(slots=True)
class NetworkSettings:
    """How the container's VM is connected: ``bridge``, ``user``, ``netns`` or ``none``."""

    mode: str = "none"
    network: str | None = None  # the cocoon network's name, in bridge mode
    ip: str | None = None
    prefix: int | None = None
    gateway: str | None = None
    mac: str | None = None
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)  # NAME:IP
    ports: list[PortSpec] = field(default_factory=list)
    # In mode ``netns``: the namespace (by path) whose veth the VM takes over.
    netns: str | None = None
    veth: str | None = None
    # In mode ``bridge``: the networks after ``network``, each a card of its own.
    more: list[Attachment] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ports"] = [asdict(p) for p in self.ports]
        if not self.more:  # a record on one network reads as before several were possible
            del data["more"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> NetworkSettings:
        data = dict(data or {"mode": "none"})
        data["ports"] = [PortSpec(**p) for p in data.get("ports", [])]
        data["more"] = [Attachment(**a) for a in data.get("more", [])]
        return cls(**data)

    def networks(self) -> list[str]:
        """Every cocoon network the container is on, the first (default route) first."""
        return [n for n in (self.network, *(a.network for a in self.more)) if n]


@dataclass(slots=True)
class ContainerConfig:
    """Everything a container's record keeps to boot its VM and run its process."""

    cpus: int
    memory_mib: int
    accel: str
    hostname: str
    rootfs: str  # the image's disk this container's own disk is an overlay of
    process: ProcessSpec
    network: NetworkSettings = field(default_factory=NetworkSettings)
    stop_signal: str | None = None
    disk_size: int | None = None  # bytes, when larger than the image's filesystem
    mounts: list[Mount] = field(default_factory=list)  # as made by volume.plan.prepare
    read_only: bool = False
    template: bool = True  # start from a memory template when one fits
    labels: dict[str, str] = field(default_factory=dict)
    stop_timeout: int | None = None  # seconds; None: stop's own default
    restart: str = "no"  # the --restart policy, as restart.parse reads it
    health: dict[str, Any] | None = None  # health.HealthCheck.to_json(); None: no check
    # A host folder served over 9p as the root instead of a disk over
    # ``rootfs`` (an OCI bundle's root, prepared by the engine).
    root_share: str | None = None
    cpu_quota: float | None = None  # CPUs' worth of host time, when less than ``cpus``
    shm_size: int | None = None  # bytes of /dev/shm; None: the guest kernel's default
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["process"] = self.process.to_json()
        data["network"] = self.network.to_json()
        data["mounts"] = [mount_model.to_json(m) for m in self.mounts]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerConfig:
        version = data.get("version", VERSION)
        if version > VERSION:
            raise Corrupt(f"container record format {version} is newer than this cocoon's")
        try:
            return cls(
                cpus=int(data["cpus"]),
                memory_mib=int(data["memory_mib"]),
                accel=data["accel"],
                hostname=data["hostname"],
                rootfs=data["rootfs"],
                process=ProcessSpec.from_json(data["process"]),
                network=NetworkSettings.from_json(data.get("network")),
                stop_signal=data.get("stop_signal"),
                disk_size=data.get("disk_size"),
                mounts=[mount_model.from_json(m) for m in data.get("mounts", [])],
                read_only=bool(data.get("read_only", False)),
                template=bool(data.get("template", True)),
                labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
                stop_timeout=data.get("stop_timeout"),
                restart=data.get("restart", "no"),
                health=data.get("health"),
                root_share=data.get("root_share"),
                cpu_quota=data.get("cpu_quota"),
                shm_size=data.get("shm_size"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise Corrupt(f"container record: bad configuration ({e})") from e


__all__ = ["VERSION", "Attachment", "ContainerConfig", "NetworkSettings"]
