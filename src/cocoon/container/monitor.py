"""The per-container monitor: ``python -m cocoon.container.monitor ID``.

One small process per running container (the conmon model, no central
daemon). It holds the container's owner lock, owns the QEMU process and the
agent connection, writes the output log and the exit status, and serves the
control socket (``control.py``) for exec, attach, stop, kill and wait. It
outlives the ``cocoon`` command that started it, and exits when the VM does.

The agent connection is read by one thread (the main one), which routes
frames by proc: 1 is the container's main process, 2 and up are execs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any

from cocoon.agent.channel import Channel
from cocoon.agent.protocol import Frame, Msg, exit_status, guest_text
from cocoon.agent.session import ExitStatus
from cocoon.container import boot, control, liveness, logs
from cocoon.container import record as records
from cocoon.container.record import Record
from cocoon.container.state import Op, State, check
from cocoon.errors import CocoonError, Corrupt, ExternalError

log = logging.getLogger("cocoon.monitor")

MAIN = 1
# Seconds a client may leave its socket full before it is dropped: well under
# the 5 s the agent waits for the host to read before it gives up on output.
CLIENT_SEND_TIMEOUT = 2
POWEROFF_GRACE = 10.0
SHUTDOWN_GRACE = 5.0
DRAIN_GRACE = 2.0
VM_LOST = "the VM stopped before the container process exited"
_FROM_CLIENT = (Msg.STDIN, Msg.SIGNAL, Msg.RESIZE)


class Monitor:
    def __init__(
        self, rec: Record, vm: boot.BootedVM, *, wait_attach: bool, ready_fd: int | None
    ) -> None:
        self.rec = rec
        self.ready_fd = ready_fd
        self.vm = vm
        self.log = logs.Writer(rec.id)
        self.lock = threading.Lock()
        self.execs: dict[int, Channel] = {}
        self.attached: list[Channel] = []
        self.next_proc = MAIN + 1
        self.main_started = threading.Event()
        self.exited = threading.Event()
        self.status: ExitStatus | None = None
        self.exit_payload: bytes | None = None  # the main process's EXIT, as the agent sent it
        self.stopping = False
        self.requests: list[threading.Thread] = []
        self.wait_attach = wait_attach
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.server.bind(str(boot.sock_dir(rec.id) / control.SOCKET))
        self.server.listen(16)

    # -- the main process and the agent connection -------------------------

    def start_main(self) -> None:
        with self.lock:
            if self.main_started.is_set():
                return
            self.main_started.set()
        self.vm.channel.send(Msg.RUN, MAIN, boot.process_of(self.rec).encode())

    def relay(self) -> tuple[ExitStatus | None, str | None]:
        """Route the agent's frames until the main process exits or the VM is gone."""
        try:
            while (frame := self.vm.channel.recv()) is not None:
                if frame.proc == MAIN:
                    done = self._main_frame(frame)
                    if done is not None:
                        return done, None
                elif frame.proc == 0 and frame.type is Msg.ERROR:
                    return None, f"guest agent: {guest_text(frame.payload)}"
                else:
                    self._exec_frame(frame)
        except CocoonError as e:
            return None, str(e)
        if self.stopping:
            # Forced stop: SHUTDOWN or the VM killed after the grace period.
            return ExitStatus(128 + signal.SIGKILL, signal=signal.SIGKILL), None
        return None, VM_LOST

    def _main_frame(self, frame: Frame) -> ExitStatus | None:
        match frame.type:
            case Msg.STDOUT:
                self.log.write("stdout", frame.payload)
            case Msg.STDERR:
                self.log.write("stderr", frame.payload)
            case Msg.STARTED:
                self.ready({"ok": True})
            case Msg.ERROR:
                self.rec.error = guest_text(frame.payload)
            case Msg.EXIT:
                signaled, code = exit_status(frame.payload)
                status = (
                    ExitStatus(128 + code, signal=code, error=self.rec.error)
                    if signaled
                    else ExitStatus(code, error=self.rec.error)
                )
                self.ready({"error": self.rec.error, "exit_code": status.code})
                # Attached clients get it from finish(), once the record says
                # exited: a client that acts on the exit must find it so.
                self.exit_payload = frame.payload
                return status
            case _:
                raise Corrupt(f"guest protocol: unexpected {frame.type.name} from the guest")
        self._to_attached(frame)
        return None

    def _exec_frame(self, frame: Frame) -> None:
        with self.lock:
            client = self.execs.get(frame.proc)
            if frame.type in (Msg.EXIT, Msg.COUNTERS):
                self.execs.pop(frame.proc, None)
        if client is None:
            return  # its client went away; the output has nobody to go to
        with contextlib.suppress(CocoonError):
            client.send(frame.type, MAIN, frame.payload)
        if frame.type in (Msg.EXIT, Msg.COUNTERS):
            client.close()

    def _to_attached(self, frame: Frame) -> None:
        with self.lock:
            clients = list(self.attached)
        for client in clients:
            try:
                client.send(frame.type, MAIN, frame.payload)
            except CocoonError:
                with self.lock, contextlib.suppress(ValueError):
                    self.attached.remove(client)

    def ready(self, reply: dict[str, Any]) -> None:
        """Tell whoever started the monitor how the start went, once."""
        fd, self.ready_fd = self.ready_fd, None
        _report(fd, reply)

    # -- clients --------------------------------------------------------------

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed at exit
            # One reader thread relays the guest's frames to every client: a
            # client that stops reading must not stall the container, so a
            # send that cannot finish in time drops that client instead.
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", CLIENT_SEND_TIMEOUT, 0)
            )
            thread = threading.Thread(target=self._client, args=(conn,), daemon=True)
            thread.start()
            with self.lock:
                self.requests = [t for t in self.requests if t.is_alive()] + [thread]

    def drain(self) -> None:
        """Let answers to stop and wait go out before the process ends."""
        with self.lock:
            pending = list(self.requests)
        deadline = time.monotonic() + DRAIN_GRACE
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _client(self, conn: socket.socket) -> None:
        try:
            req = control.read_line(conn)
            if req is None:
                conn.close()
                return
            op = req.get("op")
            if op in ("exec", "attach"):
                channel = Channel(conn)
                self._exec(channel) if op == "exec" else self._attach(channel)
                return
            with conn:
                try:
                    reply = self._request(op, req)
                except CocoonError as e:
                    reply = {"error": str(e)}
                conn.sendall(json.dumps(reply).encode() + b"\n")
        except (OSError, ValueError, CocoonError) as e:
            log.debug("client dropped: %s", e)
            conn.close()

    def _request(self, op: str | None, req: dict[str, Any]) -> dict[str, Any]:
        if op == "kill":
            self.signal_main(int(req.get("signal", signal.SIGKILL)))
            return {"ok": True}
        if op == "hosts":
            # A container joined the network: the agent rewrites /etc/hosts.
            self.vm.channel.send(Msg.HOSTS, 0, str(req["content"]).encode())
            return {"ok": True}
        if op == "stop":
            self.stop(int(req["signal"]), float(req["timeout"]))
        elif op != "wait":
            raise CocoonError(f"unknown control request {op!r}")
        self.exited.wait()
        status = self.status
        return {"ok": True, "exit_code": None if status is None else status.code}

    def signal_main(self, signum: int) -> None:
        if not self.exited.is_set():
            self.vm.channel.send(Msg.SIGNAL, MAIN, bytes([signum]))

    def stop(self, signum: int, timeout: float) -> None:
        """Signal, wait ``timeout`` seconds, then shut the VM down, then kill it."""
        if self.exited.is_set():
            return
        self.stopping = True
        with contextlib.suppress(CocoonError):
            self.signal_main(signum)
            if self.exited.wait(timeout):
                return
            self.vm.channel.send(Msg.SHUTDOWN, 0)
        if not self.exited.wait(SHUTDOWN_GRACE):
            self.vm.machine.kill()
        self.exited.wait()

    def _exec(self, channel: Channel) -> None:
        first = channel.recv()
        # A session runs a process (RUN) or asks for the guest's counters (STATS).
        if first is None or first.type not in (Msg.RUN, Msg.STATS):
            channel.close()
            return
        with self.lock:
            if self.exited.is_set():
                proc = None
            else:
                proc, self.next_proc = self.next_proc, self.next_proc + 1
                self.execs[proc] = channel
        if proc is None:
            channel.send(Msg.ERROR, MAIN, b"the container is not running")
            channel.close()
            return
        self.vm.channel.send(first.type, proc, first.payload)
        self._pump(channel, proc)
        with self.lock:
            self.execs.pop(proc, None)

    def _attach(self, channel: Channel) -> None:
        with self.lock:
            self.attached.append(channel)
        if self.wait_attach:
            self.start_main()
        self._pump(channel, MAIN)

    def _pump(self, channel: Channel, proc: int) -> None:
        """Forward the client's input frames to its process until it hangs up."""
        with contextlib.suppress(CocoonError):
            while (frame := channel.recv()) is not None:
                if frame.type in _FROM_CLIENT and not self.exited.is_set():
                    self.vm.channel.send(frame.type, proc, frame.payload)

    # -- the end --------------------------------------------------------------

    def finish(self, status: ExitStatus | None, error: str | None) -> None:
        self.status = status
        # Closing our end tells the agent every byte has been read; it then
        # powers off by itself.
        self.vm.channel.close()
        self.vm.machine.stop(POWEROFF_GRACE)
        self.vm.close()
        self.log.close()
        self.ready({"error": error or VM_LOST})

        def done(r: Record) -> None:
            r.state, r.finished = State.EXITED.value, time.time()
            r.exit_code = None if status is None else status.code
            r.error = error or (status.error if status else None)

        records.update(self.rec.id, done)
        self.exited.set()
        gone = exit_status_frame(signal.SIGKILL)
        with self.lock:
            orphans, self.execs = list(self.execs.values()), {}
            attached, self.attached = list(self.attached), []
        # The agent ends other processes with the main one, without EXITs.
        for client in orphans:
            with contextlib.suppress(CocoonError):
                client.send(Msg.EXIT, MAIN, gone)
            client.close()
        for client in attached:
            if self.exit_payload is not None:
                with contextlib.suppress(CocoonError):
                    client.send(Msg.EXIT, MAIN, self.exit_payload)
            client.close()


def exit_status_frame(signum: int) -> bytes:
    return bytes([1]) + signum.to_bytes(4, "big", signed=True)


def _report(fd: int | None, message: dict[str, Any]) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(message).encode() + b"\n")
        os.close(fd)


def run(container_id: str, ready_fd: int | None, wait_attach: bool) -> int:
    try:
        owner = liveness.hold(container_id)
    except CocoonError as e:
        _report(ready_fd, {"error": str(e)})
        return 1
    rec = records.load(container_id)
    try:
        check(Op.START, rec.state, rec.name)
        vm = boot.boot(rec)
    except CocoonError as e:
        message = str(e)
        records.update(container_id, lambda r: setattr(r, "error", message))
        _report(ready_fd, {"error": message})
        boot.remove_sockets(container_id)
        return 1
    monitor = Monitor(rec, vm, wait_attach=wait_attach, ready_fd=ready_fd)

    def running(r: Record) -> None:
        r.state, r.started, r.finished = State.RUNNING.value, time.time(), None
        r.exit_code = r.error = None
        r.monitor_pid, r.vm_pid = os.getpid(), vm.machine.pid
        r.vm_start_ticks = liveness.start_ticks(vm.machine.pid)

    rec = records.update(container_id, running)
    monitor.rec = rec
    threading.Thread(target=monitor.serve, daemon=True).start()
    if wait_attach:
        monitor.ready({"ok": True})
    else:
        monitor.start_main()
    status, error = monitor.relay()
    monitor.finish(status, error)
    monitor.server.close()
    monitor.drain()
    boot.remove_sockets(container_id)
    if rec.remove:
        boot.discard(container_id)
    owner.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cocoon.container.monitor")
    parser.add_argument("container_id")
    parser.add_argument("--ready-fd", type=int, help="write one JSON line here once started")
    parser.add_argument("--wait-attach", action="store_true",
                        help="start the main process when the first client attaches")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s monitor: %(message)s")
    # Its own session already keeps terminal signals away; a hangup of
    # whatever started it must not end the container either.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        return run(args.container_id, args.ready_fd, args.wait_attach)
    except (CocoonError, ExternalError) as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
