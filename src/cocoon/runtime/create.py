"""``create``: the container's record and its per-container process, with its VM booted.

create: check the bundle -> claim the id -> a cocoon record whose root is the
bundle's root over 9p -> fork twice; the grandchild (``shim.serve``) boots
the VM -> write the pid file. On any failure everything made is undone
before the error is raised.

create does not wait for the VM: the OCI contract asks only for a pid that
runs no user code before ``start``, so the engine's own work between the
two calls overlaps the boot, and ``start`` waits for the agent's READY that
the grandchild reports in ``store.BOOTED``. A VMM dies with that grandchild
(``vm/lifeline.py``), so killing it mid-boot leaves no VM behind.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from cocoon.container import boot, network, volumes
from cocoon.container import record as records
from cocoon.container.config import ContainerConfig, NetworkSettings
from cocoon.container.spec import check_hostname
from cocoon.errors import InvalidArgument
from cocoon.network import netns
from cocoon.pids import start_ticks
from cocoon.runtime import bundle as bundles
from cocoon.runtime import console, sandbox, shim, spawn, store
from cocoon.stamps import rfc3339
from cocoon.vm import accel as accelerators
from cocoon.vm.artifacts import artifacts


def _network(bundle: bundles.Bundle, rec: records.Record) -> NetworkSettings:
    if bundle.netns is None:
        return network.configure(rec.id, rec.name, network=bundle.network)
    veth = netns.interface(bundle.netns)
    return NetworkSettings(mode="netns", ip=veth.ip, prefix=veth.prefix, gateway=veth.gateway,
                           mac=veth.mac, netns=bundle.netns, veth=veth.name)  # fmt: skip


def _record(bundle: bundles.Bundle, container_id: str, stdin: bool) -> records.Record:
    arts = artifacts()
    rec = records.create(
        {
            "image": str(bundle.root),
            "image_id": "",
            "command": bundle.process.args,
            "created": time.time(),
            # The container process removes it as the container ends: delete
            # then has only the runtime's own state to drop.
            "remove": True,
        },
        None,
    )
    try:
        hostname = check_hostname(bundle.hostname or container_id[:12])
        process = bundle.process
        if stdin != process.stdin:
            process = bundles.ProcessSpec(**{**process.to_json(), "stdin": stdin})
        rec.config = ContainerConfig(
            cpus=bundle.cpus,
            memory_mib=bundle.memory_mib,
            accel=accelerators.choose("auto", arts.kernel, arts.initrd),
            hostname=hostname,
            rootfs="",
            root_share=str(bundle.root),
            process=process,
            network=_network(bundle, rec),
            read_only=bundle.readonly_root,
        )
        rec.config.mounts = volumes.prepare(bundle.mounts, rec.id, rec.name)
        records.save(rec)
    except BaseException:
        boot.discard(rec.id, remove_volumes=True)
        raise
    return rec


def _entry(bundle: bundles.Bundle, container_id: str, record: str, pid: int) -> store.Entry:
    return store.Entry(
        id=container_id,
        bundle=str(bundle.path),
        record=record,
        created=rfc3339(time.time()),
        pid=pid,
        pid_ticks=start_ticks(pid),
        annotations=bundle.annotations,
    )


def _create_sandbox(
    root: Path, bundle: bundles.Bundle, container_id: str, pid_file: Path | None
) -> None:
    pid = 0
    try:
        pid = sandbox.spawn()
        store.save(root, _entry(bundle, container_id, "", pid)._replace(sandbox=True))
        spawn.write_pid(pid_file, pid)
    except BaseException:
        if pid:
            os.kill(pid, signal.SIGKILL)
        store.forget(root, container_id)
        raise


def create(
    root: Path,
    container_id: str,
    bundle_path: Path,
    pid_file: Path | None,
    console_socket: str | None,
) -> None:
    bundle = bundles.load(bundle_path)
    if bundle.terminal and console_socket is None:
        raise InvalidArgument("process.terminal needs --console-socket")
    folder = store.claim(root, container_id)
    if sandbox.wanted(bundle):
        _create_sandbox(root, bundle, container_id, pid_file)
        return
    rec: records.Record | None = None
    slave = None
    pid = 0
    try:
        stdin = bundle.terminal or console.stdin_open(0)
        rec = _record(bundle, container_id, stdin)
        if console_socket is not None and bundle.terminal:
            slave = console.terminal(console_socket)
            stdio = shim.Stdio(slave, slave, slave, tty=True)
        else:
            stdio = shim.Stdio(0, 1, 2)
        record_id, booted, log = rec.id, folder / store.BOOTED, folder / store.SHIM_LOG
        pid = spawn.detached(lambda: shim.serve(record_id, booted, stdio, stdin, log))
        store.save(root, _entry(bundle, container_id, rec.id, pid))
        spawn.write_pid(pid_file, pid)
    except BaseException:
        if pid:
            os.kill(pid, signal.SIGKILL)  # its VM, if any, dies with it
        if rec is not None:
            boot.discard(rec.id, remove_volumes=True)
        store.forget(root, container_id)
        raise
    finally:
        if slave is not None:
            os.close(slave)


__all__ = ["create"]
