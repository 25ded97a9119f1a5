"""Run one container in its own VM, in the foreground: ``cocoon run``'s engine.

image -> root disk (cached) + the container's overlay -> QEMU microvm ->
agent READY -> RUN -> relay stdio -> EXIT -> guest powers off, through the
same lifecycle as a monitored container (``lifecycle.py``). Whatever happens,
the VM is stopped and its sockets removed before returning.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cocoon.container import boot, volumes
from cocoon.container.lifecycle import Lifecycle
from cocoon.container.options import RunOptions
from cocoon.errors import CocoonError
from cocoon.image.store import ImageStore

if TYPE_CHECKING:
    from cocoon.agent.session import ExitStatus, Process, Sink


@dataclass(slots=True)
class RunResult:
    """How a container run to its end went: exit, output, where the time went."""

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
    on_create: Callable[[str], None] | None = None,
    store: ImageStore | None = None,
) -> RunResult:
    """Run ``image`` and wait for its process to exit.

    ``stdin`` is bytes to send, a file descriptor to forward until EOF, or
    None for /dev/null. Output goes to ``stdout``/``stderr`` callables, or is
    collected into the result when they are None. ``on_start`` gets the
    running process (to forward signals or terminal resizes); ``on_create``
    the new container's id, before its VM boots (``--cidfile``).
    """
    opts = options or RunOptions()
    timings: dict[str, float] = {}
    rec = boot.create(image, opts, stdin=stdin is not None, store=store, timings=timings)
    if on_create is not None:
        try:
            on_create(rec.id)
        except BaseException:
            boot.discard(rec.id)
            raise
    out, err = bytearray(), bytearray()
    life = Lifecycle(rec.id)
    vm = life.begin(run_main=True, timings=timings)
    status: ExitStatus | None = None
    error: str | None = None
    forced = False
    try:
        # Imported while the guest runs the process, not before QEMU starts.
        from cocoon.agent.session import Process

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
    except CocoonError as e:
        error = str(e)
        raise
    except KeyboardInterrupt:
        # The user insisted (a second Ctrl-C): no grace for the guest.
        error, forced = "interrupted: the VM was stopped", True
        raise
    finally:
        t3 = time.monotonic()
        life.end(status, error, fast=(opts.remove and not volumes.outlive(rec)) or forced)
        timings["teardown"] = time.monotonic() - t3
        # What the host did while the VM was not running is the rest of the
        # caller's wall time: the benchmark's "Python-side overhead".
        timings["vm_alive"] = (life.stopped_at or time.monotonic()) - vm.spawned_at
        life.release()
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
