"""A container's record on disk: one JSON file per container, written atomically.

Records live in ``<state>/containers/<id>/container.json``; the folder also
holds the container's writable disk, console log and output log. Readers never
lock (every write is a rename); read-modify-write goes through :func:`update`,
which holds the container's lock so two cocoon commands cannot lose each
other's changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from cocoon import paths
from cocoon.container.config import ContainerConfig
from cocoon.container.state import State
from cocoon.errors import AlreadyExists, Corrupt, InvalidArgument, NotFound
from cocoon.files import write_atomic
from cocoon.locks import flock
from cocoon.paths import sock_dir as sock_dir  # where callers have always found it

_ADJECTIVES = ("brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid",
               "merry", "nifty", "proud", "quiet", "swift", "tidy", "vivid", "wise")  # fmt: skip
_NOUNS = ("ant", "bee", "crane", "finch", "gecko", "heron", "ibis", "koala", "lark", "lynx",
          "moth", "newt", "otter", "panda", "quail", "robin", "wren")  # fmt: skip


@dataclass(slots=True)
class Record:
    """One container on disk: identity, state, exit and configuration (``container.json``)."""

    id: str
    name: str
    image: str
    image_id: str
    command: list[str]
    created: float
    state: State = State.CREATED  # see cocoon.container.state
    exit_code: int | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    config: ContainerConfig | None = None  # None only while the container is being made
    monitor_pid: int | None = None
    vm_pid: int | None = None
    vm_start_ticks: int | None = None  # with vm_pid: tells a recycled pid apart
    remove: bool = False  # --rm: the monitor removes the container when it exits

    @property
    def settings(self) -> ContainerConfig:
        """The configuration, which every record past creation has."""
        if self.config is None:
            raise Corrupt(f"container {self.name} has no configuration (its creation failed)")
        return self.config

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = State(self.state).value
        data["config"] = None if self.config is None else self.config.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["state"] = State(values.get("state", State.CREATED))
        config = values.get("config")
        # Records made before configurations were typed kept {} until set.
        values["config"] = ContainerConfig.from_json(config) if config else None
        return cls(**values)


def root() -> Path:
    return paths.containers_dir()


def folder(container_id: str) -> Path:
    return root() / container_id


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise claims on names across concurrent cocoon processes."""
    root().mkdir(parents=True, exist_ok=True)
    with flock(root() / ".lock"):
        yield


@contextlib.contextmanager
def locked(container_id: str) -> Iterator[None]:
    """Hold one container's lock: for read-modify-write of its record."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(flock(folder(container_id) / ".lock"))
        except FileNotFoundError as e:  # removed meanwhile
            raise NotFound(f"no such container: {container_id[:12]}") from e
        yield


def update(container_id: str, change: Callable[[Record], None]) -> Record:
    """Load, ``change`` and save a record under its lock; the saved record."""
    with locked(container_id):
        record = load(container_id)
        change(record)
        save(record)
    return record


def save(record: Record) -> None:
    write_atomic(folder(record.id) / "container.json", json.dumps(record.to_json()).encode())


def _read(path: Path) -> Record:
    try:
        return Record.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as e:
        raise Corrupt(f"container record {path} is damaged: {e}") from e


def load(container_id: str) -> Record:
    try:
        return _read(folder(container_id) / "container.json")
    except FileNotFoundError as e:
        raise NotFound(f"no such container: {container_id}") from e


def all_records() -> list[Record]:
    records = []
    for path in root().glob("*/container.json") if root().exists() else ():
        with contextlib.suppress(FileNotFoundError, Corrupt):
            records.append(_read(path))
    return records


def _below(n: int) -> int:
    # From os.urandom, not random or secrets: every monitor imports this
    # module, and those would stay in its memory; 64 bits make the modulo's
    # bias nothing a name could show.
    return int.from_bytes(os.urandom(8)) % n


def _random_name() -> str:
    return f"{_ADJECTIVES[_below(len(_ADJECTIVES))]}_{_NOUNS[_below(len(_NOUNS))]}_{_below(1000)}"


def _check_name(name: str) -> None:
    if not name.replace("_", "a").replace("-", "a").replace(".", "a").isalnum():
        raise InvalidArgument(f"invalid container name {name!r} (use letters, digits, _ . -)")


def rename(container_id: str, name: str) -> None:
    """Give a container a new unique name (``docker rename``)."""
    _check_name(name)
    with _locked():
        if any(r.name == name for r in all_records()):
            raise AlreadyExists(f"the container name {name!r} is already in use")
        update(container_id, lambda r: setattr(r, "name", name))


def create(record_fields: dict[str, object], name: str | None) -> Record:
    """Claim an id and a unique name, and write the first record."""
    if name is not None:
        _check_name(name)
    with _locked():
        taken = {r.name for r in all_records()}
        if name in taken:
            raise AlreadyExists(f"the container name {name!r} is already in use")
        while name is None or name in taken:
            name = _random_name()
        record = Record(id=os.urandom(32).hex(), name=name, **record_fields)  # type: ignore[arg-type]
        folder(record.id).mkdir(parents=True)
        save(record)
    return record


def find(ref: str) -> Record:
    """A container by full id, name, or unique id prefix, like Docker."""
    everything = all_records()
    for record in everything:
        if ref in (record.id, record.name):
            return record
    matches = [r for r in everything if ref and r.id.startswith(ref)]
    if len(matches) > 1:
        raise InvalidArgument(f"container id prefix {ref!r} is ambiguous")
    if not matches:
        raise NotFound(f"no such container: {ref}")
    return matches[0]


def exists(container_id: str) -> bool:
    """Whether the container still has a record: volumes and leases name containers
    that may be gone since."""
    return (folder(container_id) / "container.json").exists()


def remove(container_id: str) -> None:
    shutil.rmtree(folder(container_id), ignore_errors=True)
