"""A container's mounts through its life: what the container layer calls.

    create   prepare(mounts, id, name)          bind folders made, volumes made
                                                and attached; record the result
    boot     machine_mounts(mounts, id, active) disks and 9p shares for QEMU,
                                                the list the guest agent mounts
    VM gone  release(mounts, id)                disk volumes free for others
    rm       forget(mounts, id, remove_anonymous)  detach; rm -v / --rm delete
                                                the anonymous volumes

9p shares: as root, ``passthrough`` (a file a container process makes as uid
1000 is uid 1000's on the host, as with Docker). Without root QEMU cannot
give host files other owners. A bind mount then uses ``none``: files are
made as the user running cocoon, who owns them in the container too, and a
chown there fails (EPERM). A dir volume, whose files only containers read, uses
``mapped-xattr``: owners and modes live in extended attributes, so a chown
in the container holds (the state dir's filesystem must allow user xattrs).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cocoon.errors import InvalidArgument, NotFound
from cocoon.volume.mounts import BindMount, Mount, TmpfsMount, VolumeMount
from cocoon.volume.store import Active, VolumeStore


@dataclass(frozen=True, slots=True)
class DiskAttachment:
    path: Path  # a raw ext4 image
    readonly: bool
    serial: str  # virtio-blk serial: the guest finds the disk by it (/sys/block/*/serial)


@dataclass(frozen=True, slots=True)
class Share:
    path: Path  # a host folder, exported alone (-fsdev local,path=...)
    tag: str  # the 9p mount tag the guest mounts it by
    readonly: bool
    security_model: str  # "passthrough", or without root "none" or "mapped-xattr"


@dataclass(slots=True)
class MachineMounts:
    """What one boot of a container's VM needs for its mounts.

    ``guest`` is for the agent, one dict per mount, parents first:
    ``{"type": "ext4", "serial", "target", "readonly", "copy_up"}`` (the disk
    whose /sys/block/*/serial matches; the same serial may come twice),
    ``{"type": "9p", "tag", "target", "readonly"[, "file"][, "copy_up"]}``
    ("file": mount the share elsewhere and bind that file of it on target),
    ``{"type": "tmpfs", "target", "size" (bytes or None), "mode", "flags"}``.
    ``copy_up``: if the volume is empty (lost+found aside), copy the image's
    files at target into it first, as Docker does.
    """

    disks: list[DiskAttachment] = field(default_factory=list)
    shares: list[Share] = field(default_factory=list)
    guest: list[dict[str, Any]] = field(default_factory=list)  # in mount order


def security_model(*, volume: bool) -> str:
    """QEMU's 9p security model for a share of a host folder (``volume``: a dir volume's)."""
    if os.geteuid() == 0:
        return "passthrough"
    return "mapped-xattr" if volume else "none"


def prepare(
    mounts: Sequence[Mount],
    container_id: str,
    container_name: str,
    *,
    store: VolumeStore | None = None,
) -> list[Mount]:
    """Make what a new container's mounts need on the host; the mounts to record.

    Checks every bind source before changing anything; ``-v`` sources that
    are missing become folders. Volumes are made if missing (anonymous ones
    get their name here) and attached to the container. On failure, what
    this call made is undone.
    """
    store = store or VolumeStore()
    for mount in mounts:
        if isinstance(mount, BindMount):
            _check_source(mount)
    made: list[Path] = []
    attached: list[str] = []
    resolved: list[Mount] = []
    try:
        for mount in mounts:
            if isinstance(mount, BindMount) and not os.path.lexists(mount.source):
                made += _make_folders(Path(mount.source))
            if isinstance(mount, VolumeMount):
                volume = store.create(
                    mount.name, anonymous=mount.anonymous, user=(container_id, container_name)
                )
                attached.append(volume.name)
                mount = replace(mount, name=volume.name)
            resolved.append(mount)
    except BaseException:
        for name in attached:
            store.detach(name, container_id, remove_anonymous=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return resolved


def devices(mounts: Sequence[Mount], *, store: VolumeStore | None = None) -> int:
    """How many disks and shares :func:`machine_mounts` will give the VM for
    ``mounts``, known before anything is made: a disk volume is one disk
    however often it is mounted, a tmpfs needs none."""
    store = store or VolumeStore()
    disks: set[str | int] = set()
    shares = 0
    for number, mount in enumerate(mounts):
        if isinstance(mount, BindMount):
            shares += 1
        elif isinstance(mount, VolumeMount):
            if mount.name is not None and _driver(store, mount.name) == "dir":
                shares += 1
            else:  # an anonymous volume is a disk of its own
                disks.add(number if mount.name is None else mount.name)
    return len(disks) + shares


def _driver(store: VolumeStore, name: str) -> str:
    """A volume's driver; a missing one will be made with the default, a disk."""
    try:
        return store.get(name).driver
    except NotFound:
        return "disk"


def machine_mounts(
    mounts: Sequence[Mount],
    container_id: str,
    active: Active,
    *,
    store: VolumeStore | None = None,
) -> MachineMounts:
    """Disks and shares to give the VM, and the guest's list; claims disk volumes.

    ``active(container_id)`` says whether another container's VM may still
    run (see ``VolumeStore.claim``). Parents are mounted before what is
    mounted inside them. Call :func:`release` when the VM is gone, or if
    the boot fails.
    """
    store = store or VolumeStore()
    result = MachineMounts()
    disks: dict[str, int] = {}  # volume name -> index in result.disks
    try:
        for mount in sorted(mounts, key=lambda m: m.target.count("/")):
            if isinstance(mount, TmpfsMount):
                result.guest.append(_tmpfs_entry(mount))
            elif isinstance(mount, BindMount):
                if mount.create_source and not os.path.lexists(mount.source):
                    _make_folders(Path(mount.source))  # removed since the container was made
                _check_source(mount)
                source = Path(os.path.realpath(mount.source))
                folder = source if source.is_dir() else source.parent
                model = security_model(volume=False)
                entry = _share(result, folder, mount.readonly, model, mount.target)
                if folder != source:  # a file: the agent mounts it from its folder
                    entry["file"] = source.name
            else:
                assert mount.name is not None, "prepare() names anonymous volumes"
                volume = store.claim(mount.name, container_id, active)
                if volume.driver == "dir":
                    model = security_model(volume=True)
                    entry = _share(result, volume.path, mount.readonly, model, mount.target)
                else:
                    entry = _disk(result, disks, mount, volume.path)
                entry["copy_up"] = not mount.nocopy
    except BaseException:
        release(mounts, container_id, store=store)
        raise
    return result


def release(
    mounts: Sequence[Mount], container_id: str, *, store: VolumeStore | None = None
) -> None:
    """The container's VM is gone: let other containers attach its disk volumes."""
    store = store or VolumeStore()
    for mount in mounts:
        if isinstance(mount, VolumeMount) and mount.name is not None:
            store.release(mount.name, container_id)


def forget(
    mounts: Sequence[Mount],
    container_id: str,
    *,
    remove_anonymous: bool,
    store: VolumeStore | None = None,
) -> list[str]:
    """The container is removed: detach it from its volumes; the names deleted.

    ``remove_anonymous`` (``rm -v``, ``run --rm``) deletes its anonymous
    volumes no other container uses; named volumes always stay.
    """
    store = store or VolumeStore()
    return [
        mount.name
        for mount in mounts
        if isinstance(mount, VolumeMount)
        and mount.name is not None
        and store.detach(mount.name, container_id, remove_anonymous=remove_anonymous)
    ]


def _check_source(mount: BindMount) -> None:
    if mount.create_source and not os.path.lexists(mount.source):
        return  # to be made, as Docker's -v does
    try:
        mode = os.stat(mount.source).st_mode
    except FileNotFoundError:
        raise InvalidArgument(f"bind source {mount.source} does not exist") from None
    except OSError as e:
        raise InvalidArgument(f"bind source {mount.source}: {e.strerror}") from e
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise InvalidArgument(
            f"bind source {mount.source} is neither a folder nor a file: only those can be "
            "shared with a VM"
        )


def _make_folders(path: Path) -> list[Path]:
    """mkdir -p; the folders it made, outermost first."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    made = []
    try:
        for folder in reversed(missing):
            folder.mkdir(mode=0o755)
            made.append(folder)
    except OSError as e:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise InvalidArgument(f"cannot make bind source {missing[0]}: {e.strerror}") from e
    return made


def share_tag(index: int) -> str:
    """The 9p tag of a container's ``index``-th share: the same for every
    container, so shares are slots of a memory template (tags are its shape)."""
    return f"cocoon.m{index}"


def _share(
    result: MachineMounts, folder: Path, readonly: bool, model: str, target: str
) -> dict[str, Any]:
    tag = share_tag(len(result.shares))
    result.shares.append(Share(folder, tag, readonly, model))
    entry = {"type": "9p", "tag": tag, "target": target, "readonly": readonly}
    result.guest.append(entry)
    return entry


def _disk(
    result: MachineMounts, disks: dict[str, int], mount: VolumeMount, path: Path
) -> dict[str, Any]:
    """One virtio-blk disk per volume, even when mounted twice: read-only
    only if every mount of it is."""
    assert mount.name is not None
    index = disks.get(mount.name)
    if index is None:
        index = disks[mount.name] = len(result.disks)
        result.disks.append(DiskAttachment(path, mount.readonly, f"cocoon-vol{index}"))
    elif not mount.readonly:
        result.disks[index] = replace(result.disks[index], readonly=False)
    entry = {
        "type": "ext4",
        "serial": result.disks[index].serial,
        "target": mount.target,
        "readonly": mount.readonly,
    }
    result.guest.append(entry)
    return entry


def _tmpfs_entry(mount: TmpfsMount) -> dict[str, Any]:
    return {
        "type": "tmpfs",
        "target": mount.target,
        "size": mount.size,
        "mode": mount.mode,
        "flags": list(mount.flags),
    }


__all__ = [
    "DiskAttachment",
    "MachineMounts",
    "Share",
    "forget",
    "machine_mounts",
    "prepare",
    "release",
    "security_model",
    "share_tag",
]
