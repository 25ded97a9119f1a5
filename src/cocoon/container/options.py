"""What a caller asks for when making a container: the flags of ``run`` and ``create``.

Plain data: checked and turned into a container's configuration by
``boot.create``; the CLI, the library and (later) the API faces fill it in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cocoon.volume.mounts import Mount

DEFAULT_MEMORY = "256m"


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
    template: bool = True  # resume a memory template where the VM's shape allows
    network: str | None = None  # a network's name, "user" or "none"; None = the default
    ip: str | None = None
    dns: Sequence[str] = ()
    add_hosts: Sequence[str] = ()  # NAME:IP
    publish: Sequence[str] = ()  # [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]
    storage_opts: Sequence[str] = ()  # KEY=VALUE, Docker's --storage-opt: size=SIZE
    mounts: Sequence[Mount] = ()  # cocoon.volume.mounts.from_flags(-v, --mount, --tmpfs)
    read_only: bool = False  # the container's root filesystem


__all__ = ["DEFAULT_MEMORY", "RunOptions"]
