"""``POST /containers/create``'s body as cocoon's RunOptions.

Every field dockerd would act on is either translated or refused with 501
naming it: a container must never run with a setting silently dropped.
Fields that only describe (``Domainname``, ``AttachStdout``...) are read
and ignored, as they change nothing in a VM.
"""

from __future__ import annotations

from typing import Any

from cocoon.container.options import DEFAULT_MEMORY, RunOptions
from cocoon.errors import InvalidArgument, Unsupported
from cocoon.volume.mounts import Mount, from_flags

DEFAULT_TTY = (24, 80)  # until the client's first resize
# HostConfig fields that change what runs and that cocoon does not do yet:
# a non-empty value is refused, never ignored.
_REFUSED_HOST = ("VolumesFrom", "Devices", "CapAdd", "Links", "Privileged", "PidMode",
                 "IpcMode", "Sysctls")  # fmt: skip
_NANO = 1e9
_CPU_PERIOD = 100_000  # microseconds: the kernel's and dockerd's default


def endpoints(body: dict[str, Any]) -> dict[str, list[str]]:
    """``NetworkingConfig``'s networks (as the client names them), each with its aliases."""
    configs = _object(_object(body.get("NetworkingConfig"), "NetworkingConfig")
                      .get("EndpointsConfig"), "EndpointsConfig")  # fmt: skip
    return {
        str(network): _strings(_object(endpoint, "EndpointConfig").get("Aliases"), "Aliases") or []
        for network, endpoint in configs.items()
    }


def options(
    body: dict[str, Any], name: str | None, platform: str | None = None
) -> tuple[str, RunOptions]:
    """The image named in ``body`` (for ``platform``, the query's), and what to make of it."""
    host = _object(body.get("HostConfig"), "HostConfig")
    image = body.get("Image")
    if not isinstance(image, str) or not image:
        raise InvalidArgument("config is missing the Image")
    _refuse(host, _REFUSED_HOST, "HostConfig")
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
        cpus=_cpus(host) or 1,
        memory=f"{_count(host, 'Memory')}b" if host.get("Memory") else DEFAULT_MEMORY,
        remove=bool(host.get("AutoRemove")),
        network=_network(host.get("NetworkMode")),
        dns=_strings(host.get("Dns"), "Dns") or [],
        dns_search=_strings(host.get("DnsSearch"), "DnsSearch") or [],
        dns_options=_strings(host.get("DnsOptions"), "DnsOptions") or [],
        shm_size=str(_count(host, "ShmSize")) if host.get("ShmSize") else None,
        ulimits=_list(host.get("Ulimits"), "Ulimits"),
        group_add=_strings(host.get("GroupAdd"), "GroupAdd") or [],
        platform=platform or None,
        add_hosts=_strings(host.get("ExtraHosts"), "ExtraHosts") or [],
        publish=publish,
        labels=_object(body.get("Labels"), "Labels"),
        stop_signal=_text(body, "StopSignal"),
        stop_timeout=body.get("StopTimeout"),
        publish_all=bool(host.get("PublishAllPorts")),
        pull="never",  # dockerd answers 404 and the client pulls, showing progress
        mounts=_mounts(body, host),
        read_only=bool(host.get("ReadonlyRootfs")),
        restart=restart_policy(host) or "no",
        healthcheck=_healthcheck(_object(body.get("Healthcheck"), "Healthcheck")),
    )


def _mounts(body: dict[str, Any], host: dict[str, Any]) -> list[Mount]:
    """Binds, Mounts, Tmpfs and the image-style Volumes, through the CLI's own parsers."""
    volumes = _strings(host.get("Binds"), "Binds") or []
    volumes += list(_object(body.get("Volumes"), "Volumes"))  # anonymous volumes
    tmpfs = [
        f"{target}:{_text_value(options, 'Tmpfs')}" if options else target
        for target, options in _object(host.get("Tmpfs"), "Tmpfs").items()
    ]
    mounts = host.get("Mounts") or []
    if not isinstance(mounts, list):
        raise InvalidArgument("Mounts must be a list")
    return from_flags(volumes, [_mount_flag(_object(m, "Mounts entry")) for m in mounts], tmpfs)


def _mount_flag(mount: dict[str, Any]) -> str:
    """One API ``Mounts`` entry as ``--mount`` writes it."""
    words = [f"type={_text_value(mount.get('Type') or 'volume', 'Mounts Type')}"]
    for key, word in (("Source", "source"), ("Target", "target")):
        if mount.get(key):
            words.append(f"{word}={_text_value(mount[key], f'Mounts {key}')}")
    if mount.get("ReadOnly"):
        words.append("readonly")
    if _object(mount.get("VolumeOptions"), "VolumeOptions").get("NoCopy"):
        words.append("volume-nocopy")
    tmpfs = _object(mount.get("TmpfsOptions"), "TmpfsOptions")
    if tmpfs.get("SizeBytes"):
        words.append(f"tmpfs-size={_count(tmpfs, 'SizeBytes')}")
    if tmpfs.get("Mode"):
        words.append(f"tmpfs-mode={_count(tmpfs, 'Mode'):o}")
    return ",".join(words)


def _text_value(value: Any, what: str) -> str:
    # --mount's own syntax: a comma would start another option.
    if not isinstance(value, str) or "," in value:
        raise InvalidArgument(f"{what} must be a string without commas")
    return value


def restart_policy(host: dict[str, Any]) -> str | None:
    """``RestartPolicy`` as ``--restart`` writes it; None when it names none."""
    from cocoon.container.restart import from_docker

    return from_docker(_object(host.get("RestartPolicy"), "RestartPolicy"))


def _cpus(host: dict[str, Any]) -> float | None:
    """``NanoCpus``, or ``CpuQuota`` over ``CpuPeriod`` (100 ms unless given), as a
    fraction of CPUs; None when neither is set."""
    if host.get("NanoCpus"):
        return _count(host, "NanoCpus") / _NANO
    if host.get("CpuQuota"):
        return _count(host, "CpuQuota") / (_count(host, "CpuPeriod") or _CPU_PERIOD)
    return None


# What POST /containers/{id}/update can change; any other field set is refused.
_UPDATABLE = ("Memory", "NanoCpus", "CpuQuota", "CpuPeriod", "RestartPolicy")


def update(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /containers/{id}/update``'s body as ``container.update``'s arguments."""
    for key, value in body.items():
        if key not in _UPDATABLE and value not in (None, 0, "", [], {}):
            raise Unsupported(f"cocoon does not serve updating {key}")
    return {
        "memory": f"{_count(body, 'Memory')}b" if body.get("Memory") else None,
        "cpus": _cpus(body),
        "policy": restart_policy(body),
    }


def _healthcheck(check: dict[str, Any]) -> dict[str, Any] | None:
    """The API's Healthcheck (durations in nanoseconds; 0 = the default) in docker-py's shape."""
    if not check:
        return None
    fields: dict[str, Any] = {}
    if check.get("Test"):
        fields["test"] = _strings(check["Test"], "Healthcheck Test")
    for key, name in (("Interval", "interval"), ("Timeout", "timeout"),
                      ("StartPeriod", "start_period")):  # fmt: skip
        if check.get(key):
            fields[name] = _count(check, key) / _NANO
    if check.get("Retries"):
        fields["retries"] = _count(check, "Retries")
    return fields or None


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


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"{what} must be a list")
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


__all__ = ["endpoints", "options", "restart_policy", "update"]
