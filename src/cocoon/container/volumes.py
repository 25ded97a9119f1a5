"""A container's mounts, wired to its life: the container layer's side of ``cocoon.volume``.

create  check(mounts, rootfs) before the record exists (bad input leaves
        nothing), then prepare(...) once it has an id
boot    attach(rec) -> the VM's disks and shares and the agent's MOUNTs;
        release(rec) once the VM is gone
rm      forget(rec, remove_volumes)

The volume store and planner are imported only for a container that has
mounts: most start without them, and every start pays for what it imports.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cocoon.container import liveness
from cocoon.container.record import Record
from cocoon.errors import InvalidArgument, NotFound
from cocoon.vm import machine as vms
from cocoon.volume.mounts import (
    BindMount,
    Mount,
    VolumeMount,
    check_image_paths,
    check_targets,
    kind,
)

if TYPE_CHECKING:
    from cocoon.agent.protocol import GuestMount
    from cocoon.image.model import Image
    from cocoon.image.store import ImageStore


def check(mounts: list[Mount], store: ImageStore, image: Image, rootfs: Path, *, nics: int) -> None:
    """Refuse what cannot work, before anything is made: one mount per target,
    each mount's type fitting what ``image`` (its disk ``rootfs``) has at its
    target, and no more disks and shares than the VM (beside ``nics`` network
    cards) has room for."""
    check_targets(mounts)
    if mounts:
        from cocoon.rootfs.kinds import kind_at

        check_image_paths(mounts, functools.partial(kind_at, store, image, rootfs))
        _check_room(mounts, nics)


def _check_room(mounts: list[Mount], nics: int) -> None:
    from cocoon.vm import backend
    from cocoon.volume import plan

    free = backend.room(nics=nics) - 1  # the root disk
    needed = plan.devices(mounts)
    if needed > free:
        hint = {0: "", 1: "; --network none frees one"}.get(nics, "; each network less frees one")
        raise InvalidArgument(
            f"too many bind mounts and volumes ({needed}): a container's VM has device "
            f"slots for {free} (tmpfs mounts need none{hint})"
        )


def prepare(mounts: list[Mount], container_id: str, name: str) -> list[Mount]:
    """Bind folders and volumes made, volumes attached: the mounts to record."""
    if not mounts:
        return []
    from cocoon.volume import plan

    return plan.prepare(mounts, container_id, name)


@dataclass(slots=True)
class Attached:
    """What one boot needs for the container's mounts."""

    disks: list[vms.Disk] = field(default_factory=list)
    shares: list[vms.SharedFolder] = field(default_factory=list)
    guest: list[GuestMount] = field(default_factory=list)


def attach(rec: Record) -> Attached:
    """Claim the container's disk volumes for its VM; call :func:`release` when it is gone."""
    mounts = rec.settings.mounts
    if not mounts:
        return Attached()
    from cocoon.volume import plan

    planned = plan.machine_mounts(mounts, rec.id, liveness.owner_alive)
    return Attached(
        disks=[vms.Disk(d.path, "raw", d.readonly, serial=d.serial) for d in planned.disks],
        shares=[
            vms.SharedFolder(s.path, s.tag, s.readonly, s.security_model) for s in planned.shares
        ],
        guest=[_guest_mount(entry) for entry in planned.guest],
    )


def _guest_mount(entry: dict[str, Any]) -> GuestMount:
    # The protocol only for a container that has mounts: the rest start without it.
    from cocoon.agent.protocol import GuestMount, MountFlag, MountKind

    kinds = {"ext4": MountKind.EXT4, "9p": MountKind.NINEP, "tmpfs": MountKind.TMPFS}
    named = {"noexec": MountFlag.NOEXEC, "nosuid": MountFlag.NOSUID, "nodev": MountFlag.NODEV}
    flags = MountFlag.NONE
    if entry.get("readonly"):
        flags |= MountFlag.RDONLY
    if entry.get("copy_up"):
        flags |= MountFlag.COPY_UP
    for name in entry.get("flags", ()):
        flags |= named[name]
    kind_ = kinds[entry["type"]]
    tmpfs = kind_ is MountKind.TMPFS
    return GuestMount(
        kind_,
        entry["target"],
        source=entry.get("serial") or entry.get("tag") or "",
        file=entry.get("file", ""),
        flags=flags,
        mode=entry["mode"] if tmpfs else 0,
        size=(entry["size"] or 0) if tmpfs else 0,
    )


def outlive(rec: Record) -> bool:
    """Whether the container writes to something that stays after it is
    removed through its guest's page cache (a disk volume): its VM must then
    power off cleanly even under ``--rm``. A bind mount's writes reach the
    host at once (9p without a cache)."""
    return any(isinstance(m, VolumeMount) for m in rec.settings.mounts)


def release(rec: Record) -> None:
    if rec.settings.mounts:
        from cocoon.volume import plan

        plan.release(rec.settings.mounts, rec.id)


def forget(rec: Record, *, remove_volumes: bool) -> list[str]:
    """The container is removed; its anonymous volumes too with ``remove_volumes``."""
    if not rec.settings.mounts:
        return []
    from cocoon.volume import plan

    return plan.forget(rec.settings.mounts, rec.id, remove_anonymous=remove_volumes)


def view(mounts: list[Mount]) -> list[dict[str, Any]]:
    """Docker's shape of ``inspect``'s Mounts, its keys in Docker's order."""
    shown = []
    for mount in mounts:
        readonly = getattr(mount, "readonly", False)
        entry: dict[str, Any] = {"Type": kind(mount)}
        if isinstance(mount, VolumeMount):
            entry["Name"] = mount.name
        entry["Source"] = _source(mount)
        entry["Destination"] = mount.target
        if isinstance(mount, VolumeMount):
            entry["Driver"] = "local"  # what the Docker API calls cocoon's volumes
        entry["Mode"] = "ro" if readonly else ""
        entry["RW"] = not readonly
        # A bind's mounts beneath stay on its side: Docker's default, rprivate.
        entry["Propagation"] = "rprivate" if isinstance(mount, BindMount) else ""
        shown.append(entry)
    return shown


def _source(mount: Mount) -> str:
    if isinstance(mount, BindMount):
        return mount.source
    if isinstance(mount, VolumeMount):
        with contextlib.suppress(NotFound):  # removed with --force meanwhile
            from cocoon.volume.store import VolumeStore

            return str(VolumeStore().get(mount.name or "").path)
    return ""


__all__ = [
    "Attached",
    "attach",
    "check",
    "forget",
    "outlive",
    "prepare",
    "release",
    "view",
]
