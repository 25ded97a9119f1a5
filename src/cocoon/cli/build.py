"""cocoon build: a Dockerfile made into an image, its RUN steps in microVMs."""

from __future__ import annotations

import argparse
import sys


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "build",
        help="Build an image from a Dockerfile",
        description="Build an image from a Dockerfile and a context folder (or - for a tar "
        "of one on stdin). RUN steps run in a microVM per stage; unchanged steps come "
        "from the build cache.",
    )
    p.add_argument("-t", "--tag", action="append", default=[], metavar="REF",
                   help="name the image (repeatable)")  # fmt: skip
    p.add_argument("-f", "--file", metavar="FILE",
                   help="the Dockerfile (default: CONTEXT/Dockerfile; - reads stdin)")  # fmt: skip
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V",
                   help="a build argument (repeatable; K alone: from the environment)")  # fmt: skip
    p.add_argument("--target", metavar="STAGE", help="build up to this stage")
    p.add_argument("--no-cache", action="store_true", help="build every step again")
    p.add_argument("--pull", action="store_true", help="pull base images even if stored")
    p.add_argument("--label", action="append", default=[], metavar="K=V",
                   help="add a label to the image (repeatable)")  # fmt: skip
    p.add_argument("--platform", metavar="OS/ARCH", help="only linux/amd64")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument("--progress", choices=("auto", "plain", "quiet"), default="auto",
                   help="how steps are shown")  # fmt: skip
    p.add_argument("--network", metavar="MODE",
                   help="RUN steps' network: default (NAT), host (the same) or none")  # fmt: skip
    p.add_argument("context", metavar="CONTEXT", help="a folder, or - for a tar on stdin")
    p.set_defaults(handler=_build)
    b = verbs.add_parser("builder", help="Manage the build cache")
    sub = b.add_subparsers(dest="builder_verb", metavar="COMMAND", required=True)
    pr = sub.add_parser("prune", help="Remove the build cache no image holds (-a: all of it)")
    pr.add_argument("-a", "--all", action="store_true", help="remove all of the build cache")
    pr.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    pr.set_defaults(handler=_prune)


def _pairs(items: list[str], flag: str, *, environ: bool = False) -> dict[str, str]:
    import os

    from cocoon.errors import InvalidArgument

    found = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"{flag} {item!r}: give KEY=VALUE")
        if not eq:
            if not environ:
                raise InvalidArgument(f"{flag} {item!r}: give KEY=VALUE")
            if key not in os.environ:
                continue  # docker build skips an argument the environment lacks
            value = os.environ[key]
        found[key] = value
    return found


def _build(args: argparse.Namespace) -> int:
    import contextlib
    import tempfile

    from cocoon.builder.api import build
    from cocoon.builder.context import is_tar
    from cocoon.builder.executor import BuildFailed, BuildOptions
    from cocoon.builder.progress import Plain, Quiet, Terminal
    from cocoon.errors import InvalidArgument

    opts = BuildOptions(
        tags=tuple(args.tag),
        build_args=_pairs(args.build_arg, "--build-arg", environ=True),
        target=args.target,
        no_cache=args.no_cache,
        pull=args.pull,
        labels=_pairs(args.label, "--label"),
        platform=args.platform,
        network=args.network,
    )
    quiet = args.quiet or args.progress == "quiet"
    terminal = args.progress == "auto" and sys.stderr.isatty()
    progress = Quiet() if quiet else Terminal(sys.stderr) if terminal else Plain(sys.stderr)
    dockerfile_text = None
    if args.file == "-":
        if args.context == "-":
            raise InvalidArgument("the Dockerfile and the context cannot both come from stdin")
        dockerfile_text = sys.stdin.read()
    context = sys.stdin.buffer if args.context == "-" else args.context
    dockerfile = None if args.file in (None, "-") else args.file
    with contextlib.ExitStack() as stack:
        if args.context == "-" and not is_tar(sys.stdin.buffer.peek(512)[:512]):
            # A Dockerfile on stdin, as `docker build - < Dockerfile`: no context.
            dockerfile_text = sys.stdin.buffer.read().decode(errors="replace")
            context = stack.enter_context(tempfile.TemporaryDirectory(prefix="cocoon-empty-"))
        try:
            image = build(
                context,
                opts,
                dockerfile=dockerfile,
                dockerfile_text=dockerfile_text,
                progress=progress,
            )
        except BuildFailed as e:
            if quiet and e.tail:  # the output was not shown as it came
                sys.stderr.write("".join(f"  {line}\n" for line in e.tail))
            raise
    if quiet:
        print(image.id)
    else:
        names = ", ".join(image.references) or image.short_id
        sys.stderr.write(f"built {names}\n")
        print(image.id)
    return 0


def _prune(args: argparse.Namespace) -> int:
    from cocoon.builder.cache import LayerCache
    from cocoon.cli.output import confirm, size
    from cocoon.image.store import ImageStore

    if not args.force and not confirm(["all build cache" if args.all else
                                       "the build cache no image holds"]):  # fmt: skip
        return 0
    cleared = LayerCache(ImageStore()).clear(everything=args.all)
    if cleared.keys:
        print("Deleted build cache objects:\n" + "\n".join(cleared.keys) + "\n")
    print(f"Total reclaimed space: {size(cleared.reclaimed, 4)}")
    return 0
