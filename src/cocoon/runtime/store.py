"""Where the runtime keeps its containers, and what it knows about each.

``--root`` (containerd passes ``/run/containerd/runc/<namespace>``; podman's
cleanup passes nothing, hence a fixed default) holds one folder per OCI id
with ``state.json``. The cocoon records and sockets of those containers live
under the same root, so they never show up in ``cocoon ps``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import namedtuple
from pathlib import Path

from cocoon.errors import AlreadyExists, Corrupt, InvalidArgument, NotFound

DEFAULT_ROOT = Path("/run/cocoon-runtime")
STATE = "state.json"
SHIM_LOG = "shim.log"  # what the container's process says
BOOTED = "booted"  # its one JSON line: how the VM's boot went (create.py)
# runc's rule for ids: they become file names here.
_ID = re.compile(r"[\w+\-.]+")


TYPE_CHECKING = False  # typing's, without importing typing: see cocoon/__init__.py
if TYPE_CHECKING:
    from typing import Any

# A namedtuple, not a dataclass or a typing.NamedTuple: those import inspect
# or typing, together a fifth of what a call of the runtime costs before it
# does anything. The fields' types are in the comments.
Entry = namedtuple(
    "Entry",
    [
        "id",  # str
        "bundle",  # str
        "record",  # str: the cocoon container that runs it ("" for a pod sandbox)
        "created",  # str: RFC 3339, as the OCI state reports it
        "annotations",  # dict[str, str]
        "pid",  # int: the per-container process (shim); 0 until it runs
        "pid_ticks",  # int | None: its start time, telling a recycled pid apart
        "started",  # bool
        "sandbox",  # bool: a pod sandbox, a host process and no VM (sandbox.py)
    ],
    defaults=(0, None, False, False),
)


def default_root() -> Path:
    """``/run/cocoon-runtime`` for root; the user's runtime folder otherwise (rootless podman)."""
    if os.geteuid() == 0:
        return DEFAULT_ROOT
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/cocoon-{os.getuid()}"
    return Path(base) / DEFAULT_ROOT.name


def use_root(root: Path | None) -> Path:
    """Point cocoon's state and sockets into the runtime's root, and return it."""
    root = (root or default_root()).absolute()
    os.environ["COCOON_STATE_DIR"] = str(root / ".cocoon")
    os.environ["COCOON_RUN_DIR"] = str(root / ".run")
    return root


def check_id(container_id: str) -> str:
    if not _ID.fullmatch(container_id) or container_id in (".", ".."):
        raise InvalidArgument(f"invalid container id {container_id!r}")
    return container_id


def claim(root: Path, container_id: str) -> Path:
    """The id's folder, made now: a second create of the same id fails here."""
    folder = root / check_id(container_id)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        folder.mkdir()
    except FileExistsError:
        raise AlreadyExists(f"container with id {container_id} already exists") from None
    return folder


def save(root: Path, entry: Entry) -> None:
    # Imported here: state, list and kill write nothing.
    from cocoon.files import write_atomic

    write_atomic(root / entry.id / STATE, json.dumps(entry._asdict()).encode())


def load(root: Path, container_id: str) -> Entry:
    path = root / check_id(container_id) / STATE
    try:
        data: dict[str, Any] = json.loads(path.read_bytes())
        return Entry(**data)
    except FileNotFoundError:
        raise NotFound(f"container {container_id} does not exist") from None
    except (ValueError, TypeError) as e:
        raise Corrupt(f"container {container_id}: unreadable state ({e})") from e


def ids(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{STATE}"))


def forget(root: Path, container_id: str) -> None:
    """Remove the id's folder, as far as it goes; never an error.

    File by file, not shutil.rmtree: only files are made there (here and
    by create), and importing shutil (bz2, lzma) was ~2 ms of each delete.
    """
    folder = root / container_id
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            with contextlib.suppress(FileNotFoundError):  # another delete was first
                os.unlink(entry.path)
    with contextlib.suppress(OSError):
        folder.rmdir()


__all__ = [
    "BOOTED",
    "DEFAULT_ROOT",
    "SHIM_LOG",
    "Entry",
    "check_id",
    "claim",
    "default_root",
    "forget",
    "ids",
    "load",
    "save",
    "use_root",
]
