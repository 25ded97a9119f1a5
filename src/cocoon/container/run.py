"""Run one container in its own VM, in the foreground: ``cocoon run``'s engine.

image -> read-only rootfs disk (cached) + writable disk -> QEMU microvm ->
agent READY -> RUN -> relay stdio -> EXIT -> guest powers off.
Whatever happens, the VM is stopped and its socket removed before returning.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cocoon import paths
from cocoon.agent.channel import Listener
from cocoon.agent.session import ExitStatus, Process, Sink
from cocoon.container import record as records
from cocoon.container.spec import parse_size, process_spec
from cocoon.errors import ExternalError, InvalidArgument
from cocoon.image.store import ImageStore
from cocoon.rootfs.disks import image_disk, writable_disk
from cocoon.vm import accel as accelerators
from cocoon.vm.artifacts import artifacts
from cocoon.vm.qemu import Disk, Machine, MachineConfig

log = logging.getLogger(__name__)

BOOT_TIMEOUT = 120.0  # software emulation on a loaded host is slow
POWEROFF_GRACE = 10.0
DEFAULT_MEMORY = "512m"
DEFAULT_DISK = "8g"


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
    disk_size: str = DEFAULT_DISK
    remove: bool = False
    accel: str = "auto"


@dataclass(slots=True)
class RunResult:
    container_id: str
    name: str
    exit_code: int
    signal: int | None = None
    error: str | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    timings: dict[str, float] = field(default_factory=dict)


def _memory_mib(text: str) -> int:
    mib = -(-parse_size(text) // (1 << 20))
    if mib < 64:
        raise InvalidArgument(f"--memory {text}: a VM needs at least 64m")
    return mib


def run(
    image: str,
    options: RunOptions | None = None,
    *,
    stdin: bytes | int | None = None,
    stdout: Sink | None = None,
    stderr: Sink | None = None,
    on_start: Callable[[Process], None] | None = None,
    store: ImageStore | None = None,
) -> RunResult:
    """Run ``image`` and wait for its process to exit.

    ``stdin`` is bytes to send, a file descriptor to forward until EOF, or
    None for /dev/null. Output goes to ``stdout``/``stderr`` callables, or is
    collected into the result when they are None. ``on_start`` gets the
    running process (to forward signals or terminal resizes).
    """
    opts = options or RunOptions()
    if opts.cpus < 1:
        raise InvalidArgument("--cpus must be at least 1")
    memory_mib = _memory_mib(opts.memory)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    store = store or ImageStore()
    img = store.resolve(image)
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
            "config": {"cpus": opts.cpus, "memory_mib": memory_mib, "accel": accel},
        },
        opts.name,
    )
    hostname = opts.hostname or rec.id[:12]
    cfg = img.config
    spec = process_spec(
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
        stdin=stdin is not None,
    )
    folder = records.folder(rec.id)
    rw = folder / "rw.ext4"
    sock_dir = paths.run_dir() / rec.id[:12]
    out, err = bytearray(), bytearray()
    listener = machine = None
    status: ExitStatus | None = None
    try:
        writable_disk(rw, parse_size(opts.disk_size))
        sock_dir.mkdir(parents=True, exist_ok=True)
        listener = Listener(sock_dir / "agent.sock")
        machine = Machine(
            MachineConfig(
                kernel=arts.kernel,
                initrd=arts.initrd,
                accel=accel,
                cpus=opts.cpus,
                memory_mib=memory_mib,
                disks=[Disk(rootfs, readonly=True), Disk(rw)],
                agent_socket=listener.path,
                console_log=folder / "console.log",
                params={
                    "root": "vda",
                    "rw": "vdb",
                    "hostname": hostname,
                    "time": f"{time.time():.3f}",
                },
            )
        )
        t1 = time.monotonic()
        timings["container_setup"] = t1 - t0 - timings["prepare"]
        machine.start()
        rec.state, rec.started = "running", time.time()
        records.save(rec)
        try:
            channel = listener.accept(machine.stderr_pipe, BOOT_TIMEOUT)
            timings["vmm_start"] = time.monotonic() - t1
            channel.wait_ready(BOOT_TIMEOUT)
        except ExternalError as e:
            raise ExternalError(f"{e}: {_vm_diagnosis(machine, folder)}") from e
        timings["kernel_to_agent"] = time.monotonic() - t1 - timings["vmm_start"]
        process = Process(channel)
        process.start(spec)
        if isinstance(stdin, int):
            process.feed_stdin(stdin)
        elif stdin is not None:
            process.send_stdin(stdin)
        if on_start is not None:
            on_start(process)
        t2 = time.monotonic()
        status = process.relay(stdout or out.extend, stderr or err.extend)
        timings["process"] = time.monotonic() - t2
        t3 = time.monotonic()
        # Closing our end tells the agent every byte has been read; only
        # then does it power off (QEMU drops what the host has not taken).
        channel.close()
        machine.stop(POWEROFF_GRACE)
        timings["teardown"] = time.monotonic() - t3
    finally:
        if machine is not None:
            machine.kill()
        if listener is not None:
            listener.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
        if opts.remove:
            records.remove(rec.id)
        else:
            rec.state, rec.finished = "exited", time.time()
            if status is not None:
                rec.exit_code, rec.error = status.code, status.error
            else:
                rec.error = "the VM stopped before the container process exited"
            with contextlib.suppress(OSError):
                records.save(rec)
    return RunResult(
        container_id=rec.id,
        name=rec.name,
        exit_code=status.code,
        signal=status.signal,
        error=status.error,
        stdout=bytes(out),
        stderr=bytes(err),
        timings=timings,
    )


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


__all__ = ["RunOptions", "RunResult", "run"]
