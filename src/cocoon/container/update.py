"""``cocoon update``: a container's memory, CPUs and restart policy, changed in its
record and, where the running VM allows, live.

A stopped container takes any new size at its next start (its VM is made
anew). A running one is changed through its monitor, which owns the VM:
memory can shrink (and grow back up to what it booted with) through the
virtio balloon, except in a VM resumed from a memory template, whose RAM
maps the template's file; the CPU quota (``--cpus`` up to its vCPUs) is a
cgroup's. The number of vCPUs, and memory beyond the boot size, take a
restart. A new restart policy applies from the container's next exit.
Nothing is changed when any part cannot be.
"""

from __future__ import annotations

from cocoon.container import boot, control, events, restart
from cocoon.container import record as records
from cocoon.container.record import Record
from cocoon.container.state import State
from cocoon.errors import CocoonError, InvalidArgument, InvalidState


def update(
    ref: str, *, memory: str | None = None, cpus: float | None = None, policy: str | None = None
) -> Record:
    """Set the container's memory (``512m``), CPUs (``1.5``) and restart policy
    (``on-failure:3``); the updated record."""
    if memory is None and cpus is None and policy is None:
        raise InvalidArgument("update needs --memory, --cpus or --restart")
    rec = records.find(ref)
    if policy is not None and str(restart.parse(policy)) != "no" and rec.remove:
        raise InvalidArgument(
            f"container {rec.name} is removed when it exits (--rm): it cannot restart"
        )
    memory_mib = None if memory is None else boot.parse_memory(memory)
    shape = None if cpus is None else boot.cpu_shape(cpus)
    if rec.state == State.RUNNING:
        _live(rec, memory_mib, cpus, shape)

    def change(r: Record) -> None:
        config = r.settings
        if memory_mib is not None:
            config.memory_mib = memory_mib
        if shape is not None and cpus is not None:
            # Running: the VM keeps its vCPUs, the quota says how much of them.
            vcpus = config.cpus if r.state == State.RUNNING else shape[0]
            config.cpus = vcpus
            config.cpu_quota = None if cpus == vcpus else float(cpus)
        if policy is not None:
            config.restart = policy

    updated = records.update(rec.id, change)
    events.emit("update", updated)
    return updated


def _live(
    rec: Record, memory_mib: int | None, cpus: float | None, shape: tuple[int, float | None] | None
) -> None:
    if shape is not None and shape[0] > rec.settings.cpus:
        raise InvalidState(
            f"container {rec.name} runs with {rec.settings.cpus} vCPUs and vCPUs cannot be "
            f"added to a running VM: stop it, update, start it"
        )
    if not (records.sock_dir(rec.id) / control.SOCKET).exists():
        raise InvalidState(
            f"container {rec.name} runs in the foreground: only a container started "
            f"with -d or start can be updated while it runs"
        )
    try:
        control.request(rec.id, "update", memory_mib=memory_mib, cpus=cpus)
    except CocoonError as e:
        raise type(e)(f"container {rec.name}: {e}") from None


__all__ = ["update"]
