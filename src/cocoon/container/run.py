"""Run one container in its own VM, in the foreground: ``cocoon run``'s engine.

image -> read-only rootfs disk (cached) + writable disk -> QEMU microvm ->
agent READY -> RUN -> relay stdio -> EXIT -> guest powers off.
Whatever happens, the VM is stopped and its socket removed before returning.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cocoon.container import boot, liveness
from cocoon.container import record as records
from cocoon.container.boot import RunOptions
from cocoon.container.state import State
from cocoon.image.store import ImageStore

if TYPE_CHECKING:
    from cocoon.agent.session import ExitStatus, Process, Sink

POWEROFF_GRACE = 10.0


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
    timings: dict[str, float] = {}
    rec = boot.create(image, opts, stdin=stdin is not None, store=store, timings=timings)
    out, err = bytearray(), bytearray()
    vm = None
    status: ExitStatus | None = None
    # The owner lock tells other cocoon commands this container is alive.
    owner = liveness.hold(rec.id)
    try:
        vm = boot.boot(rec, timings, run_main=True)
        # Imported while the guest runs the process, not before QEMU starts.
        from cocoon.agent.session import Process

        rec.state, rec.started = State.RUNNING.value, time.time()
        rec.monitor_pid, rec.vm_pid = os.getpid(), vm.machine.pid
        rec.vm_start_ticks = liveness.start_ticks(vm.machine.pid)
        records.save(rec)
        process = Process(vm.channel)  # started by boot()
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
        vm.channel.close()
        if opts.remove:
            # The writable disk is about to be deleted: nothing in the guest
            # is worth the sync and unmount of a clean power-off.
            vm.machine.kill()
        else:
            vm.machine.stop(POWEROFF_GRACE)
        timings["teardown"] = time.monotonic() - t3
        # What the host did while the VM was not running is the rest of the
        # caller's wall time: the benchmark's "Python-side overhead".
        timings["vm_alive"] = time.monotonic() - vm.spawned_at
    finally:
        if vm is not None:
            vm.close()
        boot.remove_sockets(rec.id)
        if opts.remove:
            boot.discard(rec.id)
        else:
            rec.state, rec.finished = State.EXITED.value, time.time()
            if status is not None:
                rec.exit_code, rec.error = status.code, status.error
            else:
                rec.error = "the VM stopped before the container process exited"
            with contextlib.suppress(OSError):
                records.save(rec)
        owner.close()
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


__all__ = ["RunOptions", "RunResult", "run"]
