"""What a caller asks for when making a container: the flags of ``run`` and ``create``.

Plain data: checked and turned into a container's configuration by
``boot.create``; the CLI, the library and (later) the API faces fill it in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MEMORY = "512m"


@dataclass(slots=True)
class RunOptions:
    command: Sequence[str] | None = None
    entrypoint: str | None = None
    env: Sequence[str] = ()
    env_files: Sequence[str | Path] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    name: str | None = None
    tty: tuple[int, int] | None = None  # rows, columns
    interactive: bool = False
    cpus: int = 1
    memory: str = DEFAULT_MEMORY
    remove: bool = False
    accel: str = "auto"
    network: str | None = None  # a network's name, "user" or "none"; None = the default
    ip: str | None = None
    dns: Sequence[str] = ()
    add_hosts: Sequence[str] = ()  # NAME:IP
    publish: Sequence[str] = ()  # [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]
    labels: Mapping[str, str] = field(default_factory=dict)  # over the image's own
    stop_signal: str | None = None  # default: the image's StopSignal, else SIGTERM


__all__ = ["DEFAULT_MEMORY", "RunOptions"]
