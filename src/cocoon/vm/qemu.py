"""QEMU microvm: the command line and the process that runs it.

The VMM is an external program; cocoon only decides what to ask of it. Every
device is virtio-mmio on the kernel command line (``acpi=off`` makes QEMU
append them), which is what the guest kernel's minimal config expects.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cocoon import tools
from cocoon.errors import ExternalError, Timeout

QEMU = "qemu-system-x86_64"

# Kernel arguments that shorten boot: no console probing chatter, no timer
# sanity checks that are slow under emulation, reboot by triple fault so the
# guest's reboot(2) makes QEMU (with -no-reboot) exit at once. noreplace-smp:
# on one vCPU the kernel would otherwise rewrite every lock prefix in its text
# to a no-op, thousands of code writes that emulation pays ~0.1 s for.
BASE_CMDLINE = (
    "console=ttyS0 quiet loglevel=4 reboot=t panic=-1 "
    "tsc=reliable no_timer_check lpj=5000000 8250.nr_uarts=1 "
    "random.trust_cpu=on cryptomgr.notests noreplace-smp"
)


@dataclass(frozen=True, slots=True)
class Disk:
    path: Path
    format: str = "raw"  # or "qcow2", whose backing file QEMU opens read-only


@dataclass(slots=True)
class MachineConfig:
    kernel: Path
    initrd: Path
    accel: str  # "kvm" or "tcg"
    cpus: int = 1
    memory_mib: int = 512
    disks: list[Disk] = field(default_factory=list)
    agent_socket: Path | None = None
    console_log: Path | None = None
    params: dict[str, str] = field(default_factory=dict)  # cocoon.KEY=VALUE
    netdev: str | None = None  # a -netdev with id=n0 (tap,fd=N or user,...); None = no NIC
    mac: str | None = None
    pass_fds: tuple[int, ...] = ()  # inherited by QEMU, e.g. the TAP named in netdev

    def cmdline(self) -> str:
        args = [BASE_CMDLINE]
        if self.accel == "tcg":
            # Without TSC-deadline support under emulation the kernel would
            # spend ~0.3 s calibrating the local APIC timer against the PIT;
            # the PIT alone serves as the clock event device instead.
            args.append("nolapic_timer")
        args += [f"cocoon.{k}={v}" for k, v in self.params.items()]
        return " ".join(args)


def command(config: MachineConfig) -> list[str]:
    if config.accel == "kvm":
        # arch-capabilities is not settable under some paravirtual KVMs;
        # the guest does not need it.
        accel = ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
    else:
        accel = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    argv = [
        tools.find(QEMU),
        "-M", "microvm,x-option-roms=off,isa-serial=on,acpi=off",
        *accel,
        "-smp", str(config.cpus),
        "-m", f"{config.memory_mib}M",
        "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
        "-kernel", str(config.kernel),
        "-initrd", str(config.initrd),
        "-append", config.cmdline(),
    ]  # fmt: skip
    if config.console_log is not None:
        argv += ["-serial", f"file:{config.console_log}"]
    else:
        argv += ["-serial", "stdio"]
    for i, disk in enumerate(config.disks):
        # cache=unsafe: the guest syncs before power-off and a crashed
        # container's disk is not worth fsync on every write.
        argv += [
            "-drive", f"id=d{i},file={disk.path},format={disk.format},if=none,cache=unsafe",
            "-device", f"virtio-blk-device,drive=d{i}",
        ]  # fmt: skip
    if config.agent_socket is not None:
        argv += [
            "-device", "virtio-serial-device,max_ports=2",
            "-chardev", f"socket,id=agent,path={config.agent_socket}",
            "-device", "virtserialport,chardev=agent,name=cocoon.agent",
        ]  # fmt: skip
    if config.netdev is not None:
        mac = f",mac={config.mac}" if config.mac else ""
        argv += ["-netdev", config.netdev, "-device", f"virtio-net-device,netdev=n0{mac}"]
    argv += ["-device", "virtio-rng-device"]
    # Free page reporting: the guest hands pages it frees back to QEMU, which
    # discards them, so memory a container used once returns to the host.
    argv += ["-device", "virtio-balloon-device,free-page-reporting=on"]
    return argv


class Machine:
    """One running QEMU process."""

    def __init__(self, config: MachineConfig) -> None:
        self.config = config
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, *, stdout: int | None = subprocess.DEVNULL) -> None:
        argv = command(self.config)
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.PIPE,
                pass_fds=self.config.pass_fds,
                # Its own process group: a Ctrl-C at the terminal is for the
                # container (relayed by the agent), not for the VMM.
                start_new_session=True,
            )
        except OSError as e:
            raise ExternalError(f"cannot start {argv[0]}: {e.strerror}") from e

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def stderr_pipe(self) -> IO[bytes] | None:
        """Readable once QEMU complains or exits: an event to wait on."""
        return None if self._proc is None else self._proc.stderr

    def poll(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        assert self._proc is not None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired as e:
            raise Timeout(f"the VM did not stop within {timeout:g}s") from e

    def stderr(self) -> str:
        """What QEMU said on stderr; only once it has exited."""
        if self._proc is None or self._proc.stderr is None or self._proc.poll() is None:
            return ""
        return self._proc.stderr.read().decode(errors="replace").strip()

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def stop(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the guest to power off, then kill."""
        if self._proc is None:
            return
        try:
            self._proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
        if self._proc.stderr is not None and not self._proc.stderr.closed:
            self._proc.stderr.close()
