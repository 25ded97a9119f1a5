"""``_ping``, ``version`` and ``info``: what clients ask before anything else."""

from __future__ import annotations

import os
from typing import Any

from cocoon import __version__
from cocoon.image.model import Platform
from cocoon.service.http import API_VERSION, MIN_API_VERSION, Request

# The Engine release whose API (1.41) cocoon speaks: clients compare it.
ENGINE_VERSION = "20.10.0"


def ping(req: Request) -> None:
    req.handler.reply_bytes(200, b"OK", "text/plain; charset=utf-8")


def version(req: Request) -> dict[str, Any]:
    uname = os.uname()
    return {
        "Platform": {"Name": f"cocoon {__version__}"},
        "Components": [{"Name": "cocoon", "Version": __version__, "Details": {}}],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": Platform.host().architecture,
        "KernelVersion": uname.release,
        "BuildTime": "",
    }


def info(req: Request) -> dict[str, Any]:
    from cocoon import paths
    from cocoon.container import manager
    from cocoon.container.state import State
    from cocoon.image.store import ImageStore

    containers = manager.containers(all=True)
    uname = os.uname()

    def count(state: State) -> int:
        return sum(1 for c in containers if c.state == state)

    return {
        "ID": "",
        "Name": uname.nodename,
        "Containers": len(containers),
        "ContainersRunning": count(State.RUNNING),
        "ContainersPaused": 0,
        "ContainersStopped": len(containers) - count(State.RUNNING),
        "Images": len(ImageStore().images()),
        "Driver": "cocoon",
        "DriverStatus": [],
        "DockerRootDir": str(paths.state_dir()),
        "OperatingSystem": f"cocoon {__version__} (one microVM per container)",
        "OSType": "linux",
        "OSVersion": "",
        "Architecture": uname.machine,
        "KernelVersion": uname.release,
        "NCPU": os.cpu_count() or 1,
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "ServerVersion": ENGINE_VERSION,
        "DefaultRuntime": "cocoon",
        "Runtimes": {"cocoon": {"path": "cocoon"}},
        "SecurityOptions": [],
        "Plugins": {"Volume": [], "Network": ["bridge", "null"], "Log": ["json-file"]},
        "LoggingDriver": "json-file",
        "CgroupDriver": "none",
        "Labels": [],
        "ExperimentalBuild": False,
        "Swarm": {"LocalNodeState": "inactive"},
    }


__all__ = ["ENGINE_VERSION", "info", "ping", "version"]
