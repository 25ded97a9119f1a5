"""``cocoon-runtime``: runc's command line, parsed and mapped onto cocoon.

Parsing, dispatch and errors only; each verb group has its module. An error
is one line on stderr and, with ``--log``, a JSON line there (containerd
reads ``log.json`` to report why a call failed); the exit code is 1, as runc's.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cocoon.lazy_inspect  # noqa: F401  (first: dataclasses must find the stand-in)
from cocoon import __version__
from cocoon.errors import CocoonError
from cocoon.runtime import store

TYPE_CHECKING = False  # typing's, without importing typing: see cocoon/__init__.py
if TYPE_CHECKING:
    from typing import NoReturn

FAILED = 1


class _Formatter(argparse.HelpFormatter):
    # A set width: argparse makes a formatter for every argument added, and
    # one without a width imports shutil (lzma and bz2 with it), about a
    # fifth of a light verb's start, to ask the terminal.
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100)


def _create_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", "-b", type=Path, default=Path("."))
    p.add_argument("--pid-file", type=Path)
    p.add_argument("--console-socket")
    for flag in ("--no-pivot", "--no-new-keyring"):
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--preserve-fds", type=int, default=0, help=argparse.SUPPRESS)


def _kill_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("signal", nargs="?", default="SIGTERM")
    p.add_argument("--all", "-a", action="store_true")


def _delete_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", "-f", action="store_true")


def _ps_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")


def _list_args(p: argparse.ArgumentParser) -> None:
    _ps_args(p)
    p.add_argument("--quiet", "-q", action="store_true")


def _exec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--process", "-p", type=Path, required=True)
    p.add_argument("--detach", "-d", action="store_true")
    p.add_argument("--pid-file", type=Path)
    p.add_argument("--console-socket")
    p.add_argument("--tty", "-t", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--preserve-fds", type=int, default=0, help=argparse.SUPPRESS)


def _no_args(p: argparse.ArgumentParser) -> None:
    pass


# Each verb: whether it takes a container id, and its own arguments.
VERBS: dict[str, tuple[bool, Callable[[argparse.ArgumentParser], None]]] = {
    "create": (True, _create_args),
    "start": (True, _no_args),
    "kill": (True, _kill_args),
    "delete": (True, _delete_args),
    "state": (True, _no_args),
    "ps": (True, _ps_args),
    "list": (False, _list_args),
    "features": (False, _no_args),
    "pause": (True, _no_args),
    "resume": (True, _no_args),
    "exec": (True, _exec_args),
}
# The global options that take a value: what _verb_in skips.
_VALUED = ("--root", "--log", "--log-format", "--rootless", "--criu")


def _verb_in(argv: Sequence[str]) -> str | None:
    """The verb ``argv`` names, found as argparse finds it: the first
    argument that is neither an option nor a global option's value."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cocoon-runtime",
        allow_abbrev=False,
        description="Run OCI bundles in cocoon VMs (runc's interface)",
        formatter_class=_Formatter,
    )
    p.add_argument("--version", "-v", action="store_true")
    p.add_argument("--root", type=Path, help=f"state folder (default {store.DEFAULT_ROOT})")
    p.add_argument("--log", type=Path)
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    # Accepted for runc compatibility; nothing here has a meaning for a VM.
    for flag in ("--debug", "--systemd-cgroup", "--no-pivot"):
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    for flag in ("--rootless", "--criu"):
        p.add_argument(flag, help=argparse.SUPPRESS)
    verbs = p.add_subparsers(dest="verb")
    # Only the called verb's parser when argv names one: each costs ~0.15 ms
    # (gettext looks for translations of its words), paid by every call an
    # engine makes. A verb's usage and errors are its own parser's; the top
    # level's (no verb, an unknown one) come from a parser with all of them.
    wanted = _verb_in(argv)
    for name, (with_id, add) in VERBS.items():
        if wanted in VERBS and name != wanted:
            continue
        sub = verbs.add_parser(name, allow_abbrev=False, formatter_class=_Formatter)
        if with_id:
            sub.add_argument("id")
        add(sub)
    return p


def _log_error(path: Path | None, fmt: str, message: str) -> None:
    print(f"cocoon-runtime: {message}", file=sys.stderr)
    if path is None:
        return
    from cocoon.stamps import rfc3339

    now = rfc3339(time.time())
    line = (
        json.dumps({"level": "error", "msg": message, "time": now})
        if fmt == "json"
        else f'time="{now}" level=error msg="{message}"'
    )
    try:
        with path.open("a") as log:
            log.write(line + "\n")
    except OSError:
        pass  # the caller still has stderr


def _dispatch(args: argparse.Namespace, root: Path) -> int:
    # Imported per verb: every call is a fresh process, and start-up time
    # is on the engine's path for each container.
    match args.verb:
        case "create":
            from cocoon.runtime import create

            create.create(root, args.id, args.bundle, args.pid_file, args.console_socket)
        case "start":
            from cocoon.runtime import start

            start.start(root, args.id)
        case "kill":
            from cocoon.runtime import signals
            from cocoon.signals import parse_signal

            signals.kill(root, args.id, parse_signal(args.signal), all_processes=args.all)
        case "delete":
            from cocoon.runtime import signals

            signals.delete(root, args.id, force=args.force)
        case "exec":
            from cocoon.runtime import exec as execs

            return execs.run(
                root,
                args.id,
                args.process,
                detach=args.detach,
                pid_file=args.pid_file,
                console_socket=args.console_socket,
            )
        case "pause":
            from cocoon.runtime import freeze

            freeze.pause(root, args.id)
        case "resume":
            from cocoon.runtime import freeze

            freeze.resume(root, args.id)
        case "state" | "ps" | "list" | "features":
            from cocoon.runtime import info

            info.show(root, args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser(argv)
    args = parser.parse_args(argv)
    if args.version:
        from cocoon.runtime.status import OCI_VERSION

        print(f"cocoon-runtime version {__version__}\nspec: {OCI_VERSION}")
        return 0
    if args.verb is None:
        parser.print_usage(sys.stderr)
        return 2
    root = store.use_root(args.root)
    try:
        return _dispatch(args, root)
    except CocoonError as e:
        _log_error(args.log, args.log_format, str(e))
        return FAILED
    except OSError as e:
        # The host refused something (a --root that is a file, a full disk):
        # the engine reads one line, not a traceback.
        where = f": {e.filename}" if e.filename else ""
        _log_error(args.log, args.log_format, f"{e.strerror or e}{where}")
        return FAILED
    except KeyboardInterrupt:
        return 130


def run() -> NoReturn:
    """The program: ``main``, then out without the interpreter's teardown.

    Unloading the modules a create imported costs it about 8 ms, paid on
    every container start; nothing is left to clean up (no threads, files
    closed), only the standard streams to flush.
    """
    # As the CLI's (cli/main.py): a create allocates some 20,000 objects as
    # its modules load and frees few; at the default threshold (700) the
    # garbage collector would walk them again and again (~3 ms). The
    # container's process forked by create keeps it, as `cocoon run` does.
    gc.set_threshold(50_000)
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
