"""An OCI bundle's config.json, read as a VM sees it.

Everything here is hostile input: a field of the wrong type is an
``InvalidArgument``, never a crash. What maps onto a VM is kept (process,
hostname, binds and tmpfs, memory and CPU limits, annotations); what a VM
replaces (namespace paths other than the network's, seccomp, AppArmor,
SELinux labels, cgroup paths, masked and read-only paths, devices) is
ignored, as README's runtime section lists.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocoon.agent.limits import RESOURCES, UNLIMITED, Rlimit, rlimit, rlimits
from cocoon.agent.spec import ProcessSpec
from cocoon.errors import InvalidArgument, Unsupported
from cocoon.volume.mounts import BindMount, Mount, TmpfsMount

CONFIG = "config.json"
SPEC_MAJOR = "1"  # the runtime spec versions served: 1.x
MIN_MEMORY_MIB = 64  # less does not boot the guest kernel
DEFAULT_MEMORY_MIB = 512
DEFAULT_TTY = (24, 80)
MAX_ID = (1 << 32) - 1  # (id_t)-1 means "unchanged" to the kernel: not an id
# Made by the agent in every container (docs/guest-protocol.md): the
# engine's own mounts there are not wanted.
_AGENT_MADE = ("/proc", "/sys", "/dev")


@dataclass(slots=True)
class Bundle:
    """What cocoon takes from an OCI bundle's config.json."""

    path: Path
    root: Path
    readonly_root: bool
    process: ProcessSpec
    terminal: bool
    hostname: str | None
    memory_mib: int
    cpus: int
    mounts: list[Mount] = field(default_factory=list)
    network: str = "none"  # "user" for the host's network, "none" for a private one, "netns"
    netns: str | None = None  # with "netns": the namespace's path
    annotations: dict[str, str] = field(default_factory=dict)


def _get(data: Any, key: str, kind: type, default: Any = None) -> Any:
    if not isinstance(data, dict):
        raise InvalidArgument(f"config.json: expected an object around {key!r}")
    value = data.get(key, default)
    if value is None:
        return default
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise InvalidArgument(f"config.json: {key!r} must be a {kind.__name__}")
    return value


def _strings(data: Any, key: str) -> list[str]:
    values = _get(data, key, list, [])
    if not all(isinstance(v, str) and "\0" not in v for v in values):
        raise InvalidArgument(f"config.json: {key!r} must be a list of strings")
    return list(values)


def process_spec(data: Any) -> tuple[ProcessSpec, bool]:
    """An OCI ``process`` (config.json's, or ``exec --process``), and whether it wants a tty."""
    args = _strings(data, "args")
    if not args:
        raise InvalidArgument("config.json: process.args is empty")
    cwd = _get(data, "cwd", str, "/")
    if not cwd.startswith("/"):
        raise InvalidArgument(f"config.json: process.cwd {cwd!r} is not absolute")
    user = _get(data, "user", dict, {})
    uid, gid = _get(user, "uid", int, 0), _get(user, "gid", int, 0)
    if not (0 <= uid < MAX_ID and 0 <= gid < MAX_ID):
        raise InvalidArgument("config.json: process.user uid/gid out of range")
    terminal = _get(data, "terminal", bool, False)
    tty = None
    if terminal:
        size = _get(data, "consoleSize", dict, {})
        tty = (
            _get(size, "height", int, 0) or DEFAULT_TTY[0],
            _get(size, "width", int, 0) or DEFAULT_TTY[1],
        )
    groups = _get(user, "additionalGids", list, [])
    if not all(isinstance(g, int) and not isinstance(g, bool) and 0 <= g < MAX_ID for g in groups):
        raise InvalidArgument("config.json: process.user.additionalGids must be group ids")
    spec = ProcessSpec(
        args=args,
        env=_strings(data, "env"),
        cwd=cwd,
        user=f"{uid}:{gid}",
        tty=tty,
        stdin=terminal,
        rlimits=_rlimits(data),
        groups=tuple(str(g) for g in dict.fromkeys(groups)),
    )
    return spec, terminal


def _rlimits(process: Any) -> tuple[Rlimit, ...]:
    """``process.rlimits``: ``{"type": "RLIMIT_NOFILE", "soft": N, "hard": N}`` each."""
    found = []
    for item in _get(process, "rlimits", list, []):
        kind = _get(item, "type", str, "")
        name = kind.removeprefix("RLIMIT_").lower()
        if not kind.startswith("RLIMIT_") or name not in RESOURCES:
            raise InvalidArgument(f"config.json: unknown rlimit type {kind!r}")
        soft, hard = _get(item, "soft", int, 0), _get(item, "hard", int, 0)
        if not (0 <= soft <= UNLIMITED and 0 <= hard <= UNLIMITED):
            raise InvalidArgument(f"config.json: rlimit {kind} out of range")
        try:
            found.append(rlimit(name, soft, hard))
        except InvalidArgument as e:
            raise InvalidArgument(f"config.json: {e}") from None
    return rlimits(found)


def _mounts(data: Any) -> list[Mount]:
    result: list[Mount] = []
    for item in _get(data, "mounts", list, []):
        target = _get(item, "destination", str, "")
        if not target.startswith("/"):
            raise InvalidArgument(f"config.json: mount destination {target!r} is not absolute")
        target = os.path.normpath(target)
        if any(target == p or target.startswith(p + "/") for p in _AGENT_MADE):
            continue
        options = _strings(item, "options")
        kind = _get(item, "type", str, "")
        if kind == "bind" or "bind" in options or "rbind" in options:
            source = _get(item, "source", str, "")
            if not source.startswith("/"):
                raise InvalidArgument(f"config.json: bind source {source!r} is not absolute")
            result.append(BindMount(source, target, readonly="ro" in options))
        elif kind == "tmpfs":
            result.append(_tmpfs(target, options))
        # Other kinds (mqueue, cgroup, ...) belong to a kernel the VM has its own of.
    return result


def _tmpfs(target: str, options: list[str]) -> TmpfsMount:
    size, mode = None, None
    for option in options:
        key, _, value = option.partition("=")
        try:
            if key == "size" and value.isdigit():
                size = int(value)
            elif key == "mode":
                mode = int(value, 8)
        except ValueError:
            raise InvalidArgument(f"config.json: tmpfs option {option!r}") from None
    flags = tuple(f for f in ("noexec", "nosuid", "nodev") if f in options)
    if mode is None:
        return TmpfsMount(target, size, flags=flags)
    return TmpfsMount(target, size, mode, flags)


def _limits(linux: Any) -> tuple[int, int]:
    """(memory MiB, vCPUs) from linux.resources: the VM's size is the container's limit."""
    resources = _get(linux, "resources", dict, {})
    limit = _get(_get(resources, "memory", dict, {}), "limit", int, 0)
    memory = DEFAULT_MEMORY_MIB
    if limit > 0:
        memory = math.ceil(limit / (1 << 20))
        if memory < MIN_MEMORY_MIB:
            raise InvalidArgument(f"memory limit {limit} bytes: a VM needs at least 64 MiB")
    cpu = _get(resources, "cpu", dict, {})
    quota, period = _get(cpu, "quota", int, 0), _get(cpu, "period", int, 0)
    cpus = max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else 1
    return memory, min(cpus, os.cpu_count() or 1)


def _network(linux: Any) -> tuple[str, str | None]:
    """The VM's network and the namespace it joins: a namespace the engine made (by
    path) lends the VM its veth; a new one is loopback only; none at all is the host's."""
    for ns in _get(linux, "namespaces", list, []):
        if _get(ns, "type", str, "") != "network":
            continue
        if path := _get(ns, "path", str, ""):
            return "netns", path
        return "none", None
    return "user", None


def load(path: Path) -> Bundle:
    """Read and check ``path``/config.json; InvalidArgument/Unsupported on anything wrong."""
    path = path.absolute()
    try:
        data = json.loads((path / CONFIG).read_bytes())
    except FileNotFoundError:
        raise InvalidArgument(f"bundle {path}: no {CONFIG}") from None
    except OSError as e:
        raise InvalidArgument(f"bundle {path}: {e.strerror}") from None
    except ValueError as e:
        raise InvalidArgument(f"bundle {path}: {CONFIG} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"bundle {path}: {CONFIG} is not a JSON object")
    version = _get(data, "ociVersion", str, "")
    if version.split(".")[0] != SPEC_MAJOR:
        raise Unsupported(f"bundle {path}: ociVersion {version!r} is not supported (1.x is)")
    root_data = _get(data, "root", dict, {})
    root = path / _get(root_data, "path", str, "rootfs")
    if not root.is_dir():
        raise InvalidArgument(f"bundle {path}: root {root} is not a folder")
    process, terminal = process_spec(_get(data, "process", dict, {}))
    linux = _get(data, "linux", dict, {})
    memory, cpus = _limits(linux)
    network, netns = _network(linux)
    annotations = _get(data, "annotations", dict, {})
    return Bundle(
        path=path,
        root=root,
        readonly_root=_get(root_data, "readonly", bool, False),
        process=process,
        terminal=terminal,
        hostname=_get(data, "hostname", str, "") or None,
        memory_mib=memory,
        cpus=cpus,
        mounts=_mounts(data),
        network=network,
        netns=netns,
        annotations={str(k): str(v) for k, v in annotations.items()},
    )


__all__ = ["Bundle", "load", "process_spec"]
