"""A VM's NIC inside a network namespace another program made (an OCI engine's, a CNI pod's).

Kata Containers' technique: the namespace has one veth carrying the
container's address. A TAP is made next to it, and tc mirrors everything
arriving on either into the other (ingress qdisc, ``mirred egress
redirect``), so the veth becomes a wire to the VM. The guest takes the
veth's IP address, prefix, gateway and MAC: the container's address is the
VM's, and the engine's own plumbing (bridge, NAT, port maps) works unchanged.
The namespace's kernel never sees those packets (they are redirected
before its stack), so the veth keeping its address does no harm.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from cocoon.errors import ExternalError, InvalidArgument
from cocoon.network import netdev

CLONE_NEWNET = 0x40000000


@dataclass(frozen=True, slots=True)
class Interface:
    """The veth an engine made in a network namespace, with its address."""

    name: str
    mac: str
    ip: str
    prefix: int
    gateway: str | None


def _setns(fd: int) -> None:
    import ctypes  # only for the containers that need it, off everyone's start path

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise ExternalError(f"enter network namespace: {os.strerror(errno)}")


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """The calling thread inside the namespace at ``path`` (other threads stay where they are)."""
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise InvalidArgument(f"network namespace {path}: {e.strerror}") from None
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def _run(path: str, *argv: str) -> str:
    result = subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True, text=True)
    if result.returncode != 0:
        raise ExternalError(f"{' '.join(argv)} in {path}: {result.stderr.strip()}")
    return result.stdout


def interface(path: str) -> Interface:
    """The namespace's one interface with an IPv4 address (besides loopback)."""
    links = json.loads(_run(path, "ip", "-j", "addr", "show") or "[]")
    found = [
        (link, info)
        for link in links
        if link.get("ifname") != "lo"
        for info in link.get("addr_info", [])
        if info.get("family") == "inet"
    ]
    if len(found) != 1:
        raise InvalidArgument(
            f"network namespace {path}: needs exactly one interface with an IPv4 address, "
            f"found {len(found)}"
        )
    link, info = found[0]
    routes = json.loads(_run(path, "ip", "-j", "-4", "route", "show", "default") or "[]")
    gateway = next((r["gateway"] for r in routes if "gateway" in r), None)
    prefix = int(info["prefixlen"])
    return Interface(link["ifname"], link["address"], info["local"], prefix, gateway)


def open_tap(path: str, name: str, veth: str) -> int:
    """A TAP in the namespace, wired to ``veth`` both ways; its fd, for the VMM."""
    with entered(path):
        fd = netdev.open_tap(name, None)
    try:
        for a, b in ((veth, name), (name, veth)):
            _run(path, "tc", "qdisc", "replace", "dev", a, "ingress")
            _run(path, "tc", "filter", "replace", "dev", a, "parent", "ffff:", "protocol", "all",
                 "u32", "match", "u8", "0", "0", "action", "mirred", "egress", "redirect",
                 "dev", b)  # fmt: skip
    except BaseException:
        os.close(fd)
        raise
    return fd


__all__ = ["Interface", "entered", "interface", "open_tap"]
