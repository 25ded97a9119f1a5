"""cocoon registry: log in to and out of registries."""

from __future__ import annotations

import argparse
import getpass
import sys


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("registry", help="Log in to and out of image registries")
    sub = p.add_subparsers(dest="registry_verb", metavar="COMMAND", required=True)
    _add_login_flags(sub.add_parser("login", help=LOGIN_HELP))
    _add_logout_flags(sub.add_parser("logout", help=LOGOUT_HELP))
    # Docker's top-level forms.
    _add_login_flags(verbs.add_parser("login", help=f"{LOGIN_HELP} (registry login)"))
    _add_logout_flags(verbs.add_parser("logout", help=f"{LOGOUT_HELP} (registry logout)"))


LOGIN_HELP = "Check credentials with a registry and save them"
LOGOUT_HELP = "Forget a registry's saved credentials"


def _add_login_flags(login: argparse.ArgumentParser) -> None:
    login.add_argument("server", help="registry host[:port], e.g. 127.0.0.1:5000")
    login.add_argument("-u", "--username", help="user name (asked for when missing)")
    login.add_argument("-p", "--password", help="password (prefer --password-stdin)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.add_argument("--insecure", action="store_true", help="no TLS verification")
    login.set_defaults(handler=login_registry)


def _add_logout_flags(logout: argparse.ArgumentParser) -> None:
    logout.add_argument("server", help="registry host[:port]")
    logout.set_defaults(handler=logout_registry)


def login_registry(args: argparse.Namespace) -> int:
    from cocoon.errors import InvalidArgument
    from cocoon.image.registry import RegistryClient, credentials

    username = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = args.password or getpass.getpass("Password: ")
    if not username or not password:
        raise InvalidArgument("login needs a user name and a password")
    with RegistryClient(
        args.server, insecure=args.insecure, credentials=(username, password)
    ) as client:
        client.ping()
    path = credentials.save(args.server, username, password)
    print(f"Login succeeded (credentials saved in {path})")
    return 0


def logout_registry(args: argparse.Namespace) -> int:
    from cocoon.errors import NotFound
    from cocoon.image.registry import credentials

    if not credentials.remove(args.server):
        raise NotFound(f"not logged in to {args.server}")
    print(f"Removed login credentials for {args.server}")
    return 0
