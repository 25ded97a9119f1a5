"""Entry point: global flags, the verb table, and error-to-exit-code mapping.

Exit codes follow Docker: 125 when cocoon itself fails (one line on stderr,
no traceback), otherwise the container's own exit code.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from cocoon.errors import CocoonError

EXIT_COCOON = 125


class _Terminated(Exception):
    """SIGTERM before the container runs: unwind so the VM is cleaned up."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def parser() -> argparse.ArgumentParser:
    from cocoon.cli import container, image, network, registry, run, system

    top = argparse.ArgumentParser(
        prog="cocoon",
        description="Run OCI containers, each in its own lightweight virtual machine.",
    )
    top.add_argument("--debug", action="store_true", help="log what cocoon decides and why")
    verbs = top.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    run.register(verbs)
    container.register(verbs)
    image.register(verbs)
    registry.register(verbs)
    network.register(verbs)
    system.register(verbs)
    return top


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="cocoon: %(message)s",
    )
    try:
        return args.handler(args)
    except CocoonError as e:
        print(f"cocoon: {e}", file=sys.stderr)
        return EXIT_COCOON
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except _Terminated:
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        return EXIT_COCOON


if __name__ == "__main__":
    sys.exit(main())
