"""Entry point: global flags, the verb table, and error-to-exit-code mapping.

Exit codes follow Docker: 125 when cocoon itself fails (one line on stderr,
no traceback), otherwise the container's own exit code.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import signal
import sys
from typing import NoReturn

import cocoon.lazy_inspect  # noqa: F401  (first: dataclasses must find the stand-in)
from cocoon import __version__
from cocoon.errors import CocoonError, exit_code

EXIT_COCOON = 125


class _Parser(argparse.ArgumentParser):
    """Usage errors as Docker gives them: one line, exit 125 (argparse: a usage block, 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_COCOON, f"cocoon: {message} (see '{self.prog} --help')\n")


class _Terminated(Exception):
    """SIGTERM before the container runs: unwind so the VM is cleaned up."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


# Which module registers each top-level verb: a command builds only the
# parser it needs (building all of them costs ~15 ms of every start).
_CONTAINER_VERBS = ("create", "start", "stop", "kill", "rm", "ls", "ps", "inspect", "logs",
                    "exec", "stats", "wait", "prune", "restart", "attach", "port", "top",
                    "rename", "pause", "unpause", "update", "events")  # fmt: skip
_IMAGE_VERBS = ("image", "pull", "push", "images", "rmi", "tag", "save", "load")
_VERB_MODULES = {
    "run": "run",
    "build": "build",
    "builder": "build",
    **dict.fromkeys(_CONTAINER_VERBS, "container"),
    **dict.fromkeys(_IMAGE_VERBS, "image"),
    **dict.fromkeys(("registry", "login", "logout"), "registry"),
    "network": "network",
    "volume": "volume",
    "system": "system",
    "cp": "copy",
    "export": "copy",
    "completion": "completion",
}
_ORDER = ("run", "build", "container", "copy", "image", "registry", "network", "volume", "system",
          "completion")  # fmt: skip


def _verb_of(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line parser; with ``argv``, only the part that ``argv`` uses."""
    top = _Parser(
        prog="cocoon",
        description="Run OCI containers, each in its own lightweight virtual machine.",
    )
    top.add_argument("--debug", action="store_true", help="log what cocoon decides and why")
    top.add_argument("--version", action="version", version=f"cocoon {__version__}")
    verbs = top.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    wanted = _VERB_MODULES.get(_verb_of(argv) or "") if argv is not None else None
    for name in (wanted,) if wanted else _ORDER:
        importlib.import_module(f"cocoon.cli.{name}").register(verbs)
    return top


def main(argv: list[str] | None = None) -> int:
    # A command allocates ~20,000 objects while its modules load and frees
    # few of them: at the default threshold (700) the garbage collector would
    # walk them some 25 times before a VM starts (~5 ms). Less often, it
    # still collects what a long-running command (run, logs -f) leaves.
    gc.set_threshold(50_000)
    signal.signal(signal.SIGTERM, _on_sigterm)
    argv = sys.argv[1:] if argv is None else argv
    args = parser(argv).parse_args(argv)
    if args.debug:
        import logging  # not otherwise: see cocoon.log

        logging.basicConfig(level=logging.DEBUG, format="cocoon: %(message)s")
    try:
        return args.handler(args)
    except CocoonError as e:
        print(f"cocoon: {e}", file=sys.stderr)
        return exit_code(e)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except _Terminated:
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        return EXIT_COCOON
    finally:
        # The process ends next. The interpreter's teardown would walk every
        # object of every loaded module in its last garbage collections
        # (~10 ms of each command): frozen objects are left out of them, and
        # the operating system frees their memory at exit all the same.
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
