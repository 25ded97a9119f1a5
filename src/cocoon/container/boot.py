"""Create a container (record + writable disk), and boot its VM up to the agent's READY.

Used by the one lifecycle (``lifecycle.py``) that both the foreground run and
the per-container monitor go through: everything a later ``cocoon start``
needs to boot the VM again is in the record's typed configuration.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cocoon.agent.listener import Listener
from cocoon.container import events, network, volumes
from cocoon.container import record as records
from cocoon.container.config import ContainerConfig
from cocoon.container.record import Record
from cocoon.errors import CocoonError, ExternalError, InvalidArgument, Unsupported
from cocoon.units import parse_size
from cocoon.vm import backend
from cocoon.vm import machine as vms
from cocoon.vm import template as templates
from cocoon.vm.artifacts import artifacts

if TYPE_CHECKING:
    from cocoon.agent.channel import Channel
    from cocoon.container.options import RunOptions
    from cocoon.image.model import ImageConfig
    from cocoon.image.store import ImageStore

DISK = "disk.qcow2"  # in the container's folder: its root, over the image's disk
ROOT_TAG = "cocoonroot"  # the 9p tag of a root share
ROOT_DEVICE = "vda"  # the root disk, the VM's first
BOOT_TIMEOUT = 120.0  # software emulation on a loaded host is slow


def _health(opts: RunOptions, image: ImageConfig) -> dict[str, Any] | None:
    from cocoon.container.health import configure

    check = configure(opts.healthcheck, image.healthcheck)
    return None if check is None else check.to_json()


def parse_memory(text: str) -> int:
    mib = -(-parse_size(text) // (1 << 20))
    if mib < 64:
        raise InvalidArgument(f"--memory {text}: a VM needs at least 64m")
    return mib


def cpu_shape(cpus: float) -> tuple[int, float | None]:
    """Whole vCPUs for ``--cpus`` (a fraction rounded up), and the fraction as a quota."""
    # 0.01 CPUs is the least a CFS quota holds (1 ms in a 100 ms period), as Docker's.
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not 0.01 <= cpus < 1e6:
        raise InvalidArgument(f"--cpus {cpus!r}: use 0.01 or more (e.g. 1, 2 or 1.5)")
    host = os.cpu_count() or 1
    if cpus > host:
        raise InvalidArgument(f"--cpus {cpus:g}: this host has only {host} CPUs")
    vcpus = math.ceil(cpus)
    return vcpus, (None if vcpus == cpus else float(cpus))


def _check_platform(text: str | None) -> None:
    """A VM runs the host's own architecture: no emulation of another."""
    if text is None:
        return
    from cocoon.image.model import Platform
    from cocoon.image.registry import parse_platform

    want, host = parse_platform(text), Platform.host()
    if (want.os, want.architecture) != (host.os, host.architecture):
        raise Unsupported(f"--platform {text}: cocoon runs {host} containers on this host only")


def _shm_size(text: str | None) -> int | None:
    if text is None:
        return None
    size = parse_size(text)
    if size < 4096:
        raise InvalidArgument(f"--shm-size {text}: at least 4k")
    return size


def _disk_size(storage_opts: Sequence[str]) -> int | None:
    """The root disk's size from ``--storage-opt size=SIZE`` (the one option there is)."""
    size = None
    for opt in storage_opts:
        key, sep, value = opt.partition("=")
        if key != "size" or not sep:
            raise InvalidArgument(f"--storage-opt {opt}: only size=SIZE is supported")
        size = parse_size(value)
    return size


def create(
    image: str,
    opts: RunOptions,
    *,
    stdin: bool,
    store: ImageStore | None = None,
    timings: dict[str, float] | None = None,
) -> Record:
    """A new container of ``image``: its record (state created) and writable disk."""
    # Here, not at the top: the monitor, which only boots, never pays for them.
    from cocoon.container.spec import check_hostname, process_spec
    from cocoon.image.registry import resolve_or_pull
    from cocoon.image.store import ImageStore
    from cocoon.rootfs.disks import check_disk_size, container_disk, image_disk
    from cocoon.vm import accel as accelerators

    vcpus, cpu_quota = cpu_shape(opts.cpus)
    _check_platform(opts.platform)
    shm_size = _shm_size(opts.shm_size)
    memory_mib = parse_memory(opts.memory)
    disk_size = _disk_size(opts.storage_opts)
    if opts.hostname is not None:
        check_hostname(opts.hostname)
    t0 = time.monotonic()
    timings = {} if timings is None else timings
    store = store or ImageStore()
    img = resolve_or_pull(image, store, policy=opts.pull)  # as docker run does
    arts = artifacts()
    accel = accelerators.choose(opts.accel, arts.kernel, arts.initrd)
    rootfs = image_disk(store, img)
    if disk_size is not None:
        check_disk_size(rootfs, disk_size)
    nics = network.nic_count(opts.network, opts.more_networks)
    volumes.check(list(opts.mounts), store, img, rootfs, nics=nics)
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
        process = process_spec(img.config, opts, hostname=hostname, stdin=stdin)
        rec.command = process.args
        rec.config = ContainerConfig(
            cpus=vcpus,
            cpu_quota=cpu_quota,
            shm_size=shm_size,
            memory_mib=memory_mib,
            accel=accel,
            hostname=hostname,
            rootfs=str(rootfs),
            stop_signal=opts.stop_signal or img.config.stop_signal,
            disk_size=disk_size,
            template=opts.template,
            labels={**img.config.labels, **opts.labels},
            stop_timeout=opts.stop_timeout,
            restart=opts.restart,
            health=_health(opts, img.config),
            process=process,
            network=network.configure(
                rec.id,
                rec.name,
                network=opts.network,
                more_networks=opts.more_networks,
                ip=opts.ip,
                dns=opts.dns,
                dns_search=opts.dns_search,
                dns_options=opts.dns_options,
                aliases=opts.network_aliases,
                add_hosts=opts.add_hosts,
                publish=[*opts.publish, *(img.config.exposed_ports if opts.publish_all else ())],
            ),
            read_only=opts.read_only,
        )
        # Last: on a failure, what it made is undone by forget below.
        rec.config.mounts = volumes.prepare(list(opts.mounts), rec.id, rec.name)
        container_disk(records.folder(rec.id) / DISK, rootfs, disk_size)
        records.save(rec)
        events.emit("create", rec)
    except BaseException:
        if rec.config is not None:
            volumes.forget(rec, remove_volumes=True)
        discard(rec.id)
        raise
    timings["container_setup"] = time.monotonic() - t0 - timings["prepare"]
    return rec


@dataclass(slots=True)
class BootedVM:
    """A container's running VM and what its owner holds for it (agent channel, network)."""

    machine: vms.Machine
    listener: Listener
    channel: Channel
    network: network.Plug
    spawned_at: float  # time.monotonic() just before the VMM was started
    rec: Record

    def close(self) -> None:
        """Kill the VM if it is still up, drop the agent socket, stop forwarding
        ports, free its disk volumes for other containers."""
        self.machine.kill()
        self.channel.close()
        self.listener.close()
        self.network.close()
        volumes.release(self.rec)


def machine_spec(
    rec: Record, net: network.Plug, mounts: volumes.Attached | None = None
) -> vms.MachineSpec:
    """The VM that runs ``rec``, in the VM layer's neutral terms."""
    mounts = mounts or volumes.Attached()
    config = rec.settings
    folder = records.folder(rec.id)
    sockets = records.sock_dir(rec.id)
    arts = artifacts()
    disks, shares, root = [vms.Disk(folder / DISK, format="qcow2")], [], ROOT_DEVICE
    if config.root_share is not None:
        disks, shares = [], [vms.SharedFolder(Path(config.root_share), ROOT_TAG)]
        root = f"9p:{ROOT_TAG}"
    return vms.MachineSpec(
        kernel=arts.kernel,
        initrd=arts.initrd,
        accel=config.accel,
        cpus=config.cpus,
        cpu_quota=config.cpu_quota,
        memory_mib=config.memory_mib,
        disks=[*disks, *mounts.disks],
        shares=[*shares, *mounts.shares],
        net=net.device,
        more_nets=net.more,
        agent_socket=sockets / "agent.sock",
        control_socket=sockets / "vmm.sock",
        console=folder / "console.log",
        # Only cocoon's own words: the container's settings go in CONFIG.
        params={"root": root},
    )


def boot(
    rec: Record, timings: dict[str, float] | None = None, *, run_main: bool = False
) -> BootedVM:
    """Start the container's VM and wait for its agent's READY.

    With ``run_main`` the main process (proc 1) is sent before READY arrives:
    the agent reads it right after READY, which saves a host-guest round trip.
    """
    timings = {} if timings is None else timings
    sockets = records.sock_dir(rec.id)
    sockets.mkdir(parents=True, exist_ok=True)
    listener = Listener(sockets / "agent.sock")
    try:
        net = network.plug(rec)
    except BaseException:
        listener.close()
        raise
    try:
        mounts = volumes.attach(rec)
        spec = templates.prepare(machine_spec(rec, net, mounts), rec.settings.template)
        machine = backend.create(spec)
    except BaseException:
        listener.close()
        net.close()
        volumes.release(rec)
        raise
    t1 = time.monotonic()
    try:
        machine.start()
        net.started()
        # The host's side of the agent protocol is imported now, while the
        # guest boots, rather than before the VMM starts (see Listener.accept).
        from cocoon.agent.channel import AgentFailed
        from cocoon.agent.protocol import GuestConfig, Msg, encode_run

        try:
            channel = listener.accept(machine.events, BOOT_TIMEOUT)
            timings["vmm_start"] = time.monotonic() - t1
            guest = GuestConfig(
                rec.settings.hostname,
                time.time_ns(),
                **net.guest,
                mounts=mounts.guest,
                readonly=rec.settings.read_only,
                mac=net.device.mac if net.device is not None else None,
                entropy=os.urandom(64),
                root_size=templates.root_size(spec),
                shm_size=rec.settings.shm_size,
            )
            channel.send(Msg.CONFIG, 0, guest.encode())
            # Queued in the port until the agent is up, in the order it must
            # act on them: /etc/hosts before the process that may read it.
            network.send_hosts(rec, channel)
            if run_main:
                channel.send(Msg.RUN, 1, encode_run(rec.settings.process))
            channel.wait_ready(BOOT_TIMEOUT)
        except AgentFailed:
            raise  # the agent's own words say it all
        except ExternalError as e:
            machine.kill()
            raise ExternalError(f"{e}: {machine.last_words()}") from e
        network.ready(rec, net, channel)
    except BaseException:
        machine.kill()
        listener.close()
        net.close()
        volumes.release(rec)
        raise
    timings["kernel_to_agent"] = time.monotonic() - t1 - timings["vmm_start"]
    return BootedVM(machine, listener, channel, net, t1, rec)


def remove_sockets(container_id: str) -> None:
    shutil.rmtree(records.sock_dir(container_id), ignore_errors=True)


def discard(container_id: str, *, remove_volumes: bool = False) -> None:
    """Remove the container for good: its record, disk and network address;
    its anonymous volumes too with ``remove_volumes`` (rm -v, run --rm)."""
    with contextlib.suppress(CocoonError):  # no record (yet), or unreadable
        rec = records.load(container_id)
        volumes.forget(rec, remove_volumes=remove_volumes)
        if rec.config is not None:  # made whole: its create was an event
            events.emit("destroy", rec)
    network.release(container_id)
    records.remove(container_id)


__all__ = [
    "BootedVM",
    "boot",
    "cpu_shape",
    "create",
    "discard",
    "machine_spec",
    "parse_memory",
    "remove_sockets",
]
