"""cocoon run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cocoon.container.options import RunOptions
    from cocoon.container.record import Record

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
    add_habit_flags(p)
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
    p.add_argument("--group-add", action="append", default=[], metavar="GROUP",
                   help="an extra group for the process (name or id)")  # fmt: skip
    p.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                   help="a resource limit, e.g. nofile=1024:2048 (-1: unlimited)")  # fmt: skip
    p.add_argument("--entrypoint", metavar="CMD", help="override the image's entrypoint")
    p.add_argument("--name", help="name the container")
    p.add_argument("--hostname", "-h", metavar="NAME", help="the container's hostname")
    p.add_argument("--cpus", type=float, default=1, metavar="N",
                   help="CPUs (default 1); a fraction is rounded up to vCPUs and kept as a "
                   "CPU quota where the host's cgroups allow")  # fmt: skip
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
        action="append",
        default=[],
        help="network to join: a cocoon network, 'user' (QEMU user-mode, unprivileged) or "
        "'none' (default: cocoon0 as root, else user); repeat for more cocoon networks, "
        "the first is the default route",
    )
    p.add_argument("--ip", metavar="ADDR", help="the container's address on its (first) network")
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


def add_habit_flags(p: argparse.ArgumentParser) -> None:
    """Docker habits (issue 13) for run and create, kept apart from the flags above."""
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY[=VALUE]",
                   help="set a label on the container (over the image's)")  # fmt: skip
    p.add_argument("--label-file", action="append", default=[], metavar="FILE",
                   help="read labels from a file, one KEY[=VALUE] a line")  # fmt: skip
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="publish every port the image exposes on a free host port")  # fmt: skip
    p.add_argument("--pull", choices=("always", "missing", "never"), default="missing",
                   help="pull the image first: always, if missing (default) or never")  # fmt: skip
    p.add_argument("--stop-signal", metavar="SIG",
                   help="signal for stop (default: the image's StopSignal or SIGTERM)")  # fmt: skip
    p.add_argument("--stop-timeout", type=_seconds, metavar="SECONDS",
                   help="seconds stop waits before forcing (default 10)")  # fmt: skip
    p.add_argument("--cidfile", metavar="FILE", help="write the container's id to FILE")
    p.add_argument("--restart", default="no", metavar="POLICY",
                   help="no (default), on-failure[:N], always or unless-stopped: "
                   "the container's monitor runs it again, with back-off")  # fmt: skip
    p.add_argument("--health-cmd", metavar="CMD", help="command (run by sh) that checks health")
    for name, default in (("interval", "30s"), ("timeout", "30s"), ("start-period", "0s")):
        p.add_argument(f"--health-{name}", metavar="DURATION",
                       help=f"health check's {name} (default {default})")  # fmt: skip
    p.add_argument("--health-retries", type=int, metavar="N",
                   help="failures in a row that make it unhealthy (default 3)")  # fmt: skip
    p.add_argument("--no-healthcheck", action="store_true",
                   help="no health check, not even the image's HEALTHCHECK")  # fmt: skip
    p.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN",
                   help="search domain for the container's resolv.conf")  # fmt: skip
    p.add_argument("--dns-option", action="append", default=[], metavar="OPT",
                   help="resolv.conf option, e.g. ndots:2")  # fmt: skip
    p.add_argument("--network-alias", action="append", default=[], metavar="NAME",
                   help="another name containers on the same network resolve")  # fmt: skip
    p.add_argument("--shm-size", metavar="SIZE",
                   help="size of /dev/shm (default: half the VM's memory)")  # fmt: skip
    p.add_argument("--platform", metavar="OS/ARCH",
                   help="accepted when it is the host's (linux/amd64 here)")  # fmt: skip
    p.add_argument("--init", action="store_true",
                   help="accepted: cocoon's agent is always a PID 1 that reaps")  # fmt: skip


def _seconds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds")
    return int(text)


def healthcheck_from(args: argparse.Namespace) -> dict[str, object] | None:
    """The --health-* flags as RunOptions.healthcheck (over the image's HEALTHCHECK)."""
    from cocoon.errors import InvalidArgument

    fields = {"test": args.health_cmd, "interval": args.health_interval,
              "timeout": args.health_timeout, "start_period": args.health_start_period,
              "retries": args.health_retries}  # fmt: skip
    given = {k: v for k, v in fields.items() if v is not None}
    if args.no_healthcheck:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with the --health-* flags")
        return {"test": ["NONE"]}
    return given or None


def labels_from(args: argparse.Namespace) -> dict[str, str]:
    """--label-file lines, then --label flags (later wins), as KEY[=VALUE]."""
    from cocoon.container.spec import read_env_file  # the same line format

    items = [line for f in args.label_file for line in read_env_file(f)] + args.label
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        labels[key.strip()] = value
    return labels


def check_cidfile(path: str | None) -> None:
    """Docker refuses a --cidfile that exists: another container may own it."""
    from cocoon.errors import AlreadyExists

    if path is not None and os.path.lexists(path):
        raise AlreadyExists(f"container id file {path} exists: remove it first")


def write_cidfile(path: str | None, container_id: str) -> None:
    from cocoon.errors import InvalidArgument

    if path is None:
        return
    try:
        with open(path, "x") as f:
            f.write(container_id)
    except OSError as e:
        raise InvalidArgument(f"cannot write the container id file {path}: {e.strerror}") from e


def create(args: argparse.Namespace) -> Record:
    """A container as run -d and create make it; with --cidfile, its id written there."""
    from cocoon.container import manager

    check_cidfile(args.cidfile)
    rec = manager.create(args.image, options_from(args, (24, 80) if args.tty else None))
    try:
        write_cidfile(args.cidfile, rec.id)
    except BaseException:
        manager.remove(rec.id)
        raise
    return rec


def options_from(args: argparse.Namespace, tty_size: tuple[int, int] | None) -> RunOptions:
    from cocoon.container.options import RunOptions
    from cocoon.volume.mounts import from_flags

    return RunOptions(
        labels=labels_from(args),
        publish_all=args.publish_all,
        pull=args.pull,
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        restart=args.restart,
        healthcheck=healthcheck_from(args),
        dns_search=args.dns_search,
        dns_options=args.dns_option,
        network_aliases=args.network_alias,
        shm_size=args.shm_size,
        platform=args.platform,
        command=args.command or None,
        entrypoint=args.entrypoint,
        env=args.env,
        env_files=args.env_file,
        workdir=args.workdir,
        user=args.user,
        group_add=args.group_add,
        ulimits=args.ulimit,
        hostname=args.hostname,
        name=args.name,
        tty=tty_size,
        interactive=args.interactive,
        cpus=args.cpus,
        memory=args.memory,
        remove=args.rm,
        accel=args.accel,
        template=args.template,
        network=args.network[0] if args.network else None,
        more_networks=args.network[1:],
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

    check_cidfile(args.cidfile)
    if args.detach:
        from cocoon.container import manager

        print(manager.start(create(args).id).id)
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
            on_create=lambda cid: write_cidfile(args.cidfile, cid),
        )
    if timings_file := os.environ.get("COCOON_TIMINGS"):
        # For bench/: where this run's time went, in seconds.
        with open(timings_file, "w") as f:
            f.write(json.dumps(result.timings))
    return terminal.report(result.exit_code, result.error)
