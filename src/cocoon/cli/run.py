"""cocoon run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cocoon.container.options import RunOptions

HELP = "Run a command in a new container, in its own VM"


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "run",
        help=HELP,
        add_help=False,  # -h is --hostname, as in Docker
        description=f"{HELP}. The exit code is the command's (128+N when killed by signal N).",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument(
        "-d", "--detach", action="store_true", help="run in the background and print the id"
    )
    add_container_flags(p)
    p.set_defaults(handler=handle)


def add_container_flags(p: argparse.ArgumentParser) -> None:
    """What a new container is made of: shared by run and create."""
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="set an environment variable (K alone copies it from here)",
    )
    p.add_argument(
        "--env-file",
        action="append",
        default=[],
        metavar="FILE",
        help="read environment variables from a file, one K=V a line",
    )
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    p.add_argument("-u", "--user", metavar="USER[:GROUP]", help="user to run as (name or id)")
    p.add_argument("--entrypoint", metavar="CMD", help="override the image's entrypoint")
    p.add_argument("--name", help="name the container")
    p.add_argument("--hostname", "-h", metavar="NAME", help="the container's hostname")
    p.add_argument("--cpus", type=int, default=1, metavar="N", help="virtual CPUs (default 1)")
    p.add_argument(
        "-m",
        "--memory",
        default="256m",
        metavar="SIZE",
        help="VM memory, e.g. 512m or 2g (default 256m)",
    )
    p.add_argument(
        "--accel",
        choices=("auto", "kvm", "tcg"),
        default="auto",
        help="accelerator: KVM where it works, else TCG (default auto)",
    )
    p.add_argument(
        "--no-template",
        dest="template",
        action="store_false",
        help="cold-boot the VM rather than resume a memory template",
    )
    p.add_argument(
        "--network",
        "--net",
        metavar="NAME",
        help="network to join: a cocoon network, 'user' (QEMU user-mode, unprivileged) or "
        "'none' (default: cocoon0 as root, else user)",
    )
    p.add_argument("--ip", metavar="ADDR", help="the container's address on its network")
    p.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[HOSTIP:]HOSTPORT:CPORT[/PROTO]",
        help="forward a host port (tcp or udp) to the container",
    )
    p.add_argument(
        "--dns", action="append", default=[], metavar="ADDR", help="name server for the container"
    )
    p.add_argument(
        "--add-host",
        action="append",
        default=[],
        metavar="NAME:IP",
        help="add a line to the container's /etc/hosts",
    )
    p.add_argument(
        "--storage-opt",
        action="append",
        default=[],
        metavar="size=SIZE",
        help="the container's disk size, at least the image's (default: the image's, 8g)",
    )
    add_mount_flags(p)
    p.add_argument("image", help="image reference or id")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")


def add_mount_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-v",
        "--volume",
        action="append",
        default=[],
        metavar="[SRC:]DST[:ro|rw]",
        help="mount a host folder (SRC a path) or a volume (SRC a name; none = anonymous)",
    )
    p.add_argument(
        "--mount",
        action="append",
        default=[],
        metavar="type=bind|volume|tmpfs,...",
        help="mount, Docker's long form (source=, target=, readonly, ...)",
    )
    p.add_argument(
        "--tmpfs",
        action="append",
        default=[],
        metavar="DST[:size=,mode=]",
        help="mount a memory filesystem",
    )
    p.add_argument("--read-only", action="store_true", help="mount the root read-only")


def options_from(args: argparse.Namespace, tty_size: tuple[int, int] | None) -> RunOptions:
    from cocoon.container.options import RunOptions
    from cocoon.volume.mounts import from_flags

    return RunOptions(
        command=args.command or None,
        entrypoint=args.entrypoint,
        env=args.env,
        env_files=args.env_file,
        workdir=args.workdir,
        user=args.user,
        hostname=args.hostname,
        name=args.name,
        tty=tty_size,
        interactive=args.interactive,
        cpus=args.cpus,
        memory=args.memory,
        remove=args.rm,
        accel=args.accel,
        template=args.template,
        network=args.network,
        ip=args.ip,
        dns=args.dns,
        add_hosts=args.add_host,
        publish=args.publish,
        storage_opts=args.storage_opt,
        mounts=from_flags(args.volume, args.mount, args.tmpfs),
        read_only=args.read_only,
    )


def handle(args: argparse.Namespace) -> int:
    from cocoon.cli import terminal

    if args.detach:
        from cocoon.container import manager

        rows_cols = (24, 80) if args.tty else None
        print(manager.run_detached(args.image, options_from(args, rows_cols)).id)
        return 0

    from cocoon.container.run import run

    stdin_fd = sys.stdin.fileno() if args.interactive else None
    out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    options = options_from(args, terminal.size(out_fd) if args.tty else None)
    with terminal.raw(stdin_fd, args.tty):
        result = run(
            args.image,
            options,
            stdin=stdin_fd,
            stdout=terminal.stdio_writer(out_fd),
            stderr=terminal.stdio_writer(err_fd),
            on_start=lambda p: terminal.relay_signals(p, out_fd if args.tty else None),
        )
    if timings_file := os.environ.get("COCOON_TIMINGS"):
        # For bench/: where this run's time went, in seconds.
        with open(timings_file, "w") as f:
            f.write(json.dumps(result.timings))
    return terminal.report(result.exit_code, result.error)
