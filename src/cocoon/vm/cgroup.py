"""A VM's CPU quota: its VMM process in a cgroup of its own, with a CFS bandwidth limit.

``--cpus 1.5`` gives the VM 2 vCPUs and its VMM 1.5 CPUs' worth of host time
per period. cgroup v2 (``cpu.max``) where the root enables the cpu
controller, else cgroup v1's cpu hierarchy (``cpu.cfs_quota_us``). Without a
writable one (not root, a read-only ``/sys/fs/cgroup``) the VM keeps whole
vCPUs only; ``--debug`` says so. Groups are named after the VMM's pid and
removed when it is gone: by the owner on a clean stop, else by the next
VM's start (a group whose process died cannot be removed while it has one).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from cocoon.log import Logger

log = Logger(__name__)

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
MIN_QUOTA_US = 1_000  # the kernel refuses less


def _parent() -> tuple[Path, bool] | None:
    """The folder cocoon's groups go in, and whether it is cgroup v2."""
    with contextlib.suppress(OSError):
        if "cpu" in (ROOT / "cgroup.subtree_control").read_text().split():
            return ROOT / "cocoon", True
    if (ROOT / "cpu" / "cpu.cfs_quota_us").exists():
        return ROOT / "cpu" / "cocoon", False
    return None


def _sweep(parent: Path) -> None:
    """Remove the groups of VMMs that are gone (a crashed owner could not)."""
    for group in parent.glob("vm-*"):
        if not Path(f"/proc/{group.name[3:]}").exists():
            with contextlib.suppress(OSError):
                group.rmdir()


def _write_quota(group: Path, v2: bool, cpus: float) -> None:
    quota = max(MIN_QUOTA_US, round(cpus * PERIOD_US))
    if v2:
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
    else:
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota))


def confine(pid: int, cpus: float) -> Path | None:
    """Limit process ``pid`` (and the threads it starts later) to ``cpus`` CPUs of time;
    again for a process already confined changes its quota (``cocoon update``).

    Returns its group's folder, or None when the host does not let us."""
    found = _parent()
    if found is None:
        log.debug("no cgroup cpu controller here: VM %d gets whole vCPUs, no quota", pid)
        return None
    parent, v2 = found
    group = parent / f"vm-{pid}"
    try:
        parent.mkdir(exist_ok=True)
        if v2:
            (parent / "cgroup.subtree_control").write_text("+cpu")
        _sweep(parent)
        group.mkdir(exist_ok=True)
        _write_quota(group, v2, cpus)
        (group / "cgroup.procs").write_text(str(pid))
    except OSError as e:
        log.debug("no CPU quota for VM %d (%s): it gets whole vCPUs", pid, e.strerror or e)
        release(group)
        return None
    log.debug("VM %d limited to %g CPUs in %s", pid, cpus, group)
    return group


def release(group: Path | None) -> None:
    """Remove the group once its process is gone (a no-op while it still runs)."""
    if group is not None:
        with contextlib.suppress(OSError):
            group.rmdir()


__all__ = ["confine", "release"]
