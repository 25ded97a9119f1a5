"""Where cocoon keeps things on the host.

State (images, rootfs disks, containers) lives in ``/var/lib/cocoon`` for
root and ``$XDG_DATA_HOME/cocoon`` otherwise; rebuildable artifacts (kernel,
agent, probe results) in ``/var/cache/cocoon`` or ``$XDG_CACHE_HOME/cocoon``;
settings and registry credentials in ``/etc/cocoon`` or
``$XDG_CONFIG_HOME/cocoon``. ``COCOON_STATE_DIR``, ``COCOON_CACHE_DIR`` and
``COCOON_CONFIG_DIR`` override them, which is how tests keep their own.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(env: str, fallback: str) -> Path:
    value = os.environ.get(env)
    return Path(value) if value else Path.home() / fallback


def state_dir() -> Path:
    if value := os.environ.get("COCOON_STATE_DIR"):
        return Path(value)
    if os.geteuid() == 0:
        return Path("/var/lib/cocoon")
    return _xdg("XDG_DATA_HOME", ".local/share") / "cocoon"


def cache_dir() -> Path:
    if value := os.environ.get("COCOON_CACHE_DIR"):
        return Path(value)
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "cocoon"
    if os.geteuid() == 0:
        return Path("/var/cache/cocoon")
    return Path.home() / ".cache" / "cocoon"


def config_dir() -> Path:
    if value := os.environ.get("COCOON_CONFIG_DIR"):
        return Path(value)
    if os.geteuid() == 0:
        return Path("/etc/cocoon")
    return _xdg("XDG_CONFIG_HOME", ".config") / "cocoon"


def run_dir() -> Path:
    """Sockets and other per-boot files; short paths keep unix sockets legal."""
    if value := os.environ.get("COCOON_RUN_DIR"):
        return Path(value)
    if os.geteuid() == 0:
        return Path("/run/cocoon")
    return Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/cocoon-{os.getuid()}")


def containers_dir() -> Path:
    """The containers' records, one folder each (``container/record.py`` owns them)."""
    return state_dir() / "containers"


def sock_dir(container_id: str) -> Path:
    """The container's sockets (agent port, control); short, as unix socket paths must be.

    Here, not beside the record: clients of a running container's control
    socket (the OCI runtime's every call) then need nothing of the record."""
    return run_dir() / container_id[:12]
