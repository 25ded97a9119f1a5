"""cocoon image: the local image store."""

from __future__ import annotations

import argparse
import time
from datetime import datetime


def register(verbs: argparse._SubParsersAction) -> None:
    from cocoon.cli.output import add_format_flag

    p = verbs.add_parser("image", help="Manage images in the local store")
    sub = p.add_subparsers(dest="image_verb", metavar="COMMAND", required=True)
    ls = sub.add_parser("ls", aliases=["list"], help="List images")
    add_format_flag(ls)
    ls.set_defaults(handler=list_images)
    load = sub.add_parser(
        "load",
        help="Load images from an OCI layout (folder or tar) or a docker/podman save tarball",
    )
    load.add_argument("path", help="OCI layout folder, OCI layout tar, or docker-archive tar")
    load.set_defaults(handler=load_images)


def _age(created: str | None) -> str:
    if not created:
        return "unknown"
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return created
    seconds = max(0, time.time() - then)
    for unit, size in (("year", 31_536_000), ("month", 2_592_000), ("day", 86_400),
                       ("hour", 3_600), ("minute", 60)):  # fmt: skip
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"


def list_images(args: argparse.Namespace) -> int:
    from cocoon.cli.output import emit
    from cocoon.image.store import ImageStore
    from cocoon.reference import Reference

    rows = []
    for image in ImageStore().images():
        for ref in image.references or ("<none>",):
            repo, tag = "<none>", "<none>"
            if ref != "<none>":
                parsed = Reference.parse(ref)
                repo, tag = parsed.familiar_name, parsed.tag
            rows.append(
                {
                    "repository": repo,
                    "tag": tag or "<none>",
                    "id": image.id,
                    "short_id": image.short_id,
                    "reference": ref,
                    "created": image.config.created,
                    "age": _age(image.config.created),
                    "size": image.size,
                    "size_human": _size(image.size),
                }
            )
    if args.format == "json":
        for row in rows:
            del row["age"], row["size_human"], row["short_id"]
    emit(
        args.format,
        rows,
        [("repository", "REPOSITORY"), ("tag", "TAG"), ("short_id", "IMAGE ID"),
         ("age", "CREATED"), ("size_human", "SIZE")],
    )  # fmt: skip
    return 0


def load_images(args: argparse.Namespace) -> int:
    from cocoon.image.archive import load
    from cocoon.image.store import ImageStore

    for image in load(ImageStore(), args.path):
        names = ", ".join(image.references) or "untagged"
        print(f"Loaded image {image.short_id} ({names})")
    return 0
