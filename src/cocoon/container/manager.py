"""Container lifecycle, as a library: create, start, stop, kill, remove, list, inspect, wait, exec.

Every operation finds the container by id, name or unique id prefix, brings
its record up to date with reality (``liveness.reconcile``), checks the state
machine (``state.check``), then acts: on the record, or through the
container's monitor (``control``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cocoon.agent.protocol import Msg, exit_status, guest_text
from cocoon.agent.session import ExitStatus, Process, decode_exit
from cocoon.agent.spec import ProcessSpec
from cocoon.container import boot, control, events, liveness
from cocoon.container import record as records
from cocoon.container import restart as restarts
from cocoon.container.options import RunOptions
from cocoon.container.record import Record
from cocoon.container.spec import check_exec_size, env_entry, merge_env
from cocoon.container.state import Op, State, check
from cocoon.errors import (
    ExternalError,
    InvalidArgument,
    InvalidState,
    NotFound,
    Timeout,
    from_code,
)
from cocoon.image.store import ImageStore
from cocoon.network.ports import PortSpec
from cocoon.signals import parse_signal

COUNTERS_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 10.0  # Docker's
SESSION_PROC = 1  # in a control session, proc 1 is the client's own
MONITOR_EXIT_TIMEOUT = 60.0  # after the VM is gone the monitor only writes the record


def _current(rec: Record) -> Record:
    """``rec`` as it truly is now; NotFound for a --rm container whose owner died."""
    rec = liveness.reconcile(rec)
    if liveness.orphaned_rm(rec):
        boot.remove_sockets(rec.id)
        boot.discard(rec.id, remove_volumes=True)
        raise NotFound(f"no such container: {rec.name} (removed: it was run with --rm)")
    return rec


def get(ref: str) -> Record:
    """The container ``ref`` names, as it truly is now."""
    return _current(records.find(ref))


def containers(
    all: bool = False, filters: Mapping[str, str | Sequence[str]] | None = None
) -> list[Record]:
    """Containers, newest first; only running ones unless ``all`` (or a status filter);
    ``filters`` as ``ls --filter`` takes them (``container.filters``)."""
    from cocoon.container import filters as container_filters

    wanted = container_filters.checked(filters or {})
    all = all or "status" in wanted
    found = []
    for rec in records.all_records():
        with contextlib.suppress(NotFound):  # a --rm container whose owner died: now gone
            found.append(_current(rec))
    found.sort(key=lambda r: r.created, reverse=True)
    return [
        r
        for r in found
        if (all or r.state == State.RUNNING) and container_filters.matches(r, wanted)
    ]


def create(image: str, options: RunOptions, store: ImageStore | None = None) -> Record:
    return boot.create(image, options, stdin=options.interactive, store=store)


def start(ref: str, *, wait_attach: bool = False) -> Record:
    """Boot the container's VM under a new monitor; return once its process runs.

    With ``wait_attach`` the monitor boots the VM but starts the process only
    when a client attaches, so that client sees all of its output.
    """
    rec = get(ref)
    check(Op.START, rec.state, rec.name)
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "cocoon.container.monitor", rec.id, "--ready-fd", str(write_end)]
    if wait_attach:
        argv.append("--wait-attach")
    try:
        with open(records.folder(rec.id) / "monitor.log", "ab") as monitor_log:
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=monitor_log,
                pass_fds=(write_end,),
                # Its own session: the terminal's signals and hangup are not its.
                start_new_session=True,
            )
    except OSError as e:
        raise ExternalError(f"cannot start the container's monitor: {e.strerror}") from e
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    try:
        reply = json.loads(answer)
    except ValueError:
        reply = {"error": "the container's monitor exited during start (see monitor.log)"}
    if reply.get("error"):
        error = from_code(reply.get("code", ExternalError.code), str(reply["error"]))
        if isinstance(reply.get("exit_code"), int):  # the command itself could not start
            error.exit_status = reply["exit_code"]
        raise error
    return records.load(rec.id)


def start_restartable() -> list[Record]:
    """Start what Docker's daemon brings back at boot: ``always``, and ``unless-stopped``
    containers nobody stopped (``cocoon start --all-restartable``, e.g. from a unit)."""
    started = []
    for rec in containers(all=True):
        policy = restarts.parse(rec.settings.restart if rec.config else "no").name
        wanted = policy == "always" or (
            policy == "unless-stopped" and not restarts.cancelled(rec.id)
        )
        if wanted and rec.state != State.RUNNING:
            started.append(start(rec.id))
    return started


def run_detached(image: str, options: RunOptions, store: ImageStore | None = None) -> Record:
    rec = create(image, options, store)
    return start(rec.id)


def _wait_owner_gone(rec: Record, timeout: float) -> Record:
    deadline = time.monotonic() + timeout
    while liveness.owner_alive(rec.id):
        if time.monotonic() > deadline:
            raise Timeout(f"container {rec.name} did not stop within {timeout:g}s")
        time.sleep(0.05)
    try:
        return _current(records.load(rec.id))
    except NotFound:
        return rec  # it was run with --rm: its owner removed it on the way out


def _signal_owner(rec: Record, signum: int) -> None:
    """A foreground ``cocoon run`` has no control socket; it relays signals itself."""
    if rec.monitor_pid is None:
        raise InvalidState(f"container {rec.name} is not running")
    with contextlib.suppress(ProcessLookupError):
        os.kill(rec.monitor_pid, signum)


def stop(ref: str, timeout: float | None = None, signal_name: str | None = None) -> Record:
    """Signal the main process, wait ``timeout`` seconds, then power the VM off.

    ``timeout`` defaults to the container's ``--stop-timeout``, else 10 s.
    """
    rec = get(ref)
    if rec.settings.restart != "no":
        # Stopped on purpose: no restart now (between two runs, the monitor reads
        # this), nor at boot for unless-stopped, until the next start.
        restarts.cancel(rec.id)
        if rec.state != State.RUNNING:
            return rec
    check(Op.STOP, rec.state, rec.name)
    if timeout is None:
        timeout = rec.settings.stop_timeout
        timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
    signal_name = signal_name or rec.settings.stop_signal or "SIGTERM"
    signum = parse_signal(signal_name)
    events.emit("kill", rec, signal=signal_name)  # then die, then stop: as dockerd
    stopped = _stop(rec, signum, timeout)
    events.emit("stop", stopped)
    return stopped


def _stop(rec: Record, signum: int, timeout: float) -> Record:
    try:
        control.request(rec.id, "stop", signal=signum, timeout=timeout)
    except InvalidState:
        _signal_owner(rec, signum)
        with contextlib.suppress(Timeout):
            return _wait_owner_gone(rec, timeout)
        _signal_owner(rec, signal.SIGKILL)
    return _wait_owner_gone(rec, MONITOR_EXIT_TIMEOUT)


def kill(ref: str, signal_name: str = "SIGKILL") -> Record:
    rec = get(ref)
    check(Op.KILL, rec.state, rec.name)
    signum = parse_signal(signal_name)
    events.emit("kill", rec, signal=signal_name)
    try:
        control.request(rec.id, "kill", signal=signum)
    except InvalidState:
        _signal_owner(rec, signum)
    return rec


def restart(ref: str, timeout: float | None = None) -> Record:
    """Stop the container if it runs, then start it again (``docker restart``)."""
    rec = get(ref)
    if rec.state == State.RUNNING:
        rec = stop(rec.id, timeout)
    return start(rec.id)


def _monitored(rec: Record, op: str) -> dict[str, Any]:
    try:
        return control.request(rec.id, op)
    except InvalidState:
        raise InvalidState(
            f"container {rec.name} runs in the foreground: only a container started "
            f"with -d or start can be {op}d"
        ) from None


def pause(ref: str) -> Record:
    """Freeze the container's VM (its CPUs stop; memory and connections stay)."""
    rec = get(ref)
    check(Op.KILL, rec.state, rec.name)  # whatever may be signalled may be paused
    if control.paused(rec.id):
        raise InvalidState(f"container {rec.name} is already paused")
    _monitored(rec, "pause")
    events.emit("pause", rec)
    return rec


def unpause(ref: str) -> Record:
    rec = get(ref)
    if rec.state != State.RUNNING or not control.paused(rec.id):
        raise InvalidState(f"container {rec.name} is not paused")
    _monitored(rec, "unpause")
    events.emit("unpause", rec)
    return rec


def rename(ref: str, new_name: str) -> Record:
    """Give the container another name; its address keeps, its peers learn it on their next join."""
    rec = get(ref)
    records.rename(rec.id, new_name)
    if networks := rec.settings.network.networks():
        from cocoon.network import ipam

        for network in networks:
            ipam.rename_lease(network, rec.id, new_name)
    renamed = records.load(rec.id)
    events.emit("rename", renamed, oldName=rec.name)
    return renamed


def connect(ref: str, network: str, aliases: Sequence[str] = ()) -> Record:
    """Put a container that is not running on one more network (``network connect``)."""
    from cocoon.container import network as networking

    return networking.connect(get(ref).id, network, aliases)


def disconnect(ref: str, network: str) -> Record:
    """Take a container off a network (``network disconnect``); a running VM's card
    there is cut off, and gone at its next boot."""
    from cocoon.container import network as networking

    return networking.disconnect(get(ref).id, network)


def ports(ref: str) -> list[PortSpec]:
    """The container's published ports, as ``docker port`` lists them."""
    return list(get(ref).settings.network.ports)


def remove(ref: str, force: bool = False, *, volumes: bool = False) -> Record:
    """Remove a container; with ``volumes`` its anonymous volumes too (rm -v)."""
    rec = get(ref)
    check(Op.FORCE_REMOVE if force else Op.REMOVE, rec.state, rec.name)
    if rec.state == State.RUNNING:
        rec = stop(rec.id, timeout=0, signal_name="SIGKILL")
    liveness.kill_orphan_vm(rec)
    boot.remove_sockets(rec.id)
    boot.discard(rec.id, remove_volumes=volumes)
    return rec


def prune() -> list[Record]:
    """Remove every container that is not running."""
    removed = []
    for rec in containers(all=True):
        if rec.state != State.RUNNING:
            with contextlib.suppress(InvalidState):
                removed.append(remove(rec.id))
    return removed


def wait(ref: str) -> Record:
    """Block until the container is no longer running; its final record."""
    rec = get(ref)
    if rec.state == State.RUNNING:
        with contextlib.suppress(InvalidState):
            control.request(rec.id, "wait")
        rec = _wait_owner_gone(rec, float("inf"))
    return rec


def wait_healthy(ref: str, timeout: float | None = None) -> Record:
    """Block until the container's health check passes; InvalidState if it stops first."""
    from cocoon.container import health

    rec = get(ref)
    if rec.settings.health is None:
        raise InvalidArgument(f"container {rec.name} has no health check")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        rec = get(rec.id)
        if rec.state != State.RUNNING:
            raise InvalidState(f"container {rec.name} stopped before it was healthy")
        if (health.read(rec.id) or {}).get("Status") == "healthy":
            return rec
        if deadline is not None and time.monotonic() > deadline:
            raise Timeout(f"container {rec.name} is not healthy after {timeout:g}s")
        time.sleep(0.1)


def inspect(ref: str) -> dict[str, Any]:
    """The container's details in ``docker inspect``'s shape (see ``container/inspect.py``)."""
    from cocoon.container.inspect import view

    return view(get(ref))


def exec_spec(
    rec: Record,
    args: list[str],
    *,
    env: list[str] | tuple[str, ...] = (),
    workdir: str | None = None,
    user: str | None = None,
    tty: tuple[int, int] | None = None,
    interactive: bool = False,
) -> ProcessSpec:
    """An extra process: the main process's env, cwd and user unless overridden."""
    if not args:
        raise InvalidArgument("exec needs a command")
    main = rec.settings.process
    extra = [e for item in env if (e := env_entry(item, os.environ))]
    if workdir is not None and not workdir.startswith("/"):
        raise InvalidArgument(f"working directory {workdir!r} must be an absolute path")
    merged = merge_env(main.env, ["TERM=xterm"] if tty else [], extra)
    check_exec_size(args, merged)
    return ProcessSpec(
        args=list(args),
        env=merged,
        cwd=workdir or main.cwd,
        user=user or main.user,
        tty=tty,
        stdin=interactive,
        # As Docker: an exec'd process has the container's limits and extra groups.
        rlimits=main.rlimits,
        groups=main.groups,
    )


def exec_start(ref: str, spec: ProcessSpec) -> Process:
    """Start ``spec`` in the running container; relay it with ``Process.relay``."""
    rec = get(ref)
    check(Op.EXEC, rec.state, rec.name)
    if control.paused(rec.id):
        raise InvalidState(f"container {rec.name} is paused: unpause it first")
    process = Process(control.session(rec.id, "exec"))
    process.start(spec)
    return process


def exec_detached(ref: str, spec: ProcessSpec) -> None:
    """Start ``spec`` and return once it runs, its output dropped (``docker exec -d``).

    A command that cannot start raises, with its 126/127 as the exit status.
    """
    process = exec_start(ref, spec)
    error = None
    try:
        while (frame := process.channel.recv()) is not None:
            if frame.type is Msg.STARTED:
                return
            if frame.type is Msg.ERROR:
                error = guest_text(frame.payload)
            elif frame.type is Msg.EXIT:
                if error is None:
                    return  # it ran and is already done
                failure = ExternalError(error)
                failure.exit_status = decode_exit(exit_status(frame.payload)).code
                raise failure
    finally:
        process.channel.close()
    raise ExternalError("the container stopped before the command started")


def exec_run(
    ref: str, args: list[str], *, stdin: bytes | None = None, merge: bool = False, **spec: Any
) -> tuple[ExitStatus, bytes, bytes]:
    """Run a command in the running container, ``stdin`` given to it whole (closed
    after), and collect its output; with ``merge`` stderr goes with stdout, in the
    order they came."""
    rec = get(ref)
    process = exec_start(rec.id, exec_spec(rec, args, interactive=stdin is not None, **spec))
    out, err = bytearray(), bytearray()
    try:
        if stdin is not None:
            process.send_stdin(stdin)
        status = process.relay(out.extend, out.extend if merge else err.extend)
    finally:
        process.channel.close()
    return status, bytes(out), bytes(err)


def counters(ref: str) -> str:
    """The guest kernel's /proc/stat and /proc/meminfo, read by the agent itself."""
    rec = get(ref)
    check(Op.EXEC, rec.state, rec.name)
    channel = control.session(rec.id, "exec")
    try:
        channel.send(Msg.STATS, SESSION_PROC)
        frame = channel.recv(COUNTERS_TIMEOUT)
    finally:
        channel.close()
    if frame is None or frame.type is not Msg.COUNTERS:
        raise ExternalError(f"container {rec.name} did not report its counters")
    return frame.payload.decode(errors="replace")


def attach(ref: str) -> Process:
    """The container's main process, to relay; starts it under ``start(wait_attach=True)``."""
    rec = get(ref)
    check(Op.ATTACH, rec.state, rec.name)
    return Process(control.session(rec.id, "attach"))


__all__ = [
    "attach",
    "connect",
    "containers",
    "counters",
    "create",
    "disconnect",
    "exec_run",
    "exec_spec",
    "exec_start",
    "get",
    "inspect",
    "kill",
    "parse_signal",
    "prune",
    "remove",
    "run_detached",
    "start",
    "stop",
    "wait",
]
