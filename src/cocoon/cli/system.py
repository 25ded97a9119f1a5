"""cocoon system: what cocoon runs on (kernel, agent, accelerator, folders)."""

from __future__ import annotations

import argparse


def register(verbs: argparse._SubParsersAction) -> None:
    from cocoon.cli.output import add_format_flag

    p = verbs.add_parser("system", help="Show the guest kernel, accelerator and folders")
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
