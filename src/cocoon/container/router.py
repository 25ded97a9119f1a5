"""The monitor's reader of the agent connection: every frame from the guest goes somewhere.

One thread reads the connection and routes frames by proc: 1 is the
container's main process (to the output log and to attached clients), 2 and
up are execs (each to the client that started it). A client that cannot keep
up is dropped rather than allowed to stall the container.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from cocoon.agent.channel import Channel
from cocoon.agent.protocol import Frame, Msg, exit_status, guest_text
from cocoon.agent.session import ExitStatus, decode_exit
from cocoon.container import logs
from cocoon.container.lifecycle import VM_LOST
from cocoon.errors import CocoonError, Corrupt

MAIN = 1


def killed_payload(signum: int) -> bytes:
    """An EXIT payload saying "killed by ``signum``": for processes the agent ended silently."""
    return bytes([1]) + signum.to_bytes(4, "big", signed=True)


class AgentRouter:
    def __init__(self, agent: Channel, container_id: str) -> None:
        self.agent = agent
        self.log = logs.Writer(container_id)
        self.lock = threading.Lock()
        self.execs: dict[int, Channel] = {}
        self.attached: list[Channel] = []
        self.next_proc = MAIN + 1
        self.error: str | None = None  # why the main process could not start
        self.exit_payload: bytes | None = None  # the main process's EXIT, as the agent sent it
        self.stopping = False
        self.on_started = lambda: None
        self.on_exit = lambda status: None

    def relay(self) -> tuple[ExitStatus | None, str | None]:
        """Route the agent's frames until the main process exits or the VM is gone."""
        try:
            while (frame := self.agent.recv()) is not None:
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
        if self.agent.lost:
            # The watchdog stopped a silent guest: the process was killed with it.
            return ExitStatus(128 + signal.SIGKILL, signal.SIGKILL, self.agent.lost), None
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
                self.on_started()
            case Msg.ERROR:
                self.error = guest_text(frame.payload)
            case Msg.EXIT:
                status = decode_exit(exit_status(frame.payload), self.error)
                self.on_exit(status)
                # Attached clients get it from finish(), once the record says
                # exited: a client that acts on the exit must find it so.
                self.exit_payload = frame.payload
                return status
            case _:
                raise Corrupt(f"guest protocol: unexpected {frame.type.name} from the guest")
        self._to_attached(frame)
        return None

    def _exec_frame(self, frame: Frame) -> None:
        last = frame.type in (Msg.EXIT, Msg.COUNTERS)
        with self.lock:
            client = self.execs.pop(frame.proc, None) if last else self.execs.get(frame.proc)
        if client is None:
            return  # its client went away; the output has nobody to go to
        with contextlib.suppress(CocoonError):
            client.send(frame.type, MAIN, frame.payload)
        if last:
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

    def open_exec(self, client: Channel, exited: threading.Event) -> int | None:
        """A proc number for the client's process; None once the container has exited."""
        with self.lock:
            if exited.is_set():
                return None
            proc, self.next_proc = self.next_proc, self.next_proc + 1
            self.execs[proc] = client
            return proc

    def close_exec(self, proc: int) -> None:
        with self.lock:
            self.execs.pop(proc, None)

    def attach(self, client: Channel) -> None:
        with self.lock:
            self.attached.append(client)

    def finish(self) -> None:
        """The container has exited: tell every client, then close them."""
        self.log.close()
        gone = killed_payload(signal.SIGKILL)
        with self.lock:
            orphans, self.execs = list(self.execs.values()), {}
            attached, self.attached = list(self.attached), []
        # The agent ends other processes with the main one, without EXITs.
        for client in orphans:
            with contextlib.suppress(CocoonError):
                client.send(Msg.EXIT, MAIN, gone)
            client.close()
        # A guest the watchdog stopped sent no EXIT: its process was killed.
        final = self.exit_payload or (gone if self.agent.lost else None)
        for client in attached:
            if final is not None:
                with contextlib.suppress(CocoonError):
                    client.send(Msg.EXIT, MAIN, final)
            client.close()


__all__ = ["MAIN", "AgentRouter", "killed_payload"]
