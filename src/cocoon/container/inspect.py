"""A container's details in Docker's shape: what ``cocoon inspect`` prints and the API serves.

Scripts written for ``docker inspect`` (``{{.State.Status}}``,
``.NetworkSettings.IPAddress``) work unchanged; what only a VM has (the
monitor's and QEMU's pids, the accelerator, the connection mode) is under
``Cocoon``. Keys follow Docker's names and casing, values its units (bytes,
nano-CPUs, RFC 3339 times, a ``/``-prefixed name).
"""

from __future__ import annotations

from typing import Any

from cocoon.container import control, health, restart, volumes
from cocoon.container import record as records
from cocoon.container.config import NetworkSettings
from cocoon.container.record import Record
from cocoon.container.state import State
from cocoon.stamps import ago, duration, rfc3339

NANO = 1_000_000_000
MIB = 1 << 20
# Docker's zero time, for a container that never started or finished.
ZERO_TIME = "0001-01-01T00:00:00Z"


def status(rec: Record, now: float) -> str:
    """The STATUS column of ``docker ps`` (``Up 5 minutes (healthy)``, ``Exited (0) 2
    hours ago``): ``cocoon ls`` and the API's container list."""
    if rec.state == State.RUNNING:
        up = f"Up {duration(now - (rec.started or now))}"
        if control.paused(rec.id):
            return f"{up} (Paused)"
        state = health.read(rec.id)
        return f"{up} ({state['Status']})" if state else up
    if rec.state == State.CREATED:
        return "Created"
    code = "?" if rec.exit_code is None else rec.exit_code
    text = f"Exited ({code}) {ago(rec.finished or now)}"
    return f"{text}: {rec.error}" if rec.error and rec.exit_code is None else text


def view(rec: Record) -> dict[str, Any]:
    """``rec`` (brought up to date by the caller) as ``docker inspect`` shows a container."""
    config = rec.settings
    process = config.process
    running = rec.state == State.RUNNING
    paused = running and control.paused(rec.id)
    return {
        "Id": rec.id,
        "Name": f"/{rec.name}",
        "Created": rfc3339(rec.created),
        "Path": process.args[0] if process.args else "",
        "Args": process.args[1:],
        "State": {
            "Status": "paused" if paused else rec.state.value,
            "Running": running,
            "Paused": paused,
            "Restarting": False,
            "Dead": False,
            "Pid": rec.monitor_pid if running else 0,
            "ExitCode": rec.exit_code or 0,
            "Error": rec.error or "",
            "StartedAt": rfc3339(rec.started) or ZERO_TIME,
            "FinishedAt": rfc3339(rec.finished) or ZERO_TIME,
            "Health": health.read(rec.id) if running else None,
        },
        "Image": rec.image_id,
        "LogPath": str(records.folder(rec.id) / "container.log"),
        "Config": {
            "Hostname": config.hostname,
            "User": process.user,
            "Tty": process.tty is not None,
            "OpenStdin": process.stdin,
            "Env": list(process.env),
            "Cmd": rec.command,
            "Image": rec.image,
            "WorkingDir": process.cwd,
            "Labels": dict(config.labels),
            "StopSignal": config.stop_signal,
        },
        "HostConfig": {
            "NanoCpus": round((config.cpu_quota or config.cpus) * NANO),
            "Memory": config.memory_mib * MIB,
            "AutoRemove": rec.remove,
            "RestartPolicy": restart.to_docker(config.restart),
            "NetworkMode": config.network.network or config.network.mode,
            "PortBindings": _bindings(config.network),
            "Dns": list(config.network.dns),
            "DnsSearch": list(config.network.dns_search),
            "DnsOptions": list(config.network.dns_options),
            "ShmSize": config.shm_size or 0,
            "ExtraHosts": list(config.network.add_hosts),
            "ReadonlyRootfs": config.read_only,
            "StorageOpt": {"size": str(config.disk_size)} if config.disk_size else None,
        },
        "NetworkSettings": _network(config.network),
        "Mounts": volumes.view(config.mounts),
        "Cocoon": {
            "MonitorPid": rec.monitor_pid if running else None,
            "VmPid": rec.vm_pid if running else None,
            "Accel": config.accel,
            "Cpus": config.cpus,  # vCPUs; NanoCpus has the quota when it is a fraction
            "MemoryMiB": config.memory_mib,
            "NetworkMode": config.network.mode,
            "ExitCode": rec.exit_code,  # None when it never exited on its own
        },
    }


def _port_key(container_port: int, protocol: str) -> str:
    return f"{container_port}/{protocol}"


def _bindings(settings: NetworkSettings) -> dict[str, list[dict[str, str]]]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in settings.ports:
        bindings.setdefault(_port_key(p.container_port, p.protocol), []).append(
            {"HostIp": p.host_ip, "HostPort": str(p.host_port)}
        )
    return bindings


def _endpoint(ip: str | None, prefix: int | None, gateway: str | None, mac: str | None) -> dict:
    return {"IPAddress": ip or "", "IPPrefixLen": prefix or 0, "Gateway": gateway or "",
            "MacAddress": mac or ""}  # fmt: skip


def _network(settings: NetworkSettings) -> dict[str, Any]:
    """The first network's card at the top, as Docker; every network's under ``Networks``."""
    endpoint = _endpoint(settings.ip, settings.prefix, settings.gateway, settings.mac)
    name = settings.network or settings.mode
    networks = {} if settings.mode == "none" else {name: dict(endpoint)}
    for more in settings.more:
        networks[more.network] = _endpoint(more.ip, more.prefix, more.gateway, more.mac)
    return {**endpoint, "Ports": _bindings(settings), "Networks": networks}


__all__ = ["status", "view"]
