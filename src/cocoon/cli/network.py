"""cocoon network: create, ls, inspect, rm, prune, connect, disconnect; and teardown."""

from __future__ import annotations

import argparse

from cocoon.cli import output


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("network", help="Manage container networks")
    sub = p.add_subparsers(dest="network_verb", metavar="COMMAND", required=True)
    c = sub.add_parser("create", help="Create a network (a bridge, made on first use)")
    c.add_argument("--subnet", metavar="CIDR", help="e.g. 192.168.70.0/24 (default: a free /24)")
    c.add_argument("name")
    c.set_defaults(handler=_create)
    for name in ("ls", "list"):
        ls = sub.add_parser(name, help="List networks")
        output.add_format_flag(ls)
        ls.set_defaults(handler=_ls)
    i = sub.add_parser("inspect", help="Show networks as JSON, with their leases")
    i.add_argument("names", nargs="+", metavar="NAME")
    i.set_defaults(handler=_inspect)
    r = sub.add_parser("rm", help="Remove networks no container uses")
    r.add_argument("names", nargs="+", metavar="NAME")
    r.set_defaults(handler=_rm)
    pr = sub.add_parser("prune", help="Remove networks no container is on")
    pr.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    pr.set_defaults(handler=_prune)
    cn = sub.add_parser("connect", help="Put a container that is not running on one more network")
    cn.add_argument("--alias", action="append", default=[], metavar="NAME",
                    help="another name its peers on that network resolve")  # fmt: skip
    cn.add_argument("network", metavar="NETWORK")
    cn.add_argument("container", metavar="CONTAINER")
    cn.set_defaults(handler=_connect)
    dc = sub.add_parser(
        "disconnect", help="Take a container off a network (a running VM's card there is cut off)"
    )
    dc.add_argument("network", metavar="NETWORK")
    dc.add_argument("container", metavar="CONTAINER")
    dc.set_defaults(handler=_disconnect)
    t = sub.add_parser(
        "teardown", help="Delete the bridges and NAT rules cocoon made here (none may be in use)"
    )
    t.set_defaults(handler=teardown)


def _view(net) -> dict:
    from cocoon.network.ipam import view

    return view(net)


def _create(args: argparse.Namespace) -> int:
    from cocoon.network import ipam

    print(ipam.create(args.name, args.subnet).name)
    return 0


def _ls(args: argparse.Namespace) -> int:
    from cocoon.network import ipam

    rows = [_view(n) for n in ipam.all_networks()]
    if args.format == "table":
        for r in rows:
            r["containers"] = len(r["containers"])
    columns = [("name", "NAME"), ("subnet", "SUBNET"), ("gateway", "GATEWAY"),
               ("bridge", "BRIDGE"), ("containers", "CONTAINERS")]  # fmt: skip
    output.emit(args.format, rows, columns)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from cocoon.network import ipam

    output.emit_json([_view(ipam.get(n)) for n in args.names])
    return 0


def _rm(args: argparse.Namespace) -> int:
    from cocoon.network.teardown import delete

    for name in args.names:
        delete(name)
        print(name)
    return 0


def _connect(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    manager.connect(args.container, args.network, args.alias)
    return 0


def _disconnect(args: argparse.Namespace) -> int:
    from cocoon.container import manager

    manager.disconnect(args.container, args.network)
    return 0


def _prune(args: argparse.Namespace) -> int:
    from cocoon.container.record import exists
    from cocoon.network.teardown import prune

    if not args.force and not output.confirm(["all networks not used by a container"]):
        return 0
    for name in prune(exists):
        print(name)
    return 0


def teardown(args: argparse.Namespace) -> int:
    from cocoon.container import manager
    from cocoon.errors import InvalidState
    from cocoon.network.teardown import teardown as remove_all

    bridged = [r.name for r in manager.containers() if r.settings.network.mode == "bridge"]
    if bridged:
        raise InvalidState(f"containers still use bridge networks: {', '.join(bridged)}")
    for bridge in remove_all():
        print(bridge)
    return 0
