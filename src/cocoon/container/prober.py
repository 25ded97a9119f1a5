"""The monitor's health prober: runs a container's health check as an exec through its agent.

The check's settings, the status's shape and where it is kept are in
``health.py``, which ``ls``, ``inspect`` and ``wait`` read without this
module (it reaches containers through ``manager``, which they sit below).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from typing import Any

from cocoon.container.health import KEEP_RESULTS, MAX_OUTPUT, STATE, HealthCheck
from cocoon.container.record import sock_dir
from cocoon.errors import CocoonError
from cocoon.files import write_atomic


def _stamp(t: float) -> str:
    from cocoon.stamps import rfc3339

    return rfc3339(t) or ""


class Prober:
    """The monitor's thread that runs the check until the container exits."""

    def __init__(self, container_id: str, check: HealthCheck, exited: threading.Event) -> None:
        self.id = container_id
        self.check = check
        self.exited = exited
        self.started = time.time()
        self.state: dict[str, Any] = {"Status": "starting", "FailingStreak": 0, "Log": []}

    def start(self) -> None:
        self._save()
        threading.Thread(target=self._loop, name="cocoon-health", daemon=True).start()

    def _loop(self) -> None:
        while not self.exited.wait(self.check.interval):
            began = time.time()
            try:
                code, output = self._probe()
            except CocoonError as e:  # paused, or stopping: no verdict this time
                if self.exited.is_set():
                    return
                code, output = None, str(e)
            if code is not None:
                self._record(began, code, output)

    def _probe(self) -> tuple[int, str]:
        from cocoon.container import manager

        rec = manager.get(self.id)
        process = manager.exec_start(self.id, manager.exec_spec(rec, self.check.argv()))
        out = bytearray()
        result: list[int] = []

        def collect(data: bytes) -> None:
            if len(out) < MAX_OUTPUT:
                out.extend(data[: MAX_OUTPUT - len(out)])

        def relay() -> None:
            with contextlib.suppress(CocoonError, OSError):  # closed after a timeout
                status = process.relay(collect, collect)
                if status.error:
                    collect(status.error.encode())
                result.append(status.code)

        runner = threading.Thread(target=relay, daemon=True)
        runner.start()
        runner.join(self.check.timeout)
        try:
            if runner.is_alive():
                process.signal(signal.SIGKILL)
                return -1, f"health check exceeded its timeout ({self.check.timeout:g}s)"
            return (result[0] if result else -1), out.decode(errors="replace")
        finally:
            process.channel.close()

    def _record(self, began: float, code: int, output: str) -> None:
        now = time.time()
        state = self.state
        result = {"Start": _stamp(began), "End": _stamp(now), "ExitCode": code, "Output": output}
        state["Log"] = [*state["Log"], result][-KEEP_RESULTS:]
        if code == 0:
            state["Status"], state["FailingStreak"] = "healthy", 0
        elif began - self.started >= self.check.start_period or state["Status"] != "starting":
            state["FailingStreak"] += 1
            if state["FailingStreak"] >= self.check.retries:
                state["Status"] = "unhealthy"
        self._save()

    def _save(self) -> None:
        if not self.exited.is_set():
            with contextlib.suppress(OSError):  # the run dir goes when the VM stops
                write_atomic(sock_dir(self.id) / STATE, json.dumps(self.state).encode())


__all__ = ["Prober"]
