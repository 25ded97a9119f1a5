"""``/containers/{id}/exec`` and ``/exec/{id}/...``: extra processes in a running container.

An exec is made (its settings kept here, in memory, as dockerd does), then
started once, attached to the caller's connection or detached; its exit
code stays here for ``GET /exec/{id}/json``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from cocoon.agent.session import ExitStatus, Process
from cocoon.agent.spec import ProcessSpec
from cocoon.container import manager
from cocoon.container.options import env_list
from cocoon.container.state import State
from cocoon.errors import CocoonError, InvalidArgument, InvalidState, NotFound
from cocoon.service import streams
from cocoon.service.create import DEFAULT_TTY
from cocoon.service.http import Request
from cocoon.service.lookup import find


@dataclass(slots=True)
class Exec:
    id: str
    container_id: str
    spec: ProcessSpec
    attach_stdout: bool
    attach_stderr: bool
    started: bool = False
    running: bool = False
    exit_code: int | None = None
    process: Process | None = None  # while it runs: resizes go to it

    def view(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "ContainerID": self.container_id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "Pid": 0,
            "OpenStdin": self.spec.stdin,
            "OpenStdout": self.attach_stdout,
            "OpenStderr": self.attach_stderr,
            "CanRemove": False,
            "DetachKeys": "",
            "ProcessConfig": {
                "tty": self.spec.tty is not None,
                "entrypoint": self.spec.args[0],
                "arguments": self.spec.args[1:],
                "privileged": False,
                "user": self.spec.user,
            },
        }


class Execs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._execs: dict[str, Exec] = {}

    def create(self, req: Request) -> dict[str, str]:
        body = req.json_object()
        rec = find(req.match["id"])
        if rec.state != State.RUNNING:
            raise InvalidState(f"Container {rec.id} is not running")
        if body.get("Privileged"):
            raise InvalidArgument("cocoon does not serve privileged execs")
        cmd = body.get("Cmd")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
            raise InvalidArgument("No exec command specified")
        spec = manager.exec_spec(
            rec,
            cmd,
            env=env_list(body.get("Env") or []),
            workdir=body.get("WorkingDir") or None,
            user=body.get("User") or None,
            tty=DEFAULT_TTY if body.get("Tty") else None,
            interactive=bool(body.get("AttachStdin")),
        )
        new = Exec(os.urandom(32).hex(), rec.id, spec,
                   bool(body.get("AttachStdout")), bool(body.get("AttachStderr")))  # fmt: skip
        with self._lock:
            self._execs[new.id] = new
        return {"Id": new.id}

    def _get(self, exec_id: str) -> Exec:
        with self._lock:
            found = self._execs.get(exec_id)
        if found is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return found

    def inspect(self, req: Request) -> dict[str, Any]:
        return self._get(req.match["id"]).view()

    def start(self, req: Request) -> None:
        body = req.json_object()
        ex = self._get(req.match["id"])
        with self._lock:
            if ex.started:
                raise InvalidState(f"exec {ex.id} has already been started")
            ex.started = ex.running = True
        try:
            process = ex.process = manager.exec_start(ex.container_id, ex.spec)
        except CocoonError:
            ex.running = False
            raise
        if body.get("Detach"):
            req.handler.reply_empty(200)
            threading.Thread(target=self._finish, args=(ex, process), daemon=True).start()
            return
        req.handler.hijack()
        try:
            status = streams.relay(process, req.handler.connection, req.handler.rfile,
                                   tty=ex.spec.tty is not None, stdin=ex.spec.stdin,
                                   stdout=ex.attach_stdout, stderr=ex.attach_stderr)  # fmt: skip
        finally:
            process.channel.close()
        self._done(ex, status)

    def _finish(self, ex: Exec, process: Process) -> None:
        status = None
        try:
            status = process.relay(lambda data: None, lambda data: None)
        except CocoonError:
            pass
        finally:
            process.channel.close()
        self._done(ex, status)

    def _done(self, ex: Exec, status: ExitStatus | None) -> None:
        with self._lock:
            ex.running, ex.process = False, None
            # None: the container went away under it, which killed it.
            ex.exit_code = status.code if status is not None else 137

    def resize(self, req: Request) -> None:
        ex = self._get(req.match["id"])
        process = ex.process
        if process is None:
            raise InvalidState(f"exec {ex.id} is not running")
        process.resize(req.number("h", 24) or 24, req.number("w", 80) or 80)


__all__ = ["Exec", "Execs"]
