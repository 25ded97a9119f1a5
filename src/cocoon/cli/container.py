"""Container lifecycle verbs.

create, start, stop, kill, rm, ls/ps, inspect, logs, exec, stats, wait, prune.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable

from cocoon.cli import output
from cocoon.cli.run import add_container_flags, add_habit_flags, create
from cocoon.container.record import Record
from cocoon.stamps import ago, rfc3339

MIB = 1 << 20


def register(verbs: argparse._SubParsersAction) -> None:
    def verb(name: str, help: str, handler: Callable[[argparse.Namespace], int], **kw):
        p = verbs.add_parser(name, help=help, description=f"{help}.", **kw)
        p.set_defaults(handler=handler)
        return p

    p = verb("create", "Create a container without starting it", _create, add_help=False)
    p.add_argument("--help", action="help", help="show this help and exit")
    add_container_flags(p)
    add_habit_flags(p)

    p = verb("start", "Start a created or exited container", _start)
    p.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr, wait, "
                   "exit with the container's code")  # fmt: skip
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin too")
    p.add_argument("--all-restartable", action="store_true", help="start every stopped "
                   "container whose restart policy wants it up (for a boot-time unit)")  # fmt: skip
    p.add_argument("container", nargs="?", help="id, name or unique id prefix")

    p = verb("stop", "Stop running containers: signal, wait, then power the VM off", _stop)
    p.add_argument("-t", "--time", type=float, metavar="SECONDS",
                   help="seconds to wait after the signal before forcing "
                   "(default: the container's --stop-timeout, else 10)")  # fmt: skip
    p.add_argument("-s", "--signal", metavar="SIG",
                   help="signal to send (default: the image's StopSignal or SIGTERM)")  # fmt: skip
    p.add_argument("containers", nargs="+", metavar="CONTAINER")

    p = verb("kill", "Send a signal to running containers' main process", _kill)
    p.add_argument("-s", "--signal", default="SIGKILL", metavar="SIG",
                   help="signal to send (default SIGKILL)")  # fmt: skip
    p.add_argument("containers", nargs="+", metavar="CONTAINER")

    p = verb("rm", "Remove containers", _rm)
    p.add_argument("-f", "--force", action="store_true", help="kill running containers first")
    p.add_argument(
        "-v", "--volumes", action="store_true", help="remove their anonymous volumes too"
    )
    p.add_argument("containers", nargs="+", metavar="CONTAINER")

    for name in ("ls", "ps"):
        p = verb(name, "List containers", _ls)
        p.add_argument("-a", "--all", action="store_true", help="include stopped containers")
        p.add_argument("-q", "--quiet", action="store_true", help="only print ids")
        p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                       help="only containers that match: label, name, id, status, "
                       "ancestor")  # fmt: skip
        output.add_format_flag(p)

    p = verb("inspect", "Show containers' details as JSON", _inspect)
    output.add_format_flag(p, "-f", default="json")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")

    p = verb("logs", "Show a container's output (stdout to stdout, stderr to stderr)", _logs)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    p.add_argument("-n", "--tail", type=int, metavar="N", help="only the last N lines")
    p.add_argument("-t", "--timestamps", action="store_true", help="prefix each line's time")
    p.add_argument("container")

    p = verb("exec", "Run a command in a running container", _exec, add_help=False)
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V",
                   help="set an environment variable")  # fmt: skip
    p.add_argument("--env-file", action="append", default=[], metavar="FILE",
                   help="read environment variables from a file, one K=V a line")  # fmt: skip
    p.add_argument("-d", "--detach", action="store_true",
                   help="start the command and return; its output is dropped")  # fmt: skip
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory")
    p.add_argument("-u", "--user", metavar="USER[:GROUP]", help="user to run as")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")

    p = verb("stats", "Show CPU and memory use measured inside running containers", _stats)
    p.add_argument("--no-stream", action="store_true", help="print one sample and exit")
    output.add_format_flag(p)
    p.add_argument("containers", nargs="*", metavar="CONTAINER", help="default: all running")

    p = verb("wait", "Wait for containers to stop, then print their exit codes", _wait)
    p.add_argument("--condition", choices=("not-running", "healthy"), default="not-running",
                   help="until it stops (default) or its health check passes")  # fmt: skip
    p.add_argument("containers", nargs="+", metavar="CONTAINER")

    verb("prune", "Remove all stopped containers", _prune)

    p = verb("restart", "Stop containers if they run, then start them again", _restart)
    p.add_argument("-t", "--time", type=float, metavar="SECONDS",
                   help="seconds stop waits before forcing (default 10)")  # fmt: skip
    p.add_argument("containers", nargs="+", metavar="CONTAINER")

    p = verb("attach", "Attach this terminal to a running container's main process", _attach)
    p.add_argument("--no-stdin", action="store_true", help="do not attach standard input")
    p.add_argument("container")

    p = verb("port", "List a container's published ports", _port)
    p.add_argument("container")
    p.add_argument("private", nargs="?", metavar="PORT[/PROTO]", help="only this container port")

    p = verb("top", "Show a container's processes (runs the image's ps)", _top)
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="PS-OPTIONS")

    p = verb("rename", "Rename a container", _rename)
    p.add_argument("container")
    p.add_argument("new_name", metavar="NEW-NAME")

    p = verb("events", "Stream what happens to containers (until --until, or Ctrl-C)", _events)
    p.add_argument("--since", metavar="TIME", help="from TIME: epoch seconds, RFC 3339 or 10m ago")
    p.add_argument("--until", metavar="TIME", help="stop at TIME (same forms)")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="container, event, image, label or type")  # fmt: skip
    p.add_argument("--format", type=output.format_type, metavar="json|TEMPLATE",
                   help="one JSON object a line, or a Go template per event")  # fmt: skip

    p = verb("update", "Change containers' memory, CPUs (live where the VM allows) and "
             "restart policy", _update)  # fmt: skip
    p.add_argument("-m", "--memory", metavar="SIZE", help="memory; a running VM can only shrink")
    p.add_argument("--cpus", type=float, metavar="N",
                   help="CPUs; a running VM keeps its vCPUs, a fraction is a quota")  # fmt: skip
    p.add_argument("--restart", metavar="POLICY",
                   help="no, on-failure[:N], always, unless-stopped (from next exit)")  # fmt: skip
    p.add_argument("containers", nargs="+", metavar="CONTAINER")

    for name, help, handler in (("pause", "Freeze running containers' VMs", _pause),
                                ("unpause", "Let paused containers run on", _unpause)):  # fmt: skip
        p = verb(name, help, handler)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _create(args: argparse.Namespace) -> int:
    print(create(args).id)
    return 0


def _start(args: argparse.Namespace) -> int:
    from cocoon.container import manager
    from cocoon.errors import InvalidArgument

    if args.all_restartable == (args.container is not None):
        raise InvalidArgument("start needs a container, or --all-restartable")
    if args.all_restartable:
        for rec in manager.start_restartable():
            print(rec.name)
        return 0
    if not args.attach:
        rec = manager.start(args.container)
        print(args.container)
        return 0
    from cocoon.cli import terminal

    rec = manager.start(args.container, wait_attach=True)
    process = manager.attach(rec.id)
    stdin_fd = sys.stdin.fileno() if args.interactive else None
    return terminal.attach(process, stdin_fd=stdin_fd, tty=rec.settings.process.tty is not None)


def _each(args: argparse.Namespace, action: Callable[[str], object]) -> int:
    """Apply ``action`` to every container named; report failures, go on (like Docker)."""
    from cocoon.errors import CocoonError

    failed = 0
    for ref in args.containers:
        try:
            action(ref)
            print(ref)
        except CocoonError as e:
            print(f"cocoon: {e}", file=sys.stderr)
            failed = 1
    return 125 if failed else 0


def _stop(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    return _each(args, lambda ref: manager.stop(ref, args.time, args.signal))


def _kill(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    return _each(args, lambda ref: manager.kill(ref, args.signal))


def _rm(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    return _each(args, lambda ref: manager.remove(ref, args.force, volumes=args.volumes))


def _ls(args: argparse.Namespace) -> int:
    from cocoon import filters
    from cocoon.container import filters as container_filters
    from cocoon.container import manager
    from cocoon.container.inspect import status

    wanted = filters.parse(args.filter, container_filters.KEYS)
    found = manager.containers(all=args.all, filters=wanted)
    if args.quiet:
        for rec in found:
            print(rec.id[:12])
        return 0
    now = time.time()
    if output.is_template(args.format):
        output.emit_template(args.format, [_ps_row(rec, now) for rec in found], PS_HEADINGS)
        return 0
    rows = [
        {
            "id": rec.id if args.format == "json" else rec.id[:12],
            "name": rec.name,
            "image": rec.image,
            "command": " ".join(rec.command),
            "created": rfc3339(rec.created) if args.format == "json" else ago(rec.created),
            "state": rec.state.value,
            "status": status(rec, now),
            "exit_code": rec.exit_code,
            "error": rec.error,
        }
        for rec in found
    ]
    columns = [("id", "CONTAINER ID"), ("image", "IMAGE"), ("command", "COMMAND"),
               ("created", "CREATED"), ("status", "STATUS"), ("name", "NAMES")]  # fmt: skip
    if args.format == "table":
        for row in rows:
            row["command"] = _clip(row["command"], 30)
    output.emit(args.format, rows, columns)
    return 0


# docker ps's template fields, and their headings in a `table` format.
PS_HEADINGS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
               "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
               "State": "STATE", "Status": "STATUS", "Names": "NAMES", "Labels": "LABELS",
               "Networks": "NETWORKS", "Mounts": "MOUNTS", "Size": "SIZE"}  # fmt: skip


def _ps_row(rec: Record, now: float) -> dict[str, object]:
    from cocoon.container.inspect import status

    settings = rec.settings
    created = datetime.datetime.fromtimestamp(rec.created, datetime.UTC)
    return {
        "ID": rec.id[:12],
        "Image": rec.image,
        "Command": '"' + _clip(" ".join(rec.command), 20) + '"',
        "CreatedAt": created.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
        "RunningFor": ago(rec.created),
        "Ports": ", ".join(str(p) for p in settings.network.ports),
        "State": rec.state.value,
        "Status": status(rec, now),
        "Names": rec.name,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(settings.labels.items())),
        "Networks": ",".join(settings.network.networks()) or settings.network.mode,
        "Mounts": "",
        "Size": "",
    }


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _inspect(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    found = [manager.inspect(ref) for ref in args.containers]
    if output.is_template(args.format):
        output.emit_template(args.format, found)
    else:
        output.emit_json(found)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from cocoon.container import logs, manager

    rec = manager.get(args.container)
    sinks = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    for entry in logs.shown(rec.id, tail=args.tail, keep_following=args.follow):
        sink = sinks[entry.stream]
        if args.timestamps:
            sink.write(logs.stamp(entry.time))
        sink.write(entry.data)
        sink.flush()
    return 0


def _exec(args: argparse.Namespace) -> int:
    from cocoon.cli import terminal
    from cocoon.container import manager
    from cocoon.container.spec import read_env_file

    rec = manager.get(args.container)
    from_files = [e for f in args.env_file for e in read_env_file(f)]
    spec = manager.exec_spec(
        rec,
        args.command,
        env=[*from_files, *args.env],
        workdir=args.workdir,
        user=args.user,
        tty=terminal.size(sys.stdout.fileno()) if args.tty else None,
        interactive=args.interactive and not args.detach,
    )
    if args.detach:
        manager.exec_detached(rec.id, spec)
        return 0
    process = manager.exec_start(rec.id, spec)
    stdin_fd = sys.stdin.fileno() if args.interactive else None
    return terminal.attach(process, stdin_fd=stdin_fd, tty=args.tty)


def _stats(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from cocoon.container import manager, stats

    refs = args.containers or [rec.id for rec in manager.containers()]
    while True:
        rows = []
        for ref in refs:
            s = stats.sample(ref)
            rows.append({
                "id": s.id if args.format == "json" else s.id[:12],
                "name": s.name,
                "cpu_percent": round(s.cpu_percent, 2),
                "cpu": f"{s.cpu_percent:.2f}%",
                "cpus": s.cpus,
                "memory_used": s.memory_used,
                "memory_total": s.memory_total,
                "memory": f"{s.memory_used / MIB:.1f}MiB / {s.memory_total / MIB:.0f}MiB",
                "memory_percent": round(100 * s.memory_used / max(s.memory_total, 1), 2),
                "network": {card: asdict(io) for card, io in s.network.items()} or None,
                "net": "--" if not s.network else
                       f"{output.size(sum(io.rx_bytes for io in s.network.values()))} / "
                       f"{output.size(sum(io.tx_bytes for io in s.network.values()))}",
            })  # fmt: skip
        if args.format == "json":
            rows = [{k: v for k, v in r.items() if k not in ("cpu", "memory", "net")} for r in rows]
        columns = [("id", "CONTAINER ID"), ("name", "NAME"), ("cpu", "CPU %"),
                   ("memory", "MEM USAGE / LIMIT"), ("memory_percent", "MEM %"),
                   ("net", "NET I/O")]  # fmt: skip
        output.emit(args.format, rows, columns)
        if args.no_stream:
            return 0
        sys.stdout.flush()


def _wait(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    for ref in args.containers:
        if args.condition == "healthy":
            print(manager.wait_healthy(ref).name)
            continue
        rec = manager.wait(ref)
        print("" if rec.exit_code is None else rec.exit_code)
    return 0


def _restart(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    return _each(args, lambda ref: manager.restart(ref, args.time))


def _pause(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    return _each(args, manager.pause)


def _unpause(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    return _each(args, manager.unpause)


def _events(args: argparse.Namespace) -> int:
    import json

    from cocoon import filters
    from cocoon.container import events
    from cocoon.text import printable

    wanted = filters.parse(args.filter, events.FILTERS)
    since = None if args.since is None else events.parse_time(args.since, "--since")
    until = None if args.until is None else events.parse_time(args.until, "--until")
    for event in events.follow(since, until, wanted):
        if args.format == "json":
            print(json.dumps(event))
        elif args.format is not None:
            output.emit_template(args.format, [event])
        else:
            # Labels come from images too: no escape sequence reaches the terminal.
            attributes = sorted(event["Actor"]["Attributes"].items())
            said = printable(", ".join(f"{k}={v}" for k, v in attributes))
            print(f"{rfc3339(event['timeNano'] / 1e9)} container {event['Action']} {event['id']} "
                  f"({said})")  # fmt: skip
        sys.stdout.flush()
    return 0


def _update(args: argparse.Namespace) -> int:
    from cocoon.container.update import update

    return _each(
        args, lambda ref: update(ref, memory=args.memory, cpus=args.cpus, policy=args.restart)
    )


def _rename(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    manager.rename(args.container, args.new_name)
    return 0


def _attach(args: argparse.Namespace) -> int:
    from cocoon.cli import terminal
    from cocoon.container import manager

    rec = manager.get(args.container)
    process = manager.attach(rec.id)
    stdin_fd = None if args.no_stdin or not rec.settings.process.stdin else sys.stdin.fileno()
    return terminal.attach(process, stdin_fd=stdin_fd, tty=rec.settings.process.tty is not None)


def _port(args: argparse.Namespace) -> int:
    from cocoon.container import manager
    from cocoon.errors import InvalidArgument, NotFound

    found = manager.ports(args.container)
    if args.private:
        port, _, proto = args.private.partition("/")
        if not port.isdigit():
            raise InvalidArgument(f"invalid port {args.private!r}: use PORT[/tcp|udp]")
        found = [p for p in found if p.container_port == int(port)
                 and p.protocol == (proto or "tcp")]  # fmt: skip
        if not found:
            raise NotFound(f"no public port {args.private} published for {args.container}")
    for p in found:
        prefix = "" if args.private else f"{p.container_port}/{p.protocol} -> "
        print(f"{prefix}{p.host_ip}:{p.host_port}")
    return 0


def _top(args: argparse.Namespace) -> int:
    from cocoon.container import top

    sys.stdout.buffer.write(top.ps(args.container, args.ps_args))
    return 0


def _prune(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    for rec in manager.prune():
        print(rec.id)
    return 0
