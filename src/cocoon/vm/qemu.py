"""QEMU microvm: the one backend of ``machine.py``, and the only file that knows QEMU's syntax.

The VMM is an external program; cocoon only decides what to ask of it. Every
device is virtio-mmio on the kernel command line (``acpi=off`` makes QEMU
append them), which is what the guest kernel's minimal config expects.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from cocoon import tools
from cocoon.errors import ExternalError, InvalidArgument, InvalidState, Timeout, Unsupported
from cocoon.vm import cgroup, lifeline, tsc
from cocoon.vm.console import ConsoleLog
from cocoon.vm.machine import MachineSpec, Status, Tap, Unplugged, UserNet
from cocoon.vm.qmp import Qmp

QEMU = "qemu-system-x86_64"
# What a cocoon.KEY=VALUE kernel argument may hold: no space or quote that
# could start another argument.
_PLAIN = re.compile(r"^[A-Za-z0-9._:/,-]+$")

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


def kernel_cmdline(spec: MachineSpec) -> str:
    args = [BASE_CMDLINE]
    if spec.accel == "tcg":
        # Without TSC-deadline support under emulation the kernel would
        # spend ~0.3 s calibrating the local APIC timer against the PIT;
        # the PIT alone serves as the clock event device instead.
        args.append("nolapic_timer")
        if khz := tsc.host_khz():
            args.append(f"tsc_early_khz={khz}")
    for key, value in spec.params.items():
        # Only cocoon's own words go here: user text travels in the agent
        # protocol, where it cannot become another kernel argument.
        if not (key.isidentifier() and _PLAIN.match(value)):
            raise InvalidArgument(f"kernel parameter cocoon.{key}={value!r} is not a plain word")
        args.append(f"cocoon.{key}={value}")
    return " ".join(args)


def _option(value: str) -> str:
    """A value inside a QEMU option list, where a comma would start the next option."""
    return value.replace(",", ",,")


def _netdev(net: Tap | UserNet, index: int) -> str:
    if isinstance(net, Tap):
        return f"tap,id=n{index},fd={net.fd}"
    forwards = "".join(
        f",hostfwd={f.protocol}:{f.host_ip}:{f.host_port}-:{f.guest_port}" for f in net.forwards
    )
    return f"user,id=n{index},net={net.subnet}{forwards}"


def _nics(spec: MachineSpec) -> list[Tap | UserNet | Unplugged]:
    return [] if spec.net is None else [spec.net, *spec.more_nets]


def _nic_args(net: Tap | UserNet | Unplugged, index: int) -> list[str]:
    """One network card; the guest names them eth0, eth1, ... in this order."""
    if isinstance(net, Unplugged):
        return ["-device", f"virtio-net-device,mac={net.mac}"]
    return ["-netdev", _netdev(net, index),
            "-device", f"virtio-net-device,netdev=n{index},mac={net.mac}"]  # fmt: skip


def _memory(spec: MachineSpec) -> list[str]:
    """Guest RAM on a memfd: pages come in the host's base size, so the guest's
    touched memory is not rounded up to transparent huge pages, and freed
    pages can be handed back by punching holes in it.

    A memory template's RAM is its file instead. Only the device state goes
    through migration (x-ignore-shared): a clone maps the file privately,
    copy-on-write, and waits for that state (``-incoming defer``, then
    ``QemuMachine._restore``); without -S QEMU starts its CPUs once it is in.
    """
    size = f"size={spec.memory_mib}M"
    if spec.memory_file is None:
        return ["-object", f"memory-backend-memfd,id=mem0,{size},share=on"]
    share = "on" if spec.memory_file.shared else "off"
    path = _option(str(spec.memory_file.path))
    argv = ["-object", f"memory-backend-file,id=mem0,{size},mem-path={path},share={share}"]
    if spec.restore is not None:
        argv += ["-incoming", "defer"]
    return argv


def _boot(spec: MachineSpec) -> list[str]:
    """What the guest boots from. Nothing for a clone: its kernel is in the
    template's RAM already, and QEMU would read both files at start and keep
    them in its heap (~0.6 MiB of every clone) for nothing."""
    if spec.restore is not None:
        return []
    return ["-kernel", str(spec.kernel), "-initrd", str(spec.initrd),
            "-append", kernel_cmdline(spec)]  # fmt: skip


# microvm's virtio-mmio transports: every device takes one. Without ACPI
# (which the guest kernel lacks) there is no second IOAPIC for more.
MMIO_SLOTS = 8
# Besides disks and shares: the RNG and the balloon, always there.
_FIXED_DEVICES = 2


def room(*, agent: bool, nics: int) -> int:
    """How many disks and shared folders together (the root included) fit
    beside the VM's other devices: its agent port, if it has one, its
    network cards, and the RNG and balloon it always has."""
    return MMIO_SLOTS - _FIXED_DEVICES - agent - nics


def _check_slots(spec: MachineSpec) -> None:
    nics = len(_nics(spec))
    free = room(agent=spec.agent_socket is not None, nics=nics)
    if len(spec.disks) + len(spec.shares) > free:
        raise InvalidArgument(
            f"too many disks, shared folders and networks: QEMU's microvm has {MMIO_SLOTS} "
            f"device slots, which leaves room for {max(free, 0)} disks and shared folders "
            f"(the root disk included) beside {nics} network cards (this VM asks for "
            f"{len(spec.disks)} disks, {len(spec.shares)} shared folders)"
        )


def command(spec: MachineSpec) -> list[str]:
    _check_slots(spec)
    if spec.accel == "kvm":
        # arch-capabilities is not settable under some paravirtual KVMs;
        # the guest does not need it.
        accel = ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
    else:
        # tb-size: the translated-code cache is the largest share of an idle
        # VM's memory, and it fills whatever size it has. A boot translates
        # the kernel's whole start-up: 16 MiB costs no measurable speed there
        # (12 costs ~1.13x, 8 ~1.3x). A clone of a memory template never
        # boots, and runs as fast with 12 (8 costs it ~1.27x).
        tb_size = 12 if spec.restore is not None else 16
        accel = ["-accel", f"tcg,thread=multi,tb-size={tb_size}", "-cpu", "max"]
    argv = [
        tools.find(QEMU),
        "-M", "microvm,x-option-roms=off,isa-serial=on,acpi=off,memory-backend=mem0",
        *accel,
        "-smp", str(spec.cpus),
        "-m", f"{spec.memory_mib}M",
        *_memory(spec),
        "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
        # QEMU's own seccomp filter: a guest that escaped into the VMM still
        # could not exec, gain privileges or change scheduling on the host.
        "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        *_boot(spec),
        # The console always goes to QEMU's stdout: a pipe the host reads
        # into a bounded log (console.py), or the caller's own.
        "-serial", "stdio",
    ]  # fmt: skip
    if spec.control_socket is not None:
        argv += ["-qmp", f"unix:{_option(str(spec.control_socket))},server=on,wait=off"]
    for i, disk in enumerate(spec.disks):
        # cache=unsafe: the guest syncs before power-off and a crashed
        # container's disk is not worth fsync on every write.
        readonly = ",readonly=on" if disk.readonly else ""
        serial = f",serial={_option(disk.serial)}" if disk.serial else ""
        argv += [
            "-drive", f"id=d{i},file={_option(str(disk.path))},format={disk.format},"
                      f"if=none,cache=unsafe{readonly}",
            "-device", f"virtio-blk-device,drive=d{i}{serial}",
        ]  # fmt: skip
    for i, share in enumerate(spec.shares):
        readonly = ",readonly=on" if share.readonly else ""
        argv += [
            "-fsdev", f"local,id=s{i},path={_option(str(share.path))},"
                      f"security_model={share.security_model}{readonly}",
            "-device", f"virtio-9p-device,fsdev=s{i},mount_tag={_option(share.tag)}",
        ]  # fmt: skip
    if spec.agent_socket is not None:
        argv += [
            "-device", "virtio-serial-device,max_ports=2",
            "-chardev", f"socket,id=agent,path={_option(str(spec.agent_socket))}",
            "-device", "virtserialport,chardev=agent,name=cocoon.agent",
        ]  # fmt: skip
    for index, net in enumerate(_nics(spec)):
        argv += _nic_args(net, index)
    argv += ["-device", "virtio-rng-device"]
    # Free page reporting: the guest hands pages it frees back to QEMU, which
    # discards them, so memory a container used once returns to the host.
    # Not with RAM in a template's file: QEMU 7.2 discards by punching holes
    # in the file itself, even where a clone maps it privately, which would
    # zero the memory of every other clone (see template.py).
    reporting = "off" if spec.memory_file is not None else "on"
    argv += ["-device", f"virtio-balloon-device,free-page-reporting={reporting}"]
    return argv


def _ignore_shared(qmp: Qmp) -> None:
    """RAM in a shared file is not part of the saved state, on both sides."""
    qmp.execute(
        "migrate-set-capabilities",
        capabilities=[{"capability": "x-ignore-shared", "state": True}],
    )


class QemuMachine:
    """One QEMU process running one VM."""

    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self._proc: subprocess.Popen[bytes] | None = None
        self._console = ConsoleLog(spec.console) if spec.console is not None else None
        self._cgroup: Path | None = None

    def start(self) -> None:
        argv = command(self.spec)
        if self.spec.restore is not None and self.spec.control_socket is None:
            raise InvalidArgument("restoring a VM needs its control socket")
        fds = tuple(n.fd for n in _nics(self.spec) if isinstance(n, Tap))
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self._console else None,
                stderr=subprocess.PIPE,
                pass_fds=fds,
                # Its own process group: a Ctrl-C at the terminal is for the
                # container (relayed by the agent), not for the VMM.
                start_new_session=True,
                preexec_fn=lifeline.tie(),
            )
        except OSError as e:
            raise ExternalError(f"cannot start {argv[0]}: {e.strerror}") from e
        if self.spec.cpu_quota is not None:
            self._cgroup = cgroup.confine(self._proc.pid, self.spec.cpu_quota)
        if self._console is not None and self._proc.stdout is not None:
            self._console.start(os.dup(self._proc.stdout.fileno()))
            self._proc.stdout.close()
        if self.spec.restore is not None:
            try:
                self._restore(self.spec.restore)
            except BaseException:
                self.kill()
                raise

    def _connect(self, timeout: float) -> Qmp:
        """The control socket, once QEMU has made it."""
        assert self.spec.control_socket is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                return Qmp(self.spec.control_socket)
            except ExternalError:
                if self.poll() is not None:
                    raise ExternalError(f"the VMM exited: {self.last_words()}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.002)

    def _restore(self, state: Path) -> None:
        try:
            fd = os.open(state, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise ExternalError(f"cannot read the saved VM state: {e.strerror}") from e
        try:
            with self._connect(10.0) as qmp:
                _ignore_shared(qmp)
                qmp.execute("getfd", fd=fd, fdname="state")
                qmp.execute("migrate-incoming", uri="fd:state")
        finally:
            os.close(fd)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def events(self) -> IO[bytes] | None:
        return None if self._proc is None else self._proc.stderr

    def poll(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        assert self._proc is not None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired as e:
            raise Timeout(f"the VM did not stop within {timeout:g}s") from e

    def last_words(self) -> str:
        if self._proc is None or self._proc.poll() is None:
            return ""
        said = ""
        if self._proc.stderr is not None and not self._proc.stderr.closed:
            said = self._proc.stderr.read().decode(errors="replace").strip()
        if said:
            return said.splitlines()[-1]
        if self._console is not None:
            self._console.join()
            if line := self._console.last_line():
                return f"guest console: {line}"
        return "no output from the VM"

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        cgroup.release(self._cgroup)

    def stop(self, grace: float) -> None:
        if self._proc is None:
            return
        try:
            self._proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
        cgroup.release(self._cgroup)
        if self._proc.stderr is not None and not self._proc.stderr.closed:
            self._proc.stderr.close()
        if self._console is not None:
            self._console.join()

    def _qmp(self, command: str, **arguments: object) -> object:
        if self.spec.control_socket is None or self.poll() is not None:
            raise ExternalError("the VM is not running")
        with Qmp(self.spec.control_socket) as qmp:
            return qmp.execute(command, **arguments)

    def set_memory(self, memory_mib: int) -> None:
        # A clone's RAM maps its template's file: an inflated balloon there
        # punches holes that every other clone would read as zeroes.
        if self.spec.memory_file is not None:
            raise Unsupported(
                "the VM was resumed from a memory template, whose memory cannot be taken "
                "back while it runs: restart the container with --no-template first"
            )
        if not 0 < memory_mib <= self.spec.memory_mib:
            raise InvalidState(
                f"the VM booted with {self.spec.memory_mib} MiB: it can shrink to less "
                f"while it runs, never grow (more takes effect at its next start)"
            )
        self._qmp("balloon", value=memory_mib << 20)

    def set_link(self, index: int, up: bool) -> None:
        if not 0 <= index < len(_nics(self.spec)):
            raise InvalidArgument(f"the VM has no network card {index}")
        # The netdev's name: QEMU carries the link state over to its card.
        self._qmp("set_link", name=f"n{index}", up=up)

    def set_cpu_quota(self, cpus: float) -> None:
        if cpus > self.spec.cpus:
            raise InvalidState(
                f"the VM has {self.spec.cpus} vCPUs, and vCPUs cannot be added while it "
                f"runs (more take effect at its next start)"
            )
        if self._cgroup is None and cpus == self.spec.cpus:
            return  # whole vCPUs and no quota yet: nothing to change
        group = cgroup.confine(self.pid, cpus)
        if group is None:
            raise Unsupported("no cgroup cpu controller cocoon may write here: no CPU quota")
        self._cgroup = group

    def pause(self) -> None:
        self._qmp("stop")

    def resume(self) -> None:
        self._qmp("cont")

    def save(self, state: Path) -> None:
        if self.spec.control_socket is None or self.poll() is not None:
            raise ExternalError("the VM is not running")
        fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with Qmp(self.spec.control_socket) as qmp:
                # Not paused first: the state then says "running", and a
                # clone without -S starts its CPUs as soon as it is in.
                _ignore_shared(qmp)
                qmp.execute("getfd", fd=fd, fdname="state")
                qmp.execute("migrate", uri="fd:state")
                deadline = time.monotonic() + 60
                while (info := qmp.execute("query-migrate")).get("status") != "completed":
                    if info.get("status") in ("failed", "cancelled"):
                        raise ExternalError(f"saving the VM failed: {info.get('error-desc')}")
                    if time.monotonic() > deadline:
                        raise Timeout("saving the VM took over 60s")
                    time.sleep(0.01)
        finally:
            os.close(fd)

    def status(self) -> Status:
        if self.poll() is not None:
            return Status.EXITED
        answer = self._qmp("query-status")
        state = answer.get("status") if isinstance(answer, dict) else None
        if state == "paused":
            return Status.PAUSED
        if state in ("shutdown", "guest-panicked", "internal-error"):
            return Status.SHUTDOWN
        return Status.RUNNING


def probe(spec: MachineSpec, marker: bytes, timeout: float) -> tuple[bool, str]:
    """Boot ``spec`` with its console on a pipe; (did ``marker`` appear?, why not)."""
    try:
        result = subprocess.run(
            command(spec), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"the guest did not reach the agent within {timeout:g}s"
    if marker in result.stdout:
        return True, ""
    reason = result.stderr.decode(errors="replace").strip().splitlines()
    return False, reason[-1] if reason else f"qemu exited with {result.returncode}"


def binary() -> Path:
    """The QEMU program in use (what the accelerator verdict depends on)."""
    return Path(tools.find(QEMU))
