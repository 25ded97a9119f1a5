"""What cocoon asks of a virtual machine, in words no VMM owns.

A :class:`MachineSpec` describes one VM with neutral devices (disks, shared
folders, a network interface, the agent's port); ``backend.create`` hands it
to a backend, which returns a :class:`Machine`. QEMU's ``microvm`` is the one
backend today (``qemu.py``, the only file that knows QEMU's syntax); another
VMM would sit beside it behind the same small interface, as Apple's
containerization keeps its backends side by side behind one protocol.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol


@dataclass(frozen=True, slots=True)
class Disk:
    """A disk image the guest sees as a virtio block device."""

    path: Path
    format: str = "raw"  # or "qcow2", whose backing file the VMM opens read-only
    readonly: bool = False
    serial: str | None = None  # what the guest reads in /sys/block/*/serial to find it


@dataclass(frozen=True, slots=True)
class SharedFolder:
    """A host folder the guest mounts by ``tag`` (virtio-9p)."""

    path: Path
    tag: str
    readonly: bool = False
    # How guest ownership maps to the host's: "passthrough" (as root: the
    # guest's uid is the file's uid) or "mapped-xattr" (without root).
    security_model: str = "passthrough"


@dataclass(frozen=True, slots=True)
class Forward:
    """A host port forwarded into the guest by the VMM's own user-mode stack."""

    protocol: str  # "tcp" or "udp"
    host_ip: str
    host_port: int
    guest_port: int


@dataclass(frozen=True, slots=True)
class Tap:
    """A TAP device already open in this process; the VMM inherits ``fd``."""

    fd: int
    mac: str


@dataclass(frozen=True, slots=True)
class UserNet:
    """The VMM's unprivileged user-mode network (NAT, no address of its own on the host)."""

    subnet: str
    mac: str
    forwards: tuple[Forward, ...] = ()


@dataclass(frozen=True, slots=True)
class Unplugged:
    """A network card with nothing behind it: a memory template's, whose clones get the real one."""

    mac: str


@dataclass(frozen=True, slots=True)
class MemoryFile:
    """Guest RAM in a file: a template boots with it ``shared`` (the file is its
    RAM); each clone maps it copy-on-write and never writes back into it."""

    path: Path
    shared: bool


@dataclass(slots=True)
class MachineSpec:
    """One VM in neutral terms: what ``backend.create`` turns into a VMM's command line."""

    kernel: Path
    initrd: Path
    accel: str  # "kvm" or "tcg"
    cpus: int = 1
    cpu_quota: float | None = None  # CPUs' worth of host time, when less than ``cpus``
    memory_mib: int = 256
    disks: list[Disk] = field(default_factory=list)
    shares: list[SharedFolder] = field(default_factory=list)
    net: Tap | UserNet | Unplugged | None = None
    # Cards after ``net`` (a container on several networks), the guest's eth1, eth2, ...
    more_nets: tuple[Tap | Unplugged, ...] = ()
    agent_socket: Path | None = None  # a listening unix socket the VMM connects to
    control_socket: Path | None = None  # where the VMM serves its control protocol
    console: Path | None = None  # where the guest console goes; None = the VMM's stdout
    params: dict[str, str] = field(default_factory=dict)  # cocoon.KEY=VALUE, not user text
    memory_file: MemoryFile | None = None  # None = RAM of the VM's own
    restore: Path | None = None  # device state saved by Machine.save: resume there, not boot


class Status(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"  # the guest stopped its CPUs (halt) but the VMM lives
    EXITED = "exited"  # the VMM process is gone


class Machine(Protocol):
    """One VM: started once, stopped once; pause and resume in between."""

    spec: MachineSpec

    def start(self) -> None: ...

    @property
    def pid(self) -> int: ...

    @property
    def events(self) -> IO[bytes] | None:
        """Readable once the VMM complains or exits: an event to wait on."""
        ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def stop(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the guest to power off, then kill."""
        ...

    def kill(self) -> None: ...

    def set_memory(self, memory_mib: int) -> None:
        """Shrink (or give back) the running guest's memory, at most what it booted with."""
        ...

    def set_cpu_quota(self, cpus: float) -> None:
        """Cap the running VM at ``cpus`` CPUs of host time, at most its vCPUs."""
        ...

    def set_link(self, index: int, up: bool) -> None:
        """Card ``index`` (0 = ``net``, then ``more_nets``): the guest sees its carrier
        come or go (cards themselves cannot be added or removed while the VM runs)."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def status(self) -> Status: ...

    def save(self, state: Path) -> None:
        """Write the device state to ``state``, which leaves the VM stopped; RAM
        in a shared ``memory_file`` stays in that file, not in ``state``."""
        ...

    def last_words(self) -> str:
        """What the VMM said before it exited (empty while it runs)."""
        ...


__all__ = [
    "Disk",
    "Forward",
    "Machine",
    "MachineSpec",
    "MemoryFile",
    "SharedFolder",
    "Status",
    "Tap",
    "Unplugged",
    "UserNet",
]
