"""cocoon volume: create, ls, inspect, rm, prune."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cocoon.cli import output

if TYPE_CHECKING:
    from cocoon.volume.store import Volume


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("volume", help="Manage volumes")
    sub = p.add_subparsers(dest="volume_verb", metavar="COMMAND", required=True)
    c = sub.add_parser("create", help="Create a volume (an ext4 disk, or a folder with type=dir)")
    c.add_argument("--opt", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="size=SIZE of a disk volume (default 8g, sparse); type=dir for a "
                   "folder several running containers can share")  # fmt: skip
    c.add_argument("--label", action="append", default=[], metavar="KEY[=VALUE]",
                   help="set a label")  # fmt: skip
    c.add_argument("name", nargs="?", help="default: a random name")
    c.set_defaults(handler=_create)
    for name in ("ls", "list"):
        ls = sub.add_parser(name, help="List volumes")
        ls.add_argument("-q", "--quiet", action="store_true", help="only print names")
        output.add_format_flag(ls)
        ls.set_defaults(handler=_ls)
    i = sub.add_parser("inspect", help="Show volumes as JSON")
    i.add_argument("names", nargs="+", metavar="NAME")
    i.set_defaults(handler=_inspect)
    r = sub.add_parser("rm", help="Remove volumes no container uses")
    r.add_argument("-f", "--force", action="store_true", help="no error for missing volumes")
    r.add_argument("names", nargs="+", metavar="NAME")
    r.set_defaults(handler=_rm)
    pr = sub.add_parser("prune", help="Remove anonymous volumes no container uses")
    pr.add_argument("-a", "--all", action="store_true", help="named ones too")
    pr.set_defaults(handler=_prune)


def _pairs(items: Sequence[str], flag: str, *, value_required: bool) -> dict[str, str]:
    from cocoon.errors import InvalidArgument

    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or (value_required and not sep):
            raise InvalidArgument(f"{flag} {item!r}: use KEY=VALUE")
        pairs[key] = value
    return pairs


def _view(volume: Volume) -> dict[str, Any]:
    import datetime

    created = datetime.datetime.fromtimestamp(volume.created, datetime.UTC)
    return {
        "name": volume.name,
        "driver": volume.driver,
        "mountpoint": str(volume.path),
        "size": volume.size,
        "labels": volume.labels,
        "anonymous": volume.anonymous,
        "created": created.isoformat(timespec="seconds"),
        "containers": sorted(volume.users.values()),
    }


def _create(args: argparse.Namespace) -> int:
    from cocoon.volume.store import VolumeStore

    options = _pairs(args.opt, "--opt", value_required=True)
    labels = _pairs(args.label, "--label", value_required=False)
    print(VolumeStore().create(args.name, options=options, labels=labels).name)
    return 0


def _ls(args: argparse.Namespace) -> int:
    from cocoon.volume.store import VolumeStore

    volumes = VolumeStore().volumes()
    if args.quiet:
        for volume in volumes:
            print(volume.name)
        return 0
    rows = [_view(v) for v in volumes]
    if args.format == "table":
        from cocoon.cli.output import size as output_size

        for row in rows:
            row["size"] = "-" if row["size"] is None else output_size(row["size"])
            row["containers"] = len(row["containers"])
    columns = [("name", "NAME"), ("driver", "DRIVER"), ("size", "SIZE"),
               ("containers", "CONTAINERS")]  # fmt: skip
    output.emit(args.format, rows, columns)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    import json

    from cocoon.volume.store import VolumeStore

    store = VolumeStore()
    print(json.dumps([_view(store.get(name)) for name in args.names], indent=2))
    return 0


def _rm(args: argparse.Namespace) -> int:
    """Like Docker: each volume on its own; failures reported, the rest go on."""
    from cocoon.cli.main import EXIT_COCOON
    from cocoon.container import record
    from cocoon.errors import CocoonError
    from cocoon.volume.store import VolumeStore

    store = VolumeStore()
    failed = False
    for name in args.names:
        try:
            if store.remove(name, force=args.force, exists=record.exists):
                print(name)
        except CocoonError as e:
            print(f"cocoon: {e}", file=sys.stderr)
            failed = True
    return EXIT_COCOON if failed else 0


def _prune(args: argparse.Namespace) -> int:
    from cocoon.container import record
    from cocoon.volume.store import VolumeStore

    for name in VolumeStore().prune(all=args.all, exists=record.exists):
        print(name)
    return 0
