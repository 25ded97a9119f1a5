"""What the agent needs to start a process in the container: the record's and the wire's form.

Plain data, cheap to import: a container's record holds it from creation,
long before the protocol that encodes it (``protocol.encode_run``) is needed
(once the VM runs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """A process to run in the guest: what the agent's RUN carries (``protocol.encode_run``)."""

    args: list[str]
    env: list[str]
    cwd: str = "/"
    user: str = "0:0"
    tty: tuple[int, int] | None = None  # (rows, columns)
    stdin: bool = False
    # (protocol.TarOp, flags, absolute path): the agent's own tar runs instead
    # of args (cp, export); never part of a record.
    tar: tuple[int, int, str] | None = None
    rlimits: tuple[tuple[str, int, int], ...] = ()  # (Docker's name, soft, hard): limits.py
    groups: tuple[str, ...] = ()  # extra group names or numbers, as --group-add
    # A build step's folder, then the lower steps' folders, top first: the
    # process runs in their overlay over the VM's root; never part of a record.
    root: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessSpec:
        tty = data.get("tty")
        return cls(
            args=list(data["args"]),
            env=list(data.get("env", [])),
            cwd=data.get("cwd", "/"),
            user=data.get("user", "0:0"),
            tty=None if tty is None else (int(tty[0]), int(tty[1])),
            stdin=bool(data.get("stdin", False)),
            rlimits=tuple((str(n), int(s), int(h)) for n, s, h in data.get("rlimits", ())),
            groups=tuple(str(g) for g in data.get("groups", ())),
        )


__all__ = ["ProcessSpec"]
