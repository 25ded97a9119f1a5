"""Memory templates built ahead of the first container (``cocoon system warm``).

A template is otherwise built by the first container of its shape, which
pays for one cold boot and a save. Warming builds the shapes a plain
``cocoon run IMAGE`` asks for: one without mounts and one with a single
bind mount (``-v $PWD:/src``), on the default network. The root disk is a
slot whose size is not part of a shape (see ``vm/template.py``), so one
template serves every image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from cocoon.container import network
from cocoon.container.boot import DISK, ROOT_DEVICE, parse_memory
from cocoon.container.options import RunOptions
from cocoon.errors import ExternalError
from cocoon.vm import accel as accelerators
from cocoon.vm import machine as vms
from cocoon.vm import template as templates
from cocoon.vm.artifacts import artifacts
from cocoon.volume.plan import share_tag

# What the clones of a warmed template put behind its slots is their own:
# these paths are never opened.
_ROOT_SLOT = vms.Disk(Path(DISK), "qcow2")
_SHARE_SLOT = vms.SharedFolder(Path("/"), share_tag(0))


@dataclass(frozen=True, slots=True)
class Warmed:
    key: str
    what: str  # the shape, in words
    built: bool  # False: it was there already
    seconds: float


def _specs() -> dict[str, vms.MachineSpec]:
    opts = RunOptions()
    arts = artifacts()
    nic = network.default_network() != "none"
    base = vms.MachineSpec(
        kernel=arts.kernel,
        initrd=arts.initrd,
        accel=accelerators.choose(opts.accel, arts.kernel, arts.initrd),
        cpus=opts.cpus,
        memory_mib=parse_memory(opts.memory),
        disks=[_ROOT_SLOT],
        net=vms.Unplugged(templates.TEMPLATE_MAC) if nic else None,
        params={"root": ROOT_DEVICE},
    )
    where = "network" if nic else "no network"
    size = f"{base.memory_mib} MiB, {base.cpus} vCPU, {where}"
    return {
        f"{size}, no mounts": base,
        f"{size}, one bind mount": replace(base, shares=[_SHARE_SLOT]),
    }


def warm() -> list[Warmed]:
    """Build the default shapes' templates that are not there yet."""
    if (reason := templates.unavailable()) is not None:
        raise ExternalError(f"no memory templates here: {reason}")
    done = []
    for what, spec in _specs().items():
        t0 = time.monotonic()
        key = templates.key(spec)
        built = not templates.Template(templates.folder() / key).state.exists()
        templates.ensure(spec)
        done.append(Warmed(key, what, built, time.monotonic() - t0))
    return done


__all__ = ["Warmed", "warm"]
