"""The per-container monitor: ``python -m cocoon.container.monitor ID``.

One small process per running container (the conmon model, no central
daemon). It owns the container through the one lifecycle (``lifecycle.py``):
it holds the owner lock, boots the VM, routes the agent's frames
(``router.py``), serves the control socket (``server.py``) for exec, attach,
stop, kill and wait, and records the exit. It outlives the ``cocoon``
command that started it, and exits when the VM does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import cocoon.lazy_inspect  # noqa: F401  (first: dataclasses must find the stand-in)
from cocoon.agent.channel import Channel
from cocoon.agent.protocol import Msg, encode_run
from cocoon.container import control, network, restart
from cocoon.container.lifecycle import VM_LOST, Lifecycle
from cocoon.container.record import sock_dir
from cocoon.container.router import MAIN, AgentRouter
from cocoon.container.server import ControlServer
from cocoon.errors import CocoonError, to_wire
from cocoon.log import Logger, to_stderr

log = Logger("cocoon.monitor")

SHUTDOWN_GRACE = 5.0
_FROM_CLIENT = (Msg.STDIN, Msg.SIGNAL, Msg.RESIZE)


class Monitor:
    def __init__(self, life: Lifecycle, *, wait_attach: bool, ready_fd: int | None) -> None:
        assert life.vm is not None
        self.life = life
        self.vm = life.vm
        self.ready_fd = ready_fd
        self.wait_attach = wait_attach
        self.lock = threading.Lock()
        self.main_started = False
        self.exited = threading.Event()
        self.exit_code: int | None = None
        self.stopped = False  # by stop or kill: a restart policy does not apply
        self.router = AgentRouter(self.vm.channel, life.id)
        self.router.on_started = lambda: self.ready({"ok": True})
        self.router.on_exit = lambda s: self.ready({"error": s.error, "exit_code": s.code})
        self.server = ControlServer(
            sock_dir(life.id) / control.SOCKET,
            requests={"kill": self._kill, "stop": self._stop, "wait": self._wait,
                      "hosts": self._hosts, "pause": self._pause, "unpause": self._unpause,
                      "update": self._update, "unplug": self._unplug},
            streams={"exec": self._exec, "attach": self._attach},
        )  # fmt: skip

    def ready(self, reply: dict[str, Any]) -> None:
        """Tell whoever started the monitor how the start went, once."""
        fd, self.ready_fd = self.ready_fd, None
        _report(fd, reply)

    def start_main(self) -> None:
        with self.lock:
            if self.main_started:
                return
            self.main_started = True
        assert self.life.rec is not None
        self.vm.channel.send(Msg.RUN, MAIN, encode_run(self.life.rec.settings.process))

    # -- requests ---------------------------------------------------------------

    def signal_main(self, signum: int) -> None:
        if not self.exited.is_set():
            self.vm.channel.send(Msg.SIGNAL, MAIN, bytes([signum]))

    def _kill(self, req: dict[str, Any]) -> dict[str, Any]:
        self.stopped = True
        signum = int(req.get("signal", signal.SIGKILL))
        if signum == signal.SIGKILL:
            self._unpause(req)  # as Docker: a paused container can be killed outright
        self.signal_main(signum)
        return {"ok": True}

    def _hosts(self, req: dict[str, Any]) -> dict[str, Any]:
        # A container joined the network: the agent rewrites /etc/hosts.
        self.vm.channel.send(Msg.HOSTS, 0, str(req["content"]).encode())
        return {"ok": True}

    def _stop(self, req: dict[str, Any]) -> dict[str, Any]:
        self.stopped = True
        self._unpause(req)  # a frozen guest could not act on the signal
        self.stop(int(req["signal"]), float(req["timeout"]))
        return self._wait(req)

    def _pause(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if not self.exited.is_set() and not control.paused(self.life.id):
                self.life.pause()
                control.mark_paused(self.life.id, True)
        return {"ok": True}

    def _unpause(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if control.paused(self.life.id):
                control.mark_paused(self.life.id, False)
                if not self.exited.is_set():
                    self.life.resume()
        return {"ok": True}

    def _update(self, req: dict[str, Any]) -> dict[str, Any]:
        # Memory first: set_memory refuses before it changes anything.
        machine = self.vm.machine
        if req.get("memory_mib") is not None:
            machine.set_memory(int(req["memory_mib"]))
        if req.get("cpus") is not None:
            machine.set_cpu_quota(float(req["cpus"]))
        return {"ok": True}

    def _unplug(self, req: dict[str, Any]) -> dict[str, Any]:
        # network disconnect: the card stays in the VM, cut off from its network.
        network.unplug(self.life.id, self.vm.machine, str(req["network"]), str(req["mac"]))
        return {"ok": True}

    def _wait(self, req: dict[str, Any]) -> dict[str, Any]:
        self.exited.wait()
        return {"ok": True, "exit_code": self.exit_code}

    def stop(self, signum: int, timeout: float) -> None:
        """Signal, wait ``timeout`` seconds, then shut the VM down, then kill it."""
        if self.exited.is_set():
            return
        self.router.stopping = True
        with contextlib.suppress(CocoonError):
            self.signal_main(signum)
            if self.exited.wait(timeout):
                return
            self.vm.channel.send(Msg.SHUTDOWN, 0)
        if not self.exited.wait(SHUTDOWN_GRACE):
            self.vm.machine.kill()
        self.exited.wait()

    # -- streams ----------------------------------------------------------------

    def _exec(self, client: Channel) -> None:
        first = client.recv()
        # A session runs a process (RUN) or asks for the guest's counters (STATS).
        if first is None or first.type not in (Msg.RUN, Msg.STATS):
            client.close()
            return
        proc = self.router.open_exec(client, self.exited)
        if proc is None:
            client.send(Msg.ERROR, MAIN, b"the container is not running")
            client.close()
            return
        self.vm.channel.send(first.type, proc, first.payload)
        self._pump(client, proc)
        self.router.close_exec(proc)

    def _attach(self, client: Channel) -> None:
        self.router.attach(client)
        if self.wait_attach:
            self.start_main()
        self._pump(client, MAIN)

    def _pump(self, client: Channel, proc: int) -> None:
        """Forward the client's input frames to its process until it hangs up."""
        with contextlib.suppress(CocoonError):
            while (frame := client.recv()) is not None:
                if frame.type in _FROM_CLIENT and not self.exited.is_set():
                    self.vm.channel.send(frame.type, proc, frame.payload)

    # -- the run ----------------------------------------------------------------

    def run(self) -> None:
        self.server.start()
        if self.wait_attach:
            self.ready({"ok": True})
        else:
            self.start_main()
        assert self.life.rec is not None
        if (check := self.life.rec.settings.health) is not None:
            # Imported here: few containers have a health check, and every
            # monitor would keep these modules in its memory.
            from cocoon.container.health import HealthCheck
            from cocoon.container.prober import Prober

            Prober(self.life.id, HealthCheck.from_json(check), self.exited).start()
        status, error = self.router.relay()
        rec = self.life.end(status, error)
        self.ready({"error": error or VM_LOST})
        self.exit_code = rec.exit_code
        self.exited.set()
        self.router.finish()
        self.server.close()


def _report(fd: int | None, message: dict[str, Any]) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(message).encode() + b"\n")
        os.close(fd)


def _run_once(
    container_id: str,
    ready_fd: int | None,
    wait_attach: bool,
    extend: Callable[[Monitor], None] | None = None,
) -> Monitor | None:
    """Boot, run and end the container once; None if it could not start (reported).

    ``extend`` sees the monitor before its control socket opens (the OCI
    runtime adds requests there)."""
    life = Lifecycle(container_id)
    monitors: list[Monitor] = []

    def prepare(_vm: object) -> None:
        monitors.append(Monitor(life, wait_attach=wait_attach, ready_fd=ready_fd))
        if extend is not None:
            extend(monitors[0])

    try:
        life.begin(prepare=prepare)
    except CocoonError as e:
        _report(ready_fd, to_wire(e))
        return None
    try:
        monitors[0].run()
    finally:
        life.release()
    return monitors[0]


def run(
    container_id: str,
    ready_fd: int | None,
    wait_attach: bool,
    extend: Callable[[Monitor], None] | None = None,
) -> int:
    """Own the container until it exits, and again after each restart its policy asks for."""
    restart.clear(container_id)  # a stale "no restart" from an earlier stop
    attempts, wait = 0, None
    while True:
        began = time.monotonic()
        monitor = _run_once(container_id, ready_fd, wait_attach, extend)
        if monitor is None:  # after a restart: started or removed by someone else meanwhile
            return 1
        ready_fd, wait_attach = None, False  # whoever started the monitor has its answer
        rec = monitor.life.rec
        assert rec is not None
        policy = restart.parse(rec.settings.restart)
        if monitor.stopped or not policy.wants(rec.exit_code, attempts):
            return 0
        wait = restart.delay(wait, time.monotonic() - began)
        log.info("restarting (policy %s) in %.1fs", policy, wait)
        time.sleep(wait)
        if restart.cancelled(container_id):  # kept: unless-stopped stays down at boot
            return 0
        attempts += 1


USAGE = "usage: python -m cocoon.container.monitor ID [--ready-fd FD] [--wait-attach]"


def _arguments(argv: list[str]) -> tuple[str, int | None, bool]:
    """ID, the ready fd and --wait-attach, as ``manager.start`` passes them.

    Read by hand: argparse (and logging, see ``cocoon.log``) would stay in
    the memory of every running container's monitor, ~1.3 MiB each.
    """
    ids, ready_fd, wait_attach = [], None, False
    args = iter(argv)
    for arg in args:
        if arg == "--wait-attach":
            wait_attach = True
        elif arg == "--ready-fd" and (value := next(args, "")).isdigit():
            ready_fd = int(value)
        elif not arg.startswith("-"):
            ids.append(arg)
        else:
            raise SystemExit(f"{USAGE}\nunknown or incomplete argument: {arg}")
    if len(ids) != 1:
        raise SystemExit(USAGE)
    return ids[0], ready_fd, wait_attach


def main(argv: list[str] | None = None) -> int:
    container_id, ready_fd, wait_attach = _arguments(sys.argv[1:] if argv is None else argv)
    to_stderr("monitor")
    # Its own session already keeps terminal signals away; a hangup of
    # whatever started it must not end the container either.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        return run(container_id, ready_fd, wait_attach)
    except CocoonError as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
