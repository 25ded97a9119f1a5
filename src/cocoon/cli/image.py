"""cocoon image: the local image store, and pulling from and pushing to registries."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cocoon.image.model import Image
    from cocoon.image.registry.progress import Reporter
    from cocoon.image.store import ImageStore


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
    _add_prepare_flag(load)
    load.set_defaults(handler=load_images)

    pull = sub.add_parser("pull", help="Pull an image from a registry")
    pull.add_argument("reference", help="image reference, e.g. registry:5000/ns/app:1")
    pull.add_argument("--platform", metavar="OS/ARCH", help="platform to pull (default the host's)")
    _add_transfer_flags(pull)
    _add_prepare_flag(pull)
    pull.set_defaults(handler=pull_image)

    push = sub.add_parser("push", help="Push an image to a registry")
    push.add_argument("source", help="stored image (reference or id)")
    push.add_argument("destination", nargs="?", help="where to push it (default its own name)")
    _add_transfer_flags(push)
    push.set_defaults(handler=push_image)

    inspect = sub.add_parser("inspect", help="Show an image's details")
    inspect.add_argument("images", nargs="+", metavar="IMAGE")
    add_format_flag(inspect)
    inspect.set_defaults(handler=inspect_images)

    tag = sub.add_parser("tag", help="Give an image another name")
    tag.add_argument("source", help="stored image (reference or id)")
    tag.add_argument("target", help="new reference")
    tag.set_defaults(handler=tag_image)

    rm = sub.add_parser("rm", aliases=["rmi"], help="Remove images (untag; delete the last)")
    rm.add_argument("images", nargs="+", metavar="IMAGE")
    rm.add_argument("-f", "--force", action="store_true", help="remove an id that has many tags")
    rm.set_defaults(handler=remove_images)

    prune = sub.add_parser("prune", help="Remove untagged images and unreferenced blobs")
    prune.set_defaults(handler=prune_images)

    save = sub.add_parser("save", help="Write images to an OCI layout tar")
    save.add_argument("images", nargs="+", metavar="IMAGE")
    save.add_argument("-o", "--output", required=True, metavar="FILE", help="tar file to write")
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
    from cocoon.cli.output import ago

    if not created:
        return "unknown"
    try:
        return ago(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return created


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
    from cocoon.rootfs.disks import image_size

    rows = []
    for image in ImageStore().images():
        size = image_size(image)  # unpacked, as docker and podman show it
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
                    "size": size,
                    "size_human": _size(size),
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

    with _progress(False) as bars:
        loaded = load(ImageStore(), args.path, prepare=args.prepare, progress=bars)
    for image in loaded:
        names = ", ".join(image.references) or "untagged"
        print(f"Loaded image {image.short_id} ({names})")
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
    from cocoon.cli.output import emit_json, emit_one
    from cocoon.image.store import ImageStore

    store = ImageStore()
    details = [_details(store.resolve(text)) for text in args.images]
    if args.format == "json":
        emit_json(details)
        return 0
    for item in details:
        emit_one("table", {k: v for k, v in item.items() if k not in ("Layers", "Config")})
    return 0


def _details(image: Image) -> dict[str, Any]:
    config = image.config
    return {
        "Id": image.id,
        "RepoTags": list(image.references),
        "Digest": image.digest,
        "ManifestDigest": image.manifest_digest,
        "MediaType": image.manifest.media_type,
        "Created": config.created,
        "Platform": "/".join(filter(None, (config.os, config.architecture, config.variant))),
        "Size": image.size,
        "Layers": [layer.to_json() for layer in image.layers],
        "Config": {
            "Entrypoint": config.entrypoint,
            "Cmd": config.cmd,
            "Env": list(config.env),
            "WorkingDir": config.working_dir,
            "User": config.user,
            "ExposedPorts": list(config.exposed_ports),
            "Labels": dict(config.labels),
            "StopSignal": config.stop_signal,
        },
    }


def tag_image(args: argparse.Namespace) -> int:
    from cocoon.image.model import Descriptor
    from cocoon.image.store import ImageStore

    store = ImageStore()
    image = store.resolve(args.source)
    size = store.blob_path(image.digest).stat().st_size
    store.tag(args.target, Descriptor(_media_type(store, image), image.digest, size))
    return 0


def _media_type(store: ImageStore, image: Image) -> str:
    """The media type of what the image's names point at (a manifest or an index)."""
    entry = next((e for e in store.entries() if e.digest == image.digest), None)
    return entry.media_type if entry is not None else image.manifest.media_type


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
    from cocoon.image.archive import save
    from cocoon.image.store import ImageStore

    save(ImageStore(), args.images, args.output)
    return 0
