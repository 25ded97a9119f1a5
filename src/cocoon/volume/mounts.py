"""What a container mounts: one model for the CLI, the library and the record.

Three kinds, as in Docker:

    BindMount    a host folder (or file), shared with the VM over virtio-9p
    VolumeMount  a named or anonymous volume from ``cocoon.volume.store``
    TmpfsMount   a memory filesystem made inside the VM

The parsers here are pure: they read no file. What needs the host (a missing
bind source, a volume to create) is ``cocoon.volume.plan``'s; what needs the
image (a file mounted on one of its folders) is :func:`check_image_paths`,
given a way to ask the image what is at a path.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cocoon.errors import Corrupt, InvalidArgument
from cocoon.units import parse_size

# Docker's rule for volume names: no "/" and no leading "." (so no "..").
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_NAME_MAX = 255  # a folder name on the host
# Mount flags a tmpfs accepts; the positive ones undo a negative given before.
_TMPFS_FLAGS = {"noexec": "exec", "nosuid": "suid", "nodev": "dev"}
DEFAULT_TMPFS_MODE = 0o1777


@dataclass(frozen=True, slots=True)
class BindMount:
    """A host path mounted into the container (``-v /host:/ctr``, ``--mount type=bind``)."""

    source: str  # absolute host path
    target: str
    readonly: bool = False
    # -v makes a missing source folder (Docker's rule); --mount refuses it.
    create_source: bool = False


@dataclass(frozen=True, slots=True)
class VolumeMount:
    """A named or anonymous volume mounted into the container."""

    name: str | None  # None until an anonymous volume is made (plan.prepare)
    target: str
    readonly: bool = False
    anonymous: bool = False
    nocopy: bool = False  # do not copy the image's files into an empty volume


@dataclass(frozen=True, slots=True)
class TmpfsMount:
    """A tmpfs in the container (``--tmpfs``, ``--mount type=tmpfs``)."""

    target: str
    size: int | None = None  # bytes; None is the kernel's default (half the VM's memory)
    mode: int = DEFAULT_TMPFS_MODE
    flags: tuple[str, ...] = ()  # of noexec, nosuid, nodev


Mount = BindMount | VolumeMount | TmpfsMount
_KINDS: dict[str, type[Mount]] = {"bind": BindMount, "volume": VolumeMount, "tmpfs": TmpfsMount}


def kind(mount: Mount) -> str:
    return next(k for k, cls in _KINDS.items() if isinstance(mount, cls))


def to_json(mount: Mount) -> dict[str, Any]:
    """The mount as a container record keeps it."""
    return {"type": kind(mount), **asdict(mount)}


def from_json(data: dict[str, Any]) -> Mount:
    fields = dict(data)
    cls = _KINDS.get(fields.pop("type", None))
    if cls is None:
        raise Corrupt(f"unknown mount type in record: {data.get('type')!r}")
    if cls is TmpfsMount:
        fields["flags"] = tuple(fields.get("flags", ()))
    try:
        return cls(**fields)
    except TypeError as e:
        raise Corrupt(f"malformed mount in record: {e}") from e


def check_name(name: str) -> str:
    """A volume name, or InvalidArgument saying what is wrong with it."""
    if not _NAME.fullmatch(name) or len(name) > _NAME_MAX:
        raise InvalidArgument(
            f"invalid volume name {name!r}: use 2 or more of letters, digits, _ . -, "
            "starting with a letter or digit"
        )
    return name


def _target(text: str, flag: str) -> str:
    if not text:
        raise InvalidArgument(f"{flag}: the target (path in the container) is missing")
    if any(ord(c) < 0x20 for c in text):
        raise InvalidArgument(f"{flag}: the target {text!r} contains a control character")
    if not text.startswith("/"):
        raise InvalidArgument(f"{flag}: the target {text!r} is not an absolute path")
    # normpath keeps a leading "//" (POSIX allows it a meaning); the guest doesn't.
    clean = "/" + posixpath.normpath(text).lstrip("/")
    if clean == "/":
        raise InvalidArgument(f"{flag}: cannot mount over the container's root /")
    return clean


def _bind_source(text: str, flag: str) -> str:
    if "\0" in text:
        raise InvalidArgument(f"{flag}: the source contains a NUL character")
    return posixpath.normpath(text)


def parse_volume_flag(text: str) -> Mount:
    """``-v [SOURCE:]TARGET[:OPTIONS]``: a bind if SOURCE is a path, else a volume.

    SOURCE "." or "./..." is a path relative to the current folder, as in
    Docker's CLI; any other relative SOURCE is a volume name. OPTIONS are
    ro, rw and nocopy, comma-separated.
    """
    flag = f"-v {text}"
    parts = text.split(":")
    if len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"{flag}: use [SOURCE:]TARGET[:ro|rw]")
    if len(parts) == 2 and set(parts[1].split(",")) <= {"ro", "rw", "nocopy"}:
        raise InvalidArgument(f"{flag}: options need a source too; use SOURCE:TARGET:OPTIONS")
    source = parts[0] if len(parts) > 1 else None
    target = _target(parts[1] if source else parts[0], flag)
    options = parts[2].split(",") if len(parts) == 3 else []
    unknown = sorted(set(options) - {"ro", "rw", "nocopy"})
    if unknown:
        raise InvalidArgument(f"{flag}: unknown option {unknown[0]!r} (use ro, rw or nocopy)")
    if {"ro", "rw"} <= set(options):
        raise InvalidArgument(f"{flag}: ro and rw conflict")
    readonly = "ro" in options
    if source is not None and (source == "." or source.startswith(("/", "./"))):
        if "nocopy" in options:
            raise InvalidArgument(f"{flag}: nocopy applies to volumes, not to host paths")
        return BindMount(
            os.path.abspath(_bind_source(source, flag)), target, readonly, create_source=True
        )
    return VolumeMount(
        None if source is None else check_name(source),
        target,
        readonly,
        anonymous=source is None,
        nocopy="nocopy" in options,
    )


_KEYS = {
    "type": "type",
    "source": "source",
    "src": "source",
    "target": "target",
    "destination": "target",
    "dst": "target",
    "readonly": "readonly",
    "ro": "readonly",
    "volume-nocopy": "volume-nocopy",
    "tmpfs-size": "tmpfs-size",
    "tmpfs-mode": "tmpfs-mode",
}
# Which keys each type takes, besides type and target.
_TYPE_KEYS = {
    "bind": {"source", "readonly"},
    "volume": {"source", "readonly", "volume-nocopy"},
    "tmpfs": {"tmpfs-size", "tmpfs-mode"},
}
_BOOLS = {"": True, "true": True, "1": True, "false": False, "0": False}


def _bool(value: str, key: str, flag: str) -> bool:
    if value.lower() not in _BOOLS:
        raise InvalidArgument(f"{flag}: {key}={value!r} is not true or false")
    return _BOOLS[value.lower()]


def _mode(value: str, flag: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise InvalidArgument(f"{flag}: mode {value!r} is not an octal file mode like 1777")
    return mode


def _size(value: str, flag: str) -> int:
    try:
        size = parse_size(value)
    except InvalidArgument as e:
        raise InvalidArgument(f"{flag}: {e}") from None
    if size <= 0:
        raise InvalidArgument(f"{flag}: size {value!r} must be more than 0")
    return size


def parse_mount_flag(text: str) -> Mount:
    """``--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,...]``.

    Fields are CSV, as in Docker, so a path with a comma can be quoted. The
    type defaults to volume; a volume without a source is anonymous.
    """
    import csv  # here: only --mount needs it, not every process that reads a record

    flag = f"--mount {text}"
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as e:
        raise InvalidArgument(f"{flag}: {e}") from None
    given: dict[str, str] = {}
    for field in fields:
        key, sep, value = field.partition("=")
        name = _KEYS.get(key.strip().lower())
        if name is None:
            raise InvalidArgument(f"{flag}: unknown or unsupported key {key!r}")
        if name in given:
            raise InvalidArgument(f"{flag}: {key} given twice")
        if not sep and name not in ("readonly", "volume-nocopy"):
            raise InvalidArgument(f"{flag}: {key} needs a value ({key}=...)")
        given[name] = value
    mount_type = given.pop("type", "volume")
    if mount_type not in _TYPE_KEYS:
        raise InvalidArgument(f"{flag}: unknown type {mount_type!r} (use bind, volume or tmpfs)")
    if "target" not in given:
        raise InvalidArgument(f"{flag}: target is missing (target=PATH in the container)")
    target = _target(given.pop("target"), flag)
    misplaced = sorted(given.keys() - _TYPE_KEYS[mount_type])
    if misplaced:
        raise InvalidArgument(f"{flag}: {misplaced[0]} does not apply to type={mount_type}")
    readonly = "readonly" in given and _bool(given["readonly"], "readonly", flag)
    source = given.get("source")
    if mount_type == "tmpfs":
        size = _size(given["tmpfs-size"], flag) if "tmpfs-size" in given else None
        mode = _mode(given["tmpfs-mode"], flag) if "tmpfs-mode" in given else DEFAULT_TMPFS_MODE
        return TmpfsMount(target, size, mode)
    if mount_type == "bind":
        if not source:
            raise InvalidArgument(f"{flag}: a bind needs source=HOST_PATH")
        if not source.startswith("/"):
            raise InvalidArgument(f"{flag}: the source {source!r} is not an absolute path")
        return BindMount(_bind_source(source, flag), target, readonly)
    nocopy = "volume-nocopy" in given and _bool(given["volume-nocopy"], "volume-nocopy", flag)
    name = check_name(source) if source else None
    return VolumeMount(name, target, readonly, anonymous=name is None, nocopy=nocopy)


def parse_tmpfs_flag(text: str) -> TmpfsMount:
    """``--tmpfs PATH[:size=64m,mode=1777,noexec,nosuid,nodev,rw]``."""
    flag = f"--tmpfs {text}"
    path, _, options = text.partition(":")
    target = _target(path, flag)
    size, mode, flags = None, DEFAULT_TMPFS_MODE, []
    for option in options.split(",") if options else ():
        key, sep, value = option.partition("=")
        if sep and key == "size":
            if value.endswith("%"):
                raise InvalidArgument(f"{flag}: give size in bytes (e.g. 64m), not a percentage")
            size = _size(value, flag)
        elif sep and key == "mode":
            mode = _mode(value, flag)
        elif not sep and option in _TMPFS_FLAGS:
            flags.append(option)
        elif not sep and option in _TMPFS_FLAGS.values():
            flags = [f for f in flags if _TMPFS_FLAGS[f] != option]
        elif option != "rw":
            raise InvalidArgument(
                f"{flag}: unknown option {option!r} (use size=, mode=, noexec, nosuid, nodev)"
            )
    return TmpfsMount(target, size, mode, tuple(dict.fromkeys(flags)))


def check_targets(mounts: Iterable[Mount]) -> None:
    """Clean absolute targets (mounts made in Python skip the parsers), one per
    target, as Docker requires."""
    seen: set[str] = set()
    for mount in mounts:
        if _target(mount.target, f"mount on {mount.target!r}") != mount.target:
            raise InvalidArgument(f"mount target {mount.target!r} is not a clean absolute path")
        if mount.target in seen:
            raise InvalidArgument(f"two mounts on {mount.target}: give each target once")
        seen.add(mount.target)


def from_flags(
    volumes: Sequence[str] = (), mounts: Sequence[str] = (), tmpfs: Sequence[str] = ()
) -> list[Mount]:
    """A container's mounts from its ``-v``, ``--mount`` and ``--tmpfs`` flags."""
    parsed = [
        *map(parse_volume_flag, volumes),
        *map(parse_mount_flag, mounts),
        *map(parse_tmpfs_flag, tmpfs),
    ]
    check_targets(parsed)
    return parsed


# What is at a path in the image: "dir", "file" (anything else that is not a
# folder) or None when nothing is; the container layer answers from its rootfs.
PathKind = Callable[[str], str | None]


def check_image_paths(mounts: Iterable[Mount], image_kind: PathKind) -> None:
    """Refuse mounts whose type does not fit what the image has at their target.

    A bind of a host file needs a file (or nothing) there; a folder, volume or
    tmpfs needs a folder (or nothing). Call it once bind sources exist.
    """
    names = {"dir": "folder", "file": "file"}
    for mount in mounts:
        there = image_kind(mount.target)
        if isinstance(mount, BindMount):
            # A missing source is a folder -v will make (--mount refuses it later).
            wants = "file" if os.path.isfile(mount.source) else "dir"
            what = f"host {names[wants]} {mount.source}"
        else:
            wants, what = "dir", f"a {kind(mount)}"
        if there is not None and there != wants:
            raise InvalidArgument(
                f"cannot mount {what} on {mount.target}: the image has a {names[there]} there"
            )


__all__ = [
    "DEFAULT_TMPFS_MODE",
    "BindMount",
    "Mount",
    "PathKind",
    "TmpfsMount",
    "VolumeMount",
    "check_image_paths",
    "check_name",
    "check_targets",
    "from_flags",
    "from_json",
    "kind",
    "parse_mount_flag",
    "parse_tmpfs_flag",
    "parse_volume_flag",
    "to_json",
]
