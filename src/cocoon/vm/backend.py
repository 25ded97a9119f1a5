"""Which VMM runs a machine: the one place that picks a backend for ``machine.MachineSpec``."""

from __future__ import annotations

from cocoon.vm.machine import Machine, MachineSpec


def create(spec: MachineSpec) -> Machine:
    """A machine for ``spec`` from the one backend there is, QEMU's microvm."""
    from cocoon.vm.qemu import QemuMachine  # QEMU's module only when a VM is made

    return QemuMachine(spec)


def room(*, nics: int) -> int:
    """How many disks and shared folders (the root included) a container's
    VM, which has an agent port, can have beside ``nics`` network cards."""
    from cocoon.vm.qemu import room

    return room(agent=True, nics=nics)


__all__ = ["create", "room"]
