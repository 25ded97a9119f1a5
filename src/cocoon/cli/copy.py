"""cocoon cp and cocoon export."""

from __future__ import annotations

import argparse
import sys


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "cp",
        help="Copy files between a container (running or stopped) and the host",
        description="Copy files or folders between a container and the host. One side is "
        "CONTAINER:PATH, the other a host path, or - for a tar stream on stdin or stdout.",
    )
    p.add_argument("-a", "--archive", action="store_true", help="keep owners (uid, gid)")
    p.add_argument("source", metavar="SRC", help="CONTAINER:PATH, a host path or -")
    p.add_argument("dest", metavar="DEST", help="CONTAINER:PATH, a host path or -")
    p.set_defaults(handler=_cp)

    p = verbs.add_parser("export", help="Write a container's filesystem as a tar")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(handler=_export)


def _cp(args: argparse.Namespace) -> int:
    from cocoon.container.copy import cp

    stdio = {"stdin": sys.stdin.buffer, "stdout": sys.stdout.buffer}
    cp(args.source, args.dest, archive=args.archive, **stdio)
    return 0


def _export(args: argparse.Namespace) -> int:
    from cocoon.container.copy import export
    from cocoon.files import atomic_output

    if args.output in (None, "-"):
        if sys.stdout.isatty():
            from cocoon.errors import InvalidArgument

            raise InvalidArgument("export writes a tar: redirect stdout or give -o FILE")
        export(args.container, sys.stdout.buffer.write)
        return 0
    with atomic_output(args.output) as out:
        export(args.container, out.write)
    return 0
