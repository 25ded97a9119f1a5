"""One container's life in the process that owns its VM: the one path every start takes.

    hold the owner lock -> boot -> to_running -> (the owner relays) ->
    close the agent channel -> stop the VM -> to_exited -> release
    (sockets removed, the container discarded if it was made with --rm)

The foreground ``cocoon run`` and the per-container monitor are both owners;
they differ only in what they do while the container runs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from cocoon.agent.keepalive import Watchdog
from cocoon.container import boot, events, liveness
from cocoon.container import record as records
from cocoon.container.record import Record
from cocoon.container.state import Op, check, to_exited, to_running
from cocoon.errors import CocoonError, NotFound

if TYPE_CHECKING:
    from cocoon.agent.session import ExitStatus

# How long a guest may take to sync and power off once its main process is done.
POWEROFF_GRACE = 10.0
VM_LOST = "the VM stopped before the container process exited"


class Lifecycle:
    def __init__(self, container_id: str) -> None:
        self.id = container_id
        self.rec: Record | None = None
        self.vm: boot.BootedVM | None = None
        self._owner: IO[str] | None = None
        self.stopped_at: float | None = None  # time.monotonic() once the VM is gone
        self._watchdog: Watchdog | None = None

    def begin(
        self,
        *,
        run_main: bool = False,
        timings: dict[str, float] | None = None,
        prepare: Callable[[boot.BootedVM], None] | None = None,
    ) -> boot.BootedVM:
        """Own the container and boot its VM; on failure, record why and let go.

        ``prepare`` runs once the agent is up and before the record says
        running: whatever clients of a running container reach (the control
        socket) must exist by then.
        """
        self._owner = liveness.hold(self.id)
        try:
            rec = records.load(self.id)
            self.rec = rec
            check(Op.START, rec.state, rec.name)
            # An owner killed outright (a reboot, SIGKILL) left its sockets; ours now.
            boot.remove_sockets(self.id)
            vm = boot.boot(rec, timings, run_main=run_main)
            self.vm = vm
            if prepare is not None:
                prepare(vm)
            # A guest that halts or hangs says nothing more: the watchdog
            # stops its VM, and whoever reads the channel learns why.
            self._watchdog = Watchdog(vm.channel, vm.machine.kill).start()
            ticks = liveness.start_ticks(vm.machine.pid)
            self.rec = records.update(
                self.id,
                lambda r: to_running(
                    r, owner_pid=os.getpid(), vm_pid=vm.machine.pid, vm_start_ticks=ticks
                ),
            )
            events.emit("start", self.rec)
        except BaseException as e:
            if self._watchdog is not None:
                self._watchdog.stop()
            if self.vm is not None:
                self.vm.close()
            if isinstance(e, CocoonError) and self.rec is not None:
                message = str(e)
                with contextlib.suppress(NotFound):  # removed meanwhile
                    records.update(self.id, lambda r: setattr(r, "error", message))
            self.release()
            raise
        return vm

    def end(self, status: ExitStatus | None, error: str | None, *, fast: bool = False) -> Record:
        """The main process is done, or the VM is gone: stop the VM and record how it ended.

        ``fast`` kills the VM instead of letting the guest sync its disk: for
        a container about to be removed, nothing on that disk matters.
        """
        vm = self.vm
        assert vm is not None
        if self._watchdog is not None:
            self._watchdog.stop()
        # Closing our end tells the agent every byte has been read; it then
        # powers off by itself (the VMM drops what the host has not taken).
        vm.channel.close()
        # A guest without a disk has nothing to sync (9p shares write through
        # to the host): its poweroff is not worth waiting for.
        if fast or not vm.machine.spec.disks:
            vm.machine.kill()
        else:
            vm.machine.stop(POWEROFF_GRACE)
        self.stopped_at = time.monotonic()
        vm.close()
        code = None if status is None else status.code
        why = error or (status.error if status is not None else VM_LOST)
        self.rec = records.update(self.id, lambda r: to_exited(r, code, why))
        events.emit("die", self.rec, exitCode=str(-1 if code is None else code))
        return self.rec

    def pause(self) -> None:
        """Freeze the VM's CPUs (``cocoon pause``); the watchdog holds off meanwhile."""
        assert self.vm is not None
        if self._watchdog is not None:
            self._watchdog.hold()
        self.vm.machine.pause()

    def resume(self) -> None:
        assert self.vm is not None
        self.vm.machine.resume()
        if self._watchdog is not None:
            self._watchdog.release()

    def release(self) -> None:
        """Let go of the container: its sockets, its lock, and all of it if made with --rm."""
        boot.remove_sockets(self.id)
        if self.rec is not None and self.rec.remove:
            boot.discard(self.id, remove_volumes=True)
        if self._owner is not None:
            self._owner.close()
            self._owner = None


__all__ = ["POWEROFF_GRACE", "VM_LOST", "Lifecycle"]
