"""``exec``: one more process in a running container, owned by a host process of its own.

As for ``create``, the pid written to ``--pid-file`` is a grandchild of the
caller that lives as long as the guest process, relays its stdio (or a pty
over ``--console-socket``) and exits with its code. Without ``--detach`` the
runtime itself relays and exits with the code.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import termios
import threading
from pathlib import Path

from cocoon.agent.session import Process
from cocoon.container import control as controls
from cocoon.errors import CocoonError, InvalidArgument, InvalidState, Unsupported
from cocoon.runtime import bundle as bundles
from cocoon.runtime import console, shim, spawn, store
from cocoon.runtime.status import Status, status


def _load_process(path: Path) -> tuple[bundles.ProcessSpec, bool]:
    try:
        data = json.loads(path.read_bytes())
    except OSError as e:
        raise InvalidArgument(f"--process {path}: {e.strerror}") from None
    except ValueError as e:
        raise InvalidArgument(f"--process {path}: not valid JSON ({e})") from None
    return bundles.process_spec(data)


def _relay(process: Process, stdio: shim.Stdio, forward_stdin: bool) -> int:
    def pump() -> None:
        with contextlib.suppress(OSError, CocoonError):
            process.feed_stdin(stdio.stdin).join()

    if forward_stdin:
        threading.Thread(target=pump, daemon=True).start()
    for signum in shim.FORWARDED:
        signal.signal(signum, lambda n, _f: process.signal(n))

    def out(fd: int) -> shim.Sink:
        return lambda data: _write_quietly(fd, data)

    try:
        status_ = process.relay(out(stdio.stdout), out(stdio.stderr))
    except CocoonError:
        return spawn.LOST
    return status_.code


def _follow_terminal(process: Process, fd: int) -> None:
    """Pass the pty's size on now and at every change (the engine sets it on the master)."""
    # SIGWINCH goes to the session whose controlling terminal this is.
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)

    def resize(*_: object) -> None:
        if (rows_columns := console.size(fd)) is not None:
            with contextlib.suppress(CocoonError):
                process.resize(*rows_columns)

    signal.signal(signal.SIGWINCH, resize)
    resize()


def _write_quietly(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):
        shim.write_all(fd, data)


def run(
    root: Path,
    container_id: str,
    process_path: Path,
    *,
    detach: bool,
    pid_file: Path | None,
    console_socket: str | None,
) -> int:
    entry = store.load(root, container_id)
    if status(entry) is not Status.RUNNING:
        raise InvalidState(f"container {container_id} is not running: cannot exec in it")
    if entry.sandbox:
        raise Unsupported(f"container {container_id} is a pod sandbox: it has no VM to exec in")
    spec, terminal = _load_process(process_path)
    if terminal and console_socket is None and detach:
        raise InvalidArgument("process.terminal needs --console-socket")
    stdin = terminal or console.stdin_open(0)
    spec = bundles.ProcessSpec(**{**spec.to_json(), "stdin": stdin})
    process = Process(controls.session(entry.record, "exec"))
    process.start(spec)
    stdio = shim.Stdio(0, 1, 2)
    if terminal and console_socket is not None:
        slave = console.terminal(console_socket)
        stdio = shim.Stdio(slave, slave, slave, tty=True)
    if not detach:
        spawn.write_pid(pid_file, os.getpid())
        return _relay(process, stdio, stdin)

    def relay() -> int:
        if stdio.tty:
            _follow_terminal(process, stdio.stdout)
        return _relay(process, stdio, stdin)

    pid = spawn.detached(relay)
    process.channel.close()  # the grandchild has its own copy
    spawn.write_pid(pid_file, pid)
    return 0


__all__ = ["run"]
