"""The per-container process: the pid an engine waits on.

Forked twice by ``create`` (so it is the caller's descendant: conmon and
containerd's shim are child subreapers and adopt it), it owns the container
through cocoon's own monitor (``container/monitor.py``, with the lifecycle,
watchdog and control socket that come with it) and adds what an OCI engine
needs: the main process starts on the ``start`` request, its output goes to
the stdio the engine gave ``create`` (or the pty whose master went over
``--console-socket``), signals this process gets go to the guest process,
and it exits with that process's code, so its wait status is the
container's.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocoon.agent.channel import Channel
from cocoon.agent.protocol import Msg, resize_payload
from cocoon.agent.session import Sink
from cocoon.container import monitor
from cocoon.container.monitor import Monitor
from cocoon.container.router import MAIN
from cocoon.errors import CocoonError
from cocoon.log import Logger, to_stderr
from cocoon.runtime import console
from cocoon.runtime.spawn import LOST

# Not "log": serve() takes the log file by that name.
logger = Logger("cocoon.runtime.shim")

# What a shell's job control and engines send; SIGKILL never reaches us (the
# runtime's kill verb asks over the control socket instead).
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
OUTPUT_DRAIN = 10.0  # seconds to finish writing output once the container is gone


@dataclass(frozen=True, slots=True)
class Stdio:
    """The container's stdio on the host: the engine's fds, or one pty slave for all three."""

    stdin: int
    stdout: int
    stderr: int
    tty: bool = False


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Relay:
    def __init__(self, mon: Monitor, stdio: Stdio, forward_stdin: bool) -> None:
        self.mon = mon
        self.stdio = stdio
        self.forward_stdin = forward_stdin
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Attached like a `cocoon attach` client, minus the socket file.
        mon.router.attach(Channel(theirs))
        self.peer = Channel(ours)
        self.output = threading.Thread(target=self._output, name="oci-output", daemon=True)
        mon.server.requests["start"] = self._start
        mon.server.requests["signal"] = self._signal

    def _start(self, _req: dict[str, Any]) -> dict[str, Any]:
        if self.forward_stdin:
            threading.Thread(target=self._input, name="oci-input", daemon=True).start()
        self.mon.start_main()
        if self.stdio.tty:
            # The engine sized the pty before this process could hear SIGWINCH.
            self.resize()
        return {"ok": True}

    def _signal(self, req: dict[str, Any]) -> dict[str, Any]:
        self.signal(int(req["signal"]))
        return {"ok": True}

    def signal(self, signum: int) -> None:
        """To the main process; before ``start`` there is none, so any signal ends the VM."""
        with self.mon.lock:
            started = self.mon.main_started
        if started:
            with contextlib.suppress(CocoonError):
                self.mon.signal_main(signum)
        else:
            self.mon.router.stopping = True
            self.mon.vm.machine.kill()

    def resize(self) -> None:
        if (rows_columns := console.size(self.stdio.stdout)) is not None:
            with contextlib.suppress(CocoonError):
                self.mon.vm.channel.send(Msg.RESIZE, MAIN, resize_payload(*rows_columns))

    def _output(self) -> None:
        sinks = {Msg.STDOUT: self.stdio.stdout, Msg.STDERR: self.stdio.stderr}
        with contextlib.suppress(CocoonError, OSError):
            while (frame := self.peer.recv()) is not None and frame.type is not Msg.EXIT:
                if (fd := sinks.get(frame.type)) is not None:
                    write_all(fd, frame.payload)

    def _input(self) -> None:
        with contextlib.suppress(CocoonError):
            while True:
                try:
                    data = os.read(self.stdio.stdin, 1 << 16)
                except OSError as e:
                    # A pty whose master is closed reads EIO: its end of input.
                    if e.errno != errno.EIO:
                        raise
                    data = b""
                self.mon.vm.channel.send(Msg.STDIN, MAIN, data)
                if not data:
                    return


def serve(record_id: str, booted: Path, stdio: Stdio, forward_stdin: bool, log: Path) -> int:
    """Run the container to its end; the exit code is the container's.

    How the boot went is one JSON line in ``booted`` (``start`` waits for it).
    """
    began = time.monotonic()
    # create has returned: an engine may signal this process while its VM
    # boots. Held until the VM is up, then handled as any signal is.
    held: list[int] = []
    for signum in FORWARDED:
        signal.signal(signum, lambda n, _f: held.append(n))
    # Nothing of ours may reach the container's stdio, and the VMM must not
    # hold the engine's pipes open: 0-2 become /dev/null and the shim's log.
    stdio = Stdio(os.dup(stdio.stdin), os.dup(stdio.stdout), os.dup(stdio.stderr), stdio.tty)
    null = os.open(os.devnull, os.O_RDWR)
    logfd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for target, source in ((0, null), (1, logfd), (2, logfd)):
        os.dup2(source, target)
    # Without logging, as the monitor: it would stay in this process's memory.
    to_stderr("shim")
    if stdio.tty:
        import termios  # here, as tty in console.terminal: only for a terminal

        # SIGWINCH comes to the session whose controlling terminal this is.
        fcntl.ioctl(stdio.stdout, termios.TIOCSCTTY, 0)
    relays: list[Relay] = []

    def extend(mon: Monitor) -> None:
        # The runtime's own share of a start against the VM's (bench/runtime.py reads it).
        spawned = mon.vm.spawned_at
        logger.info("VMM started %.3f s after this process, agent ready %.3f s later",
                    spawned - began, time.monotonic() - spawned)  # fmt: skip
        relays.append(Relay(mon, stdio, forward_stdin))
        relays[0].output.start()
        for signum in FORWARDED:
            signal.signal(signum, _forward(relays[0], signum))
        for signum in held:
            relays[0].signal(signum)
        if stdio.tty:
            signal.signal(signal.SIGWINCH, lambda *_: relays[0].resize())

    report = os.open(booted, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    monitor.run(record_id, report, wait_attach=True, extend=extend)
    if not relays:
        return LOST
    relay = relays[0]
    relay.output.join(OUTPUT_DRAIN)
    code = relay.mon.exit_code
    return LOST if code is None else code


def _forward(relay: Relay, signum: int) -> Any:
    # A handler runs on the main thread, which may be inside a send: hand off.
    def handler(*_: object) -> None:
        threading.Thread(target=relay.signal, args=(signum,), daemon=True).start()

    return handler


__all__ = ["FORWARDED", "Sink", "Stdio", "serve", "write_all"]
