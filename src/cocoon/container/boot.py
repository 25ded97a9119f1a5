"""Create a container (record + writable disk), and boot its VM up to the agent's READY.

Shared by the foreground engine (``run.py``) and the per-container monitor
(``monitor.py``): everything a later ``cocoon start`` needs to boot the VM
again is in the record's ``config``.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cocoon import paths
from cocoon.agent.listener import Listener
from cocoon.container import record as records
from cocoon.container.record import Record
from cocoon.container.spec import parse_size, process_spec
from cocoon.errors import ExternalError, InvalidArgument
from cocoon.image.registry import resolve_or_pull
from cocoon.image.store import ImageStore
from cocoon.network import attach as network
from cocoon.rootfs.disks import container_disk, image_disk
from cocoon.vm import accel as accelerators
from cocoon.vm.artifacts import artifacts
from cocoon.vm.qemu import Disk, Machine, MachineConfig

if TYPE_CHECKING:
    from cocoon.agent.channel import Channel
    from cocoon.agent.protocol import ProcessSpec

DISK = "disk.qcow2"  # in the container's folder: its root, over the image's disk
BOOT_TIMEOUT = 120.0  # software emulation on a loaded host is slow
DEFAULT_MEMORY = "512m"


@dataclass(slots=True)
class RunOptions:
    command: Sequence[str] | None = None
    entrypoint: str | None = None
    env: Sequence[str] = ()
    env_files: Sequence[str | Path] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    name: str | None = None
    tty: tuple[int, int] | None = None  # rows, columns
    interactive: bool = False
    cpus: int = 1
    memory: str = DEFAULT_MEMORY
    remove: bool = False
    accel: str = "auto"
    network: str | None = None  # a network's name, "user" or "none"; None = the default
    ip: str | None = None
    dns: Sequence[str] = ()
    add_hosts: Sequence[str] = ()  # NAME:IP
    publish: Sequence[str] = ()  # [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]


def _memory_mib(text: str) -> int:
    mib = -(-parse_size(text) // (1 << 20))
    if mib < 64:
        raise InvalidArgument(f"--memory {text}: a VM needs at least 64m")
    return mib


def create(
    image: str,
    opts: RunOptions,
    *,
    stdin: bool,
    store: ImageStore | None = None,
    timings: dict[str, float] | None = None,
) -> Record:
    """A new container of ``image``: its record (state created) and writable disk."""
    if opts.cpus < 1:
        raise InvalidArgument("--cpus must be at least 1")
    memory_mib = _memory_mib(opts.memory)
    t0 = time.monotonic()
    timings = {} if timings is None else timings
    store = store or ImageStore()
    img = resolve_or_pull(image, store)  # as docker run does
    arts = artifacts()
    accel = accelerators.choose(opts.accel, arts.kernel, arts.initrd)
    rootfs = image_disk(store, img)
    timings["prepare"] = time.monotonic() - t0

    rec = records.create(
        {
            "image": image,
            "image_id": img.id,
            "command": list(opts.command or []),
            "created": time.time(),
            "remove": opts.remove,
        },
        opts.name,
    )
    try:
        hostname = opts.hostname or rec.id[:12]
        cfg = img.config
        process = process_spec(
            image_entrypoint=cfg.entrypoint,
            image_cmd=cfg.cmd,
            image_env=cfg.env,
            image_workdir=cfg.working_dir,
            image_user=cfg.user,
            command=opts.command,
            entrypoint=opts.entrypoint,
            env=opts.env,
            env_files=opts.env_files,
            workdir=opts.workdir,
            user=opts.user,
            hostname=hostname,
            tty=opts.tty,
            stdin=stdin,
        )
        rec.command = process["args"]
        rec.config = {
            "cpus": opts.cpus,
            "memory_mib": memory_mib,
            "accel": accel,
            "hostname": hostname,
            "rootfs": str(rootfs),
            "stop_signal": cfg.stop_signal,
            "process": process,
            "network": network.configure(
                rec.id,
                rec.name,
                network=opts.network,
                ip=opts.ip,
                dns=opts.dns,
                add_hosts=opts.add_hosts,
                publish=opts.publish,
            ),
        }
        container_disk(records.folder(rec.id) / DISK, rootfs)
        records.save(rec)
    except BaseException:
        discard(rec.id)
        raise
    timings["container_setup"] = time.monotonic() - t0 - timings["prepare"]
    return rec


def process_of(rec: Record) -> ProcessSpec:
    """The container's main process, as created."""
    from cocoon.agent.protocol import ProcessSpec  # once the VM runs, as in boot()

    fields = dict(rec.config["process"])
    if fields.get("tty") is not None:
        fields["tty"] = tuple(fields["tty"])
    return ProcessSpec(**fields)


def sock_dir(container_id: str) -> Path:
    return paths.run_dir() / container_id[:12]


@dataclass(slots=True)
class BootedVM:
    machine: Machine
    listener: Listener
    channel: Channel
    network: network.Plug
    spawned_at: float  # time.monotonic() just before QEMU was started

    def close(self) -> None:
        """Kill the VM if it is still up, drop the agent socket, stop forwarding ports."""
        self.machine.kill()
        self.channel.close()
        self.listener.close()
        self.network.close()


def boot(
    rec: Record, timings: dict[str, float] | None = None, *, run_main: bool = False
) -> BootedVM:
    """Start the container's VM and wait for its agent's READY.

    With ``run_main`` the main process (proc 1) is sent before READY arrives:
    the agent reads it right after READY, which saves a host-guest round trip.
    """
    timings = {} if timings is None else timings
    folder = records.folder(rec.id)
    config = rec.config
    arts = artifacts()
    sockets = sock_dir(rec.id)
    sockets.mkdir(parents=True, exist_ok=True)
    listener = Listener(sockets / "agent.sock")
    try:
        net = network.plug(rec)
    except BaseException:
        listener.close()
        raise
    machine = Machine(
        MachineConfig(
            kernel=arts.kernel,
            initrd=arts.initrd,
            accel=config["accel"],
            cpus=config["cpus"],
            memory_mib=config["memory_mib"],
            disks=[Disk(folder / DISK, format="qcow2")],
            agent_socket=listener.path,
            console_log=folder / "console.log",
            params={"root": "vda"},
            netdev=net.netdev,
            mac=net.mac,
            pass_fds=tuple(net.fds),
        )
    )
    t1 = time.monotonic()
    try:
        machine.start()
        net.started()
        # The host's side of the agent protocol is imported now, while the
        # guest boots, rather than before QEMU starts (see Listener.accept).
        from cocoon.agent.channel import AgentFailed
        from cocoon.agent.protocol import GuestConfig, Msg

        try:
            channel = listener.accept(machine.stderr_pipe, BOOT_TIMEOUT)
            timings["vmm_start"] = time.monotonic() - t1
            guest = GuestConfig(config["hostname"], time.time_ns(), **net.guest)
            channel.send(Msg.CONFIG, 0, guest.encode())
            # Queued in the port until the agent is up, in the order it must
            # act on them: /etc/hosts before the process that may read it.
            network.send_hosts(rec, channel)
            if run_main:
                channel.send(Msg.RUN, 1, process_of(rec).encode())
            channel.wait_ready(BOOT_TIMEOUT)
        except AgentFailed:
            raise  # the agent's own words say it all
        except ExternalError as e:
            raise ExternalError(f"{e}: {_vm_diagnosis(machine, folder)}") from e
        network.ready(rec, net, channel)
    except BaseException:
        machine.kill()
        listener.close()
        net.close()
        raise
    timings["kernel_to_agent"] = time.monotonic() - t1 - timings["vmm_start"]
    return BootedVM(machine, listener, channel, net, t1)


def remove_sockets(container_id: str) -> None:
    shutil.rmtree(sock_dir(container_id), ignore_errors=True)


def discard(container_id: str) -> None:
    """Remove the container for good: its record, disk and network address."""
    network.release(container_id)
    records.remove(container_id)


def _vm_diagnosis(machine: Machine, folder: Path) -> str:
    """The last words of QEMU or of the guest console, for the error message."""
    machine.kill()
    said = machine.stderr()
    if said:
        return said.splitlines()[-1]
    with contextlib.suppress(OSError):
        lines = (folder / "console.log").read_text(errors="replace").strip().splitlines()
        if lines:
            return f"guest console: {lines[-1]}"
    return "no output from the VM"


__all__ = ["BootedVM", "RunOptions", "boot", "create", "discard", "process_of"]
