"""Named and anonymous volumes on the host, and which containers use them.

    <state>/volumes/
      .lock            held by every change to any volume's metadata
      NAME/volume.json metadata, replaced atomically
      NAME/disk.ext4   driver "disk" (default): a sparse ext4 image, given to
                       the VM as a virtio-blk disk of its own
      NAME/data/       driver "dir": a folder shared over virtio-9p, which
                       several running containers can mount at once
      .new-*/          a volume being made: renamed to NAME once complete
      .gone-*/         a volume being deleted

A volume lists the containers that use it (``attach``/``detach``, from
create to rm) and refuses removal while any does; a disk volume also names
the one container whose VM has it now (``claim``/``release``): two kernels
mounting one ext4 would corrupt it. Whether a container still exists or
still runs is the container layer's to say, through the callables it passes:
this module never imports ``cocoon.container``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cocoon import paths
from cocoon.errors import AlreadyExists, Corrupt, InvalidArgument, InvalidState, NotFound
from cocoon.files import write_atomic
from cocoon.locks import flock
from cocoon.rootfs import ext4
from cocoon.units import parse_size
from cocoon.volume.mounts import check_name

DRIVERS = ("disk", "dir")
DEFAULT_SIZE = 8 << 30  # like a Docker volume on a roomy host disk; sparse, so cheap
MIN_SIZE = 16 << 20  # below this an ext4 with a journal has little room left
_META = "volume.json"
_BUILDING = ".building"  # locked by the process making a .new-* folder

# Answers about containers, from the container layer: whether one still
# exists (a record), and whether its VM may be running (from start to exit).
Exists = Callable[[str], bool]
Active = Callable[[str], bool]


@dataclass(slots=True)
class Volume:
    name: str
    driver: str  # one of DRIVERS
    created: float
    size: int | None = None  # bytes of the disk image (driver disk)
    labels: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    users: dict[str, str] = field(default_factory=dict)  # container id -> its name
    holder: str | None = None  # id of the container whose VM has the disk attached
    folder: Path = field(default=Path(), compare=False)  # where it lives; not saved

    @property
    def path(self) -> Path:
        """What the VM gets: the disk image, or the folder to share."""
        return self.folder / ("disk.ext4" if self.driver == "disk" else "data")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["folder"]
        return data


def parse_options(options: Mapping[str, str]) -> tuple[str, int | None]:
    """The driver and disk size ``volume create --opt`` asks for."""
    unknown = sorted(options.keys() - {"type", "size"})
    if unknown:
        raise InvalidArgument(f"unknown volume option {unknown[0]!r} (use type= or size=)")
    driver = options.get("type", "disk")
    if driver not in DRIVERS:
        raise InvalidArgument(f"unknown volume type {driver!r} (use disk or dir)")
    if driver != "disk":
        if "size" in options:
            raise InvalidArgument("size applies to disk volumes only, not to type=dir")
        return driver, None
    size = parse_size(options["size"]) if "size" in options else DEFAULT_SIZE
    if size < MIN_SIZE:
        raise InvalidArgument(f"volume size {options['size']!r} is too small (16m at least)")
    return driver, -(-size // (1 << 20)) << 20  # whole MiB: whole ext4 blocks


class VolumeStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or paths.state_dir() / "volumes"

    # -- reading ----------------------------------------------------------

    def get(self, name: str) -> Volume:
        folder = self.root / check_name(name)  # never a path out of the store
        try:
            data = json.loads((folder / _META).read_text())
            return Volume(**data, folder=folder)
        except (FileNotFoundError, NotADirectoryError) as e:
            raise NotFound(f"no such volume: {name}") from e
        except (ValueError, TypeError) as e:
            raise Corrupt(f"volume {name}: unreadable metadata ({e})") from e

    def volumes(self) -> list[Volume]:
        found = []
        for meta in sorted(self.root.glob(f"*/{_META}")) if self.root.is_dir() else ():
            if not meta.parent.name.startswith("."):
                with contextlib.suppress(NotFound, Corrupt):
                    found.append(self.get(meta.parent.name))
        return found

    # -- making and removing ----------------------------------------------

    def create(
        self,
        name: str | None = None,
        *,
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        anonymous: bool = False,
        user: tuple[str, str] | None = None,
    ) -> Volume:
        """Make a volume, or return the one of that name if ``options`` fit it.

        ``name`` None makes a random 64-hex one. ``user`` (container id and
        name) is attached in the same step, so that a prune cannot take a
        volume between its making and its first use.
        """
        name = os.urandom(32).hex() if name is None else check_name(name)
        options = dict(options or {})
        driver, size = parse_options(options)
        with contextlib.ExitStack() as building:
            with self._locked():
                if (found := self._existing(name, options, driver, size, user)) is not None:
                    return found
                self._sweep()
                work = Path(tempfile.mkdtemp(dir=self.root, prefix=".new-"))
                building.enter_context(flock(work / _BUILDING))
            try:
                volume = Volume(
                    name, driver, time.time(), size, dict(labels or {}), anonymous,
                    users=dict([user]) if user else {},
                )  # fmt: skip
                if driver == "disk":
                    ext4.make_empty(work / "disk.ext4", size or DEFAULT_SIZE)
                else:
                    (work / "data").mkdir(mode=0o755)
                _save(work, volume)
                with self._locked():
                    if (found := self._existing(name, options, driver, size, user)) is not None:
                        return found  # made by another process meanwhile
                    os.rename(work, self.root / name)
                    (self.root / name / _BUILDING).unlink()
            finally:
                shutil.rmtree(work, ignore_errors=True)  # gone already when renamed
        volume.folder = self.root / name
        return volume

    def remove(self, name: str, *, force: bool = False, exists: Exists | None = None) -> bool:
        """Delete a volume no container uses; False if missing and ``force``.

        ``exists`` lets users whose container is gone (removed by a crashed
        process) stop counting.
        """
        with self._locked():
            try:
                volume = self.get(name)
            except NotFound:
                if force:
                    return False
                raise
            users = self._live_users(volume, exists)
            if users:
                raise InvalidState(
                    f"volume {name} is in use by container {', '.join(sorted(users.values()))}"
                    " (remove the container first)"
                )
            gone = self._unlink(volume)
        shutil.rmtree(gone, ignore_errors=True)
        return True

    def prune(self, *, all: bool = False, exists: Exists | None = None) -> list[str]:
        """Delete unused anonymous volumes (``all``: every unused one); their names."""
        gone = []
        with self._locked():
            self._sweep()
            for volume in self.volumes():
                if (all or volume.anonymous) and not self._live_users(volume, exists):
                    gone.append((volume.name, self._unlink(volume)))
        for _, folder in gone:
            shutil.rmtree(folder, ignore_errors=True)
        return [name for name, _ in gone]

    # -- use by containers --------------------------------------------------

    def attach(self, name: str, container_id: str, container_name: str) -> Volume:
        """Record that a container uses the volume (from its create to its rm)."""
        with self._locked():
            volume = self.get(name)
            volume.users[container_id] = container_name
            _save(volume.folder, volume)
        return volume

    def detach(self, name: str, container_id: str, *, remove_anonymous: bool = False) -> bool:
        """Forget a container's use; with ``remove_anonymous`` delete an
        anonymous volume nobody else uses. True if the volume was deleted."""
        gone = None
        with self._locked():
            try:
                volume = self.get(name)
            except NotFound:
                return False
            volume.users.pop(container_id, None)
            if volume.holder == container_id:
                volume.holder = None
            if remove_anonymous and volume.anonymous and not volume.users:
                gone = self._unlink(volume)
            else:
                _save(volume.folder, volume)
        if gone is not None:
            shutil.rmtree(gone, ignore_errors=True)
        return gone is not None

    def claim(self, name: str, container_id: str, active: Active) -> Volume:
        """Take a disk volume for the container's VM, if no other active one has it.

        ``active`` says whether a container's VM may be running; a holder
        that is not active (stopped, crashed, removed) loses its claim. A dir
        volume is shared freely.
        """
        with self._locked():
            volume = self.get(name)
            if volume.driver != "disk" or volume.holder == container_id:
                return volume
            holder = volume.holder
            if holder is not None and active(holder):
                who = volume.users.get(holder, holder[:12])
                raise InvalidState(
                    f"volume {name} is in use by running container {who}: a disk volume "
                    "attaches to one running container at a time (for sharing, "
                    "create it with --opt type=dir)"
                )
            volume.holder = container_id
            _save(volume.folder, volume)
        return volume

    def release(self, name: str, container_id: str) -> None:
        """The container's VM is gone: its claim on the disk volume ends."""
        with self._locked(), contextlib.suppress(NotFound):
            volume = self.get(name)
            if volume.holder == container_id:
                volume.holder = None
                _save(volume.folder, volume)

    # -- internals (callers hold the lock) ----------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with flock(self.root / ".lock"):
            yield

    def _existing(
        self,
        name: str,
        options: Mapping[str, str],
        driver: str,
        size: int | None,
        user: tuple[str, str] | None,
    ) -> Volume | None:
        try:
            volume = self.get(name)
        except NotFound:
            return None
        if options and (volume.driver, volume.size) != (driver, size):
            raise AlreadyExists(f"volume {name} already exists with other options")
        if user is not None:
            volume.users[user[0]] = user[1]
            _save(volume.folder, volume)
        return volume

    def _live_users(self, volume: Volume, exists: Exists | None) -> dict[str, str]:
        if exists is not None:
            gone = [cid for cid in volume.users if not exists(cid)]
            if gone:
                for cid in gone:
                    del volume.users[cid]
                _save(volume.folder, volume)
        return volume.users

    def _unlink(self, volume: Volume) -> Path:
        """Take the volume out of sight at once; the caller deletes the folder returned."""
        gone = Path(tempfile.mkdtemp(dir=self.root, prefix=".gone-"))
        os.rename(volume.folder, gone)  # over the empty folder just made
        return gone

    def _sweep(self) -> None:
        """Delete what killed processes left: half-made and half-deleted volumes."""
        for folder in self.root.glob(".gone-*"):
            shutil.rmtree(folder, ignore_errors=True)
        for folder in self.root.glob(".new-*"):
            if _abandoned(folder):
                shutil.rmtree(folder, ignore_errors=True)


def _abandoned(work: Path) -> bool:
    """Whether no live process holds the lock of a .new-* folder."""
    try:
        fd = os.open(work / _BUILDING, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True  # its maker died before locking it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _save(folder: Path, volume: Volume) -> None:
    write_atomic(folder / _META, json.dumps(volume.to_json(), indent=1).encode())


__all__ = ["DEFAULT_SIZE", "DRIVERS", "Active", "Exists", "Volume", "VolumeStore", "parse_options"]
