"""cocoon image: the local image store, and pulling from and pushing to registries."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cocoon.image.registry.progress import Reporter


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("image", help="Manage images in the local store")
    sub = p.add_subparsers(dest="image_verb", metavar="COMMAND", required=True)
    for name, (help, add_flags, aliases) in _VERBS.items():
        add_flags(sub.add_parser(name, help=help, aliases=aliases))
    # Docker's top-level forms: `cocoon pull` is `cocoon image pull`, `images` is `image ls`.
    for name, verb in TOP_LEVEL.items():
        help, add_flags, _ = _VERBS[verb]
        add_flags(verbs.add_parser(name, help=f"{help} (image {verb})"))


def _add_pull_flags(pull: argparse.ArgumentParser) -> None:
    pull.add_argument("reference", help="image reference, e.g. registry:5000/ns/app:1")
    pull.add_argument("--platform", metavar="OS/ARCH", help="platform to pull (default the host's)")
    _add_transfer_flags(pull)
    _add_prepare_flag(pull)
    pull.set_defaults(handler=pull_image)


def _add_push_flags(push: argparse.ArgumentParser) -> None:
    push.add_argument("source", help="stored image (reference or id)")
    push.add_argument("destination", nargs="?", help="where to push it (default its own name)")
    _add_transfer_flags(push)
    push.set_defaults(handler=push_image)


def _add_inspect_flags(inspect: argparse.ArgumentParser) -> None:
    from cocoon.cli.output import add_format_flag

    inspect.add_argument("images", nargs="+", metavar="IMAGE")
    add_format_flag(inspect, "-f")
    inspect.set_defaults(handler=inspect_images)


def _add_tag_flags(tag: argparse.ArgumentParser) -> None:
    tag.add_argument("source", help="stored image (reference or id)")
    tag.add_argument("target", help="new reference")
    tag.set_defaults(handler=tag_image)


def _add_rm_flags(rm: argparse.ArgumentParser) -> None:
    rm.add_argument("images", nargs="+", metavar="IMAGE")
    rm.add_argument("-f", "--force", action="store_true", help="remove an id that has many tags")
    rm.set_defaults(handler=remove_images)


def _add_prune_flags(prune: argparse.ArgumentParser) -> None:
    prune.set_defaults(handler=prune_images)


def add_list_flags(ls: argparse.ArgumentParser) -> None:
    from cocoon.cli.output import add_format_flag

    ls.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="only images that match: reference, label, dangling, id")  # fmt: skip
    ls.add_argument("-q", "--quiet", action="store_true", help="only print image ids")
    add_format_flag(ls)
    ls.set_defaults(handler=list_images)


# docker images's template fields, and their headings in a `table` format.
IMAGE_HEADINGS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"}  # fmt: skip


def add_load_flags(load: argparse.ArgumentParser) -> None:
    load.add_argument("path", nargs="?", help="OCI layout folder or tar, docker-archive tar, "
                      "dir layout folder; '-' or none: standard input")  # fmt: skip
    load.add_argument("-i", "--input", metavar="FILE", help="the same as PATH (Docker's flag)")
    _add_prepare_flag(load)
    load.set_defaults(handler=load_images)


def add_save_flags(save: argparse.ArgumentParser) -> None:
    save.add_argument("images", nargs="+", metavar="IMAGE")
    save.add_argument("-o", "--output", metavar="FILE",
                      help="tar file to write ('-' or none: standard output)")  # fmt: skip
    save.set_defaults(handler=save_images)


def _add_transfer_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--insecure", action="store_true", help="skip TLS verification; plain HTTP if no TLS"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def _add_prepare_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-prepare",
        dest="prepare",
        action="store_false",
        help="do not build the image's root disk now (its first run will)",
    )


def _age(created: str | None) -> str:
    from cocoon.stamps import ago

    if not created:
        return "unknown"
    try:
        return ago(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return created


def list_images(args: argparse.Namespace) -> int:
    from cocoon import filters
    from cocoon.cli.output import emit, emit_template, is_template
    from cocoon.cli.output import size as output_size
    from cocoon.image import filters as image_filters
    from cocoon.image.store import ImageStore
    from cocoon.reference import Reference
    from cocoon.rootfs.disks import image_size

    wanted = filters.parse(args.filter, image_filters.KEYS)
    found = image_filters.select(ImageStore().images(), wanted)
    if args.quiet:
        for short_id in dict.fromkeys(i.short_id for i in found):
            print(short_id)
        return 0
    rows = []
    for image in found:
        size = image_size(image)  # unpacked, as docker and podman show it
        patterns = wanted.get("reference")
        names = [
            ref
            for ref in image.references
            if not patterns or any(image_filters.reference_matches(ref, p) for p in patterns)
        ]
        for ref in names or ("<none>",):
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
                    "size": size,
                    "size_human": output_size(size),
                    "digest": image.manifest_digest,
                }
            )
    if is_template(args.format):
        keys = {"ID": "short_id", "Repository": "repository", "Tag": "tag", "Digest": "digest",
                "CreatedSince": "age", "CreatedAt": "created", "Size": "size_human"}  # fmt: skip
        items = [{field: row[key] for field, key in keys.items()} for row in rows]
        emit_template(args.format, items, IMAGE_HEADINGS)
        return 0
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
    import sys

    from cocoon.errors import InvalidArgument
    from cocoon.image.archive import load
    from cocoon.image.store import ImageStore

    if args.path and args.input:
        raise InvalidArgument("give the archive as PATH or as --input, not both")
    path = args.path or args.input or "-"
    if path == "-" and sys.stdin.isatty():
        raise InvalidArgument("no archive to load: name a file or pipe one into standard input")
    source = sys.stdin.buffer if path == "-" else path
    with _progress(False) as bars:
        loaded = load(ImageStore(), source, prepare=args.prepare, progress=bars)
    for image in loaded:
        names = ", ".join(image.references) or "untagged"
        print(f"Loaded image {image.short_id} ({names})")
    return 0


def import_image(args: argparse.Namespace) -> int:
    from cocoon.errors import InvalidArgument
    from cocoon.image.rootfs_import import import_rootfs
    from cocoon.image.store import ImageStore

    if args.file == "-":
        image = import_rootfs(ImageStore(), sys.stdin.buffer, args.reference)
    else:
        try:
            f = open(args.file, "rb")  # noqa: SIM115
        except OSError as e:
            raise InvalidArgument(f"{args.file}: {e.strerror}") from e
        with f:
            image = import_rootfs(ImageStore(), f, args.reference)
    print(image.id)
    return 0


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[Reporter | None]:
    from cocoon.image.registry.progress import for_stderr

    bars = None if quiet else for_stderr()
    if bars is None:
        yield None
        return
    with bars:
        yield bars


def pull_image(args: argparse.Namespace) -> int:
    from cocoon.image.registry import parse_platform, pull

    platform = parse_platform(args.platform) if args.platform else None
    with _progress(args.quiet) as progress:
        image = pull(
            args.reference,
            platform=platform,
            insecure=args.insecure,
            progress=progress,
            prepare=args.prepare,
        )
    print(f"Digest: {image.digest}")
    print(f"Pulled {', '.join(image.references)} ({image.short_id})")
    return 0


def push_image(args: argparse.Namespace) -> int:
    from cocoon.image.registry import push

    with _progress(args.quiet) as progress:
        digest = push(args.source, args.destination, insecure=args.insecure, progress=progress)
    print(f"Pushed {args.destination or args.source}: digest {digest}")
    return 0


def inspect_images(args: argparse.Namespace) -> int:
    from cocoon.cli.output import emit_json, emit_one, emit_template, is_template
    from cocoon.image.inspect import view
    from cocoon.image.store import ImageStore

    store = ImageStore()
    details = [view(store.resolve(text)) for text in args.images]
    if args.format == "json":
        emit_json(details)
        return 0
    if is_template(args.format):
        emit_template(args.format, details)
        return 0
    for item in details:
        emit_one("table", {k: v for k, v in item.items() if k not in ("Layers", "Config")})
    return 0


def tag_image(args: argparse.Namespace) -> int:
    from cocoon.image.store import ImageStore

    ImageStore().tag_image(args.source, args.target)
    return 0


def remove_images(args: argparse.Namespace) -> int:
    from cocoon.image.store import ImageStore

    store = ImageStore()
    for text in args.images:
        removed = store.remove(text, force=args.force)
        for name in removed.untagged:
            print(f"Untagged: {name}")
        if removed.deleted:
            print(f"Deleted: {removed.deleted}")
    return 0


def prune_images(args: argparse.Namespace) -> int:
    from cocoon.image.store import ImageStore

    store = ImageStore()
    images, blobs = store.prune()
    for digest in images:
        print(f"Deleted: {digest}")
    print(f"Removed {len(images)} untagged images and {len(blobs)} unreferenced blobs")
    return 0


def save_images(args: argparse.Namespace) -> int:
    import sys

    from cocoon.errors import InvalidArgument
    from cocoon.image.archive import save
    from cocoon.image.store import ImageStore

    if args.output in (None, "-"):
        if sys.stdout.isatty():
            raise InvalidArgument("refusing to write an archive to a terminal: use -o FILE")
        save(ImageStore(), args.images, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        save(ImageStore(), args.images, args.output)
    return 0


Adder = Callable[[argparse.ArgumentParser], None]


def _add_import_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE|-", help="the tar (plain or gzip); - for stdin")
    p.add_argument("reference", nargs="?", metavar="REF", help="name to tag it with")
    p.set_defaults(handler=import_image)


_VERBS: dict[str, tuple[str, Adder, list[str]]] = {
    "ls": ("List images", add_list_flags, ["list"]),
    "load": ("Load images from an OCI layout (folder or tar), a docker/podman save tarball "
             "or a dir layout", add_load_flags, []),
    "pull": ("Pull an image from a registry", _add_pull_flags, []),
    "push": ("Push an image to a registry", _add_push_flags, []),
    "inspect": ("Show an image's details", _add_inspect_flags, []),
    "tag": ("Give an image another name", _add_tag_flags, []),
    "rm": ("Remove images (untag; delete the last)", _add_rm_flags, ["rmi"]),
    "prune": ("Remove untagged images and unreferenced blobs", _add_prune_flags, []),
    "save": ("Write images to a tar (an OCI layout and a docker-archive at once)",
             add_save_flags, []),
    "import": ("Make a one-layer image of a root filesystem tar (from export)",
               _add_import_flags, []),
}  # fmt: skip
TOP_LEVEL = {"pull": "pull", "push": "push", "images": "ls", "rmi": "rm", "tag": "tag",
             "save": "save", "load": "load"}  # fmt: skip
