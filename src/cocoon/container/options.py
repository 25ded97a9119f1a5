"""What a caller asks for when making a container: the flags of ``run`` and ``create``.

Plain data: checked and turned into a container's configuration by
``boot.create``; the CLI, the library and (later) the API faces fill it in.
The shapes a Python caller naturally passes are made uniform here, once:
a command given as one string is split as a POSIX shell would split it
(``"echo hi"`` is ``["echo", "hi"]``, never ``["e", "c", ...]``), and an
environment given as a mapping becomes ``K=V`` entries.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocoon.agent.limits import Rlimit, group, parse_ulimit, rlimit, rlimits
from cocoon.container.restart import parse as restart_policy
from cocoon.errors import InvalidArgument
from cocoon.signals import parse_signal
from cocoon.volume.mounts import Mount

DEFAULT_MEMORY = "256m"


@dataclass(slots=True)
class RunOptions:
    """What a caller asks of a container (``cocoon run``'s flags, the API's body)."""

    command: Sequence[str] | None = None
    entrypoint: str | None = None
    env: Sequence[str] = ()
    env_files: Sequence[str | Path] = ()
    workdir: str | None = None
    user: str | None = None
    group_add: Sequence[str | int] = ()  # extra groups, names or ids (--group-add)
    # "NAME=SOFT[:HARD]" (--ulimit) or the API's {"Name", "Soft", "Hard"}; kept as
    # (name, soft, hard), one per resource
    ulimits: Sequence[str | Mapping[str, Any] | Rlimit] = ()
    hostname: str | None = None
    name: str | None = None
    tty: tuple[int, int] | None = None  # rows, columns
    interactive: bool = False
    cpus: float = 1  # a fraction is rounded up to whole vCPUs and kept as a CPU quota
    memory: str = DEFAULT_MEMORY
    remove: bool = False
    accel: str = "auto"
    template: bool = True  # resume a memory template where the VM's shape allows
    network: str | None = None  # a network's name, "user" or "none"; None = the default
    more_networks: Sequence[str] = ()  # cocoon networks it is on too, a card on each
    ip: str | None = None
    dns: Sequence[str] = ()
    add_hosts: Sequence[str] = ()  # NAME:IP
    publish: Sequence[str] = ()  # [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]
    storage_opts: Sequence[str] = ()  # KEY=VALUE, Docker's --storage-opt: size=SIZE
    mounts: Sequence[Mount] = ()  # cocoon.volume.mounts.from_flags(-v, --mount, --tmpfs)
    read_only: bool = False  # the container's root filesystem
    labels: Mapping[str, str] = field(default_factory=dict)  # over the image's own
    stop_signal: str | None = None  # default: the image's StopSignal, else SIGTERM
    publish_all: bool = False  # -P: every port the image exposes, on free host ports
    pull: str = "missing"  # always | missing | never, as docker run --pull
    stop_timeout: int | None = None  # seconds stop waits before forcing; default 10
    restart: str = "no"  # no | on-failure[:N] | always | unless-stopped
    # docker-py's healthcheck: test, interval, timeout, retries, start_period; over the
    # image's HEALTHCHECK; {"test": ["NONE"]} turns that off.
    healthcheck: Mapping[str, Any] | None = None
    dns_search: Sequence[str] = ()  # resolv.conf's search domains
    dns_options: Sequence[str] = ()  # resolv.conf's options, NAME[:VALUE]
    network_aliases: Sequence[str] = ()  # more names peers on its network resolve
    shm_size: str | None = None  # /dev/shm's size, e.g. 64m; None = the guest kernel's default
    platform: str | None = None  # only the host's own (linux/amd64 here) can run

    def __post_init__(self) -> None:
        self.command = command_list(self.command, "command")
        self.env = env_list(self.env)
        self.labels = string_map(self.labels, "labels")
        self.ulimits = rlimit_list(self.ulimits)
        if isinstance(self.group_add, (str, bytes)) or not isinstance(self.group_add, Sequence):
            raise InvalidArgument("group_add must be a list of group names or ids")
        self.group_add = [group(g) for g in self.group_add]
        lists = ("env_files", "dns", "add_hosts", "publish", "storage_opts", "dns_search",
                 "dns_options", "network_aliases", "more_networks")  # fmt: skip
        for name in lists:
            setattr(self, name, string_list(getattr(self, name), name))
        if self.stop_signal is not None:
            parse_signal(self.stop_signal)  # refused now, not when the container stops
        if str(restart_policy(self.restart)) != "no" and self.remove:
            raise InvalidArgument("--restart and --rm conflict: a removed container cannot restart")
        timeout = self.stop_timeout
        if timeout is not None and (not isinstance(timeout, int) or timeout < 0):
            raise InvalidArgument(f"stop timeout {timeout!r}: use whole seconds, 0 or more")


def rlimit_list(value: object) -> tuple[Rlimit, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidArgument("ulimits must be a list of NAME=SOFT[:HARD]")
    found = []
    for item in value:
        if isinstance(item, str):
            found.append(parse_ulimit(item))
        elif isinstance(item, Mapping) and {"Name", "Soft", "Hard"} <= item.keys():
            found.append(rlimit(str(item["Name"]), int(item["Soft"]), int(item["Hard"])))
        elif isinstance(item, tuple) and len(item) == 3:
            found.append(rlimit(str(item[0]), int(item[1]), int(item[2])))
        else:
            raise InvalidArgument(f"ulimit {item!r}: use NAME=SOFT[:HARD]")
    return rlimits(found)


def command_list(value: str | Sequence[str] | None, what: str) -> list[str] | None:
    """A command as a list of arguments; one string is split as the shell would."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise InvalidArgument(f"{what} {value!r}: {e}") from None
    return string_list(value, what)


def string_list(value: object, what: str) -> list[str]:
    """A list of strings, refusing one string (its characters are not what was meant)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidArgument(f"{what} must be a list of strings, not {type(value).__name__}")
    if not all(isinstance(v, (str, Path)) for v in value):
        raise InvalidArgument(f"{what} must be a list of strings")
    return [str(v) for v in value]


def string_map(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be a mapping of strings")
    if not all(isinstance(k, str) and k for k in value):
        raise InvalidArgument(f"{what}: every key must be a non-empty string")
    return {k: str(v) for k, v in value.items()}


def env_list(value: Mapping[str, object] | Sequence[str] | None) -> list[str]:
    """``{"A": "1"}`` or ``["A=1"]`` as ``["A=1"]``; ``{"A": None}`` copies A from here."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return string_list(value, "env")
    if not all(isinstance(k, str) and k and "=" not in k for k in value):
        raise InvalidArgument("env: every name must be a non-empty string without '='")
    return [k if v is None else f"{k}={v}" for k, v in value.items()]


__all__ = ["DEFAULT_MEMORY", "RunOptions", "command_list", "env_list", "string_list"]
