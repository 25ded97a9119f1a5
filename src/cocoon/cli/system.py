"""cocoon system: what cocoon runs on (kernel, agent, accelerator, folders), disk use, prune."""

from __future__ import annotations

import argparse


def register(verbs: argparse._SubParsersAction) -> None:
    from cocoon.cli.output import add_format_flag

    p = verbs.add_parser("system", help="The guest kernel, accelerator, folders and disk use")
    sub = p.add_subparsers(dest="system_verb", metavar="COMMAND", required=True)
    k = sub.add_parser("kernel", help="Show the guest kernel in use")
    add_format_flag(k)
    k.set_defaults(handler=kernel)
    i = sub.add_parser("info", help="Show the accelerator, artifacts and folders")
    i.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    add_format_flag(i)
    i.set_defaults(handler=info)
    t = sub.add_parser(
        "teardown", help="Delete the bridges and NAT rules cocoon made (as network teardown)"
    )
    t.set_defaults(handler=_teardown)
    w = sub.add_parser(
        "warm", help="Build the memory templates a default run starts from, ahead of it"
    )
    w.set_defaults(handler=_warm)
    s = sub.add_parser("service", help="Serve the Docker Engine API on a unix socket (foreground)")
    s.add_argument("--socket", help="default: /run/cocoon/docker.sock as root, "
                   "$XDG_RUNTIME_DIR/cocoon/docker.sock otherwise")  # fmt: skip
    s.set_defaults(handler=_service)
    d = sub.add_parser(
        "df", help="Show disk space used by images, containers, volumes and the build cache"
    )
    add_format_flag(d)
    d.set_defaults(handler=_df)
    pr = sub.add_parser("prune", help="Remove stopped containers, unused networks, "
                        "untagged images (and more with -a, --volumes)")  # fmt: skip
    pr.add_argument("-a", "--all", action="store_true",
                    help="remove every image no container uses, not just untagged")  # fmt: skip
    pr.add_argument("--volumes", action="store_true",
                    help="remove anonymous volumes no container uses too")  # fmt: skip
    pr.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    pr.set_defaults(handler=_prune)


def _df(args: argparse.Namespace) -> int:
    from cocoon.cli.output import emit, size
    from cocoon.system import disk_usage

    rows = []
    for usage in disk_usage().summary():
        row = usage.to_json()
        if args.format != "json":
            share = f" ({100 * usage.reclaimable // usage.size}%)" if usage.size else ""
            row.update(Size=size(usage.size, 4), Reclaimable=size(usage.reclaimable, 4) + share)
        rows.append(row)
    emit(args.format, rows, [("Type", "TYPE"), ("TotalCount", "TOTAL"), ("Active", "ACTIVE"),
                             ("Size", "SIZE"), ("Reclaimable", "RECLAIMABLE")])  # fmt: skip
    return 0


def _prune(args: argparse.Namespace) -> int:
    from cocoon.cli.output import confirm, size
    from cocoon.system import prune

    if not args.force:
        images = "all images without a container" if args.all else "all untagged images"
        cache = "all build cache" if args.all else "build cache no image holds"
        what = ["all stopped containers", "all networks not used by a container", images, cache]
        if args.volumes:
            what.append("all anonymous volumes not used by a container")
        if not confirm(what):
            return 0
    pruned = prune(all_images=args.all, volumes=args.volumes)
    for heading, items in (("Deleted Containers", pruned.containers),
                           ("Deleted Networks", pruned.networks),
                           ("Deleted Images", pruned.images),
                           ("Deleted Volumes", pruned.volumes),
                           ("Deleted build cache objects", pruned.build_cache)):  # fmt: skip
        if items:
            print(f"{heading}:\n" + "\n".join(items) + "\n")
    print(f"Total reclaimed space: {size(pruned.reclaimed, 4)}")
    return 0


def _service(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from cocoon.service.api import default_socket, serve

    level = logging.DEBUG if args.debug else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s cocoon service: %(message)s")
    serve(Path(args.socket) if args.socket else default_socket())
    return 0


def _warm(args: argparse.Namespace) -> int:
    from cocoon.container.warm import warm

    for done in warm():
        verb = f"built in {done.seconds:.2f}s" if done.built else "already built"
        print(f"template {done.key} ({done.what}): {verb}")
    return 0


def _teardown(args: argparse.Namespace) -> int:
    from cocoon.cli.network import teardown

    return teardown(args)


def kernel(args: argparse.Namespace) -> int:
    from cocoon.cli.output import emit_one
    from cocoon.vm.artifacts import kernel_info

    emit_one(args.format, kernel_info())
    return 0


def info(args: argparse.Namespace) -> int:
    from cocoon import paths
    from cocoon.cli.output import emit_one
    from cocoon.vm import accel
    from cocoon.vm.artifacts import artifacts

    arts = artifacts()
    emit_one(
        args.format,
        {
            "accelerator": accel.choose(args.accel, arts.kernel, arts.initrd),
            "kernel": str(arts.kernel),
            "agent": str(arts.agent),
            "initrd": str(arts.initrd),
            "state_dir": str(paths.state_dir()),
            "cache_dir": str(paths.cache_dir()),
        },
    )
    return 0
