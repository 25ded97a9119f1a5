"""The guest kernel and agent cocoon boots, and the initramfs made from the agent.

setup.sh builds both into the cache dir (``kernel/current/vmlinux`` and
``agent/current/cocoon-agent``); ``COCOON_KERNEL`` and ``COCOON_AGENT`` point
elsewhere. The initramfs is derived from the agent, cached by its hash.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cocoon import paths, sha256
from cocoon.errors import NotFound
from cocoon.files import write_atomic


@dataclass(frozen=True, slots=True)
class Artifacts:
    """The guest kernel, agent and initramfs a VM boots."""

    kernel: Path
    agent: Path
    initrd: Path


# Where setup.sh run as root puts them: other users of the host use those
# when they have not built their own.
SYSTEM_CACHE = Path("/var/cache/cocoon")


def _artifact(env: str, relative: str, what: str) -> Path:
    if value := os.environ.get(env):
        candidates = [Path(value)]
    else:
        candidates = [paths.cache_dir() / relative, SYSTEM_CACHE / relative]
    for path in candidates:
        if path.is_file():
            return path
    raise NotFound(f"{what} {candidates[0]} not found (run ./setup.sh, or set {env})")


def kernel_path() -> Path:
    return _artifact("COCOON_KERNEL", "kernel/current/vmlinux", "guest kernel")


def agent_path() -> Path:
    return _artifact("COCOON_AGENT", "agent/current/cocoon-agent", "guest agent")


def _newc_entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> bytes:
    fields = [
        0, mode, 0, 0, 1, 0, len(data),  # ino, mode, uid, gid, nlink, mtime, filesize
        0, 0, rdev[0], rdev[1],  # dev major/minor, rdev major/minor
        len(name) + 1, 0,  # namesize, check
    ]  # fmt: skip
    header = b"070701" + b"".join(f"{f:08x}".encode() for f in fields)
    entry = header + name.encode() + b"\0"
    entry += b"\0" * (-len(entry) % 4)
    entry += data + b"\0" * (-len(data) % 4)
    return entry


def initramfs_bytes(agent: bytes) -> bytes:
    """A newc cpio with the agent as /init and the nodes it needs before devtmpfs."""
    entries = [
        _newc_entry("dev", stat.S_IFDIR | 0o755),
        _newc_entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        _newc_entry("proc", stat.S_IFDIR | 0o755),
        _newc_entry("sys", stat.S_IFDIR | 0o755),
        _newc_entry("mnt", stat.S_IFDIR | 0o755),
        _newc_entry("newroot", stat.S_IFDIR | 0o755),
        _newc_entry("init", stat.S_IFREG | 0o755, agent),
        _newc_entry("TRAILER!!!", 0),
    ]
    return b"".join(entries)


def initramfs_path(agent: Path) -> Path:
    data = agent.read_bytes()
    key = sha256.hexdigest(data)[:16]
    path = paths.cache_dir() / "initramfs" / f"{key}.cpio"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, initramfs_bytes(data))
    return path


def artifacts() -> Artifacts:
    agent = agent_path()
    return Artifacts(kernel=kernel_path(), agent=agent, initrd=initramfs_path(agent))


def kernel_info() -> dict[str, str]:
    """What `cocoon system kernel` shows: where the kernel is and what built it."""
    path = kernel_path()
    folder = path.resolve().parent

    def read(name: str) -> str:
        try:
            return (folder / name).read_text().strip()
        except OSError:
            return "unknown"

    config = read("config")
    options = sum(1 for line in config.splitlines() if line.endswith("=y"))
    return {
        "path": str(path),
        "build": folder.name,
        "source": f"linux-source-6.1 {read('source-version')}",
        "format": "PVH vmlinux (uncompressed)",
        "size": f"{path.stat().st_size // 1024} KiB",
        "options_built_in": str(options),
    }
