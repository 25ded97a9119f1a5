"""``POST /containers/create``'s body as cocoon's RunOptions.

Every field dockerd would act on is either translated or refused with 501
naming it: a container must never run with a setting silently dropped.
Fields that only describe (``Domainname``, ``AttachStdout``...) are read
and ignored, as they change nothing in a VM.
"""

from __future__ import annotations

import math
from typing import Any

from cocoon.container.options import DEFAULT_MEMORY, RunOptions
from cocoon.errors import InvalidArgument, Unsupported

DEFAULT_TTY = (24, 80)  # until the client's first resize
# HostConfig fields that change what runs and that cocoon does not do yet:
# a non-empty value is refused, never ignored.
_REFUSED_HOST = ("Binds", "Mounts", "Tmpfs", "VolumesFrom", "Devices", "CapAdd", "Links",
                 "Privileged", "ReadonlyRootfs", "PidMode", "IpcMode", "Sysctls")  # fmt: skip
_REFUSED_CONFIG = ("Volumes", "Healthcheck")


def aliases(body: dict[str, Any]) -> list[str]:
    """The names ``NetworkingConfig`` gives the container on its network."""
    endpoints = _object(_object(body.get("NetworkingConfig"), "NetworkingConfig")
                        .get("EndpointsConfig"), "EndpointsConfig")  # fmt: skip
    if len(endpoints) > 1:
        raise Unsupported("cocoon containers join one network (EndpointsConfig has several)")
    names: list[str] = []
    for endpoint in endpoints.values():
        names += _strings(_object(endpoint, "EndpointConfig").get("Aliases"), "Aliases") or []
    return names


def options(body: dict[str, Any], name: str | None) -> tuple[str, RunOptions]:
    """The image named in ``body``, and what to make of it."""
    host = _object(body.get("HostConfig"), "HostConfig")
    image = body.get("Image")
    if not isinstance(image, str) or not image:
        raise InvalidArgument("config is missing the Image")
    _refuse(host, _REFUSED_HOST, "HostConfig")
    _refuse(body, _REFUSED_CONFIG, "")
    policy = _object(host.get("RestartPolicy"), "RestartPolicy").get("Name") or "no"
    if policy != "no":
        raise Unsupported(f"cocoon does not serve HostConfig.RestartPolicy {policy!r}")
    # The API's string form of a command is one argument (Go's strslice), not a shell line.
    command, entrypoint = body.get("Cmd"), body.get("Entrypoint")
    command = [command] if isinstance(command, str) else _strings(command, "Cmd")
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    first = None
    if entrypoint is not None:
        # Docker runs the entrypoint list's head, its rest before the command.
        head = _strings(entrypoint, "Entrypoint") or [""]
        first, command = head[0], head[1:] + (command or [])
    publish = _publish(_object(host.get("PortBindings"), "PortBindings"))
    return image, RunOptions(
        command=command,
        entrypoint=first,
        env=_strings(body.get("Env"), "Env") or [],
        workdir=_text(body, "WorkingDir"),
        user=_text(body, "User"),
        hostname=_text(body, "Hostname"),
        name=name or None,
        tty=DEFAULT_TTY if body.get("Tty") else None,
        interactive=bool(body.get("OpenStdin")),
        cpus=max(1, math.ceil(_count(host, "NanoCpus") / 1e9)),
        memory=f"{_count(host, 'Memory')}b" if host.get("Memory") else DEFAULT_MEMORY,
        remove=bool(host.get("AutoRemove")),
        network=_network(host.get("NetworkMode")),
        dns=_strings(host.get("Dns"), "Dns") or [],
        add_hosts=_strings(host.get("ExtraHosts"), "ExtraHosts") or [],
        publish=publish,
        labels=_object(body.get("Labels"), "Labels"),
        stop_signal=_text(body, "StopSignal"),
        stop_timeout=body.get("StopTimeout"),
        publish_all=bool(host.get("PublishAllPorts")),
        pull="never",  # dockerd answers 404 and the client pulls, showing progress
    )


def _text(section: dict[str, Any], key: str) -> str | None:
    value = section.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{key} must be a string")
    return value or None


def _count(section: dict[str, Any], key: str) -> int:
    value = section.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"{key} must be a whole number, 0 or more")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value


def _strings(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{what} must be a list of strings")
    return value


def _refuse(section: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if section.get(key):
            name = f"{where}.{key}" if where else key
            raise Unsupported(f"cocoon does not serve {name} yet")


def _network(mode: Any) -> str | None:
    if mode in (None, "", "default", "bridge"):
        return None  # cocoon's default network
    if not isinstance(mode, str):
        raise InvalidArgument("NetworkMode must be a string")
    if mode == "host" or mode.startswith(("container:", "service:")):
        raise Unsupported(f"cocoon does not serve NetworkMode {mode!r}: each container is a VM")
    return mode


def _publish(bindings: dict[str, Any]) -> list[str]:
    """``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`` as ``-p`` specs."""
    specs = []
    for port, targets in bindings.items():
        for target in targets or [{}]:
            target = _object(target, "PortBindings entry")
            host_ip, host_port = target.get("HostIp") or "", target.get("HostPort") or ""
            if host_ip:
                specs.append(f"{host_ip}:{host_port}:{port}")
            elif host_port:
                specs.append(f"{host_port}:{port}")
            else:
                specs.append(port)
    return specs


__all__ = ["aliases", "options"]
