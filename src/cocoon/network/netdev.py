"""Bridges and TAP devices, through ioctls on the calling process's network namespace.

ioctls rather than the ``ip`` command or pyroute2: a TAP per container is on
the start path, and a few ioctls cost microseconds where a subprocess costs
milliseconds; nothing to install either. The TAP is opened without
TUNSETPERSIST and its fd handed to QEMU, so the kernel deletes it the moment
the last holder exits: a killed VM cannot leak one.

A bridge cocoon creates carries the alias ``cocoon`` (``ifalias``): that is
how cocoon knows which interfaces are its own and never touches another's.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import socket
import struct
from pathlib import Path

from cocoon.errors import AlreadyExists, ExternalError, Unsupported

OWNER_ALIAS = "cocoon"

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
SIOCBRADDBR = 0x89A0
SIOCBRDELBR = 0x89A1
SIOCBRADDIF = 0x89A2
SIOCBRDELIF = 0x89A3
TUNSETIFF = 0x400454CA
IFF_UP = 0x1
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
CAP_NET_ADMIN = 12


def can_admin() -> bool:
    """Whether this process may create bridges and TAPs (CAP_NET_ADMIN)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    return False


def exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def owned(name: str) -> bool:
    try:
        return Path(f"/sys/class/net/{name}/ifalias").read_text().strip() == OWNER_ALIAS
    except OSError:
        return False


def _ifreq(name: str, data: bytes = b"") -> bytes:
    return struct.pack("16s", name.encode()) + data.ljust(24, b"\0")


def _sockaddr_in(address: str) -> bytes:
    return struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton(address))


def _ioctl(request: int, arg: bytes, what: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            return fcntl.ioctl(s.fileno(), request, arg)
        except OSError as e:
            raise ExternalError(f"{what}: {e.strerror}") from e


def _set_up(name: str) -> None:
    flags = struct.unpack_from("H", _ioctl(SIOCGIFFLAGS, _ifreq(name), f"flags of {name}"), 16)[0]
    _ioctl(SIOCSIFFLAGS, _ifreq(name, struct.pack("H", flags | IFF_UP)), f"bring up {name}")


def ensure_bridge(name: str, gateway: str, prefix: int) -> bool:
    """Create bridge ``name`` with the gateway address, unless cocoon already did; True if new."""
    if exists(name):
        if not owned(name):
            raise AlreadyExists(f"interface {name} exists and was not created by cocoon")
        return False
    try:
        with socket.socket() as s:
            fcntl.ioctl(s.fileno(), SIOCBRADDBR, name.encode())
    except OSError as e:
        raise ExternalError(f"create bridge {name}: {e.strerror}") from e
    try:
        Path(f"/sys/class/net/{name}/ifalias").write_text(OWNER_ALIAS)
        mask = str(ipaddress.ip_network(f"0.0.0.0/{prefix}").netmask)
        _ioctl(SIOCSIFADDR, _ifreq(name, _sockaddr_in(gateway)), f"address of {name}")
        _ioctl(SIOCSIFNETMASK, _ifreq(name, _sockaddr_in(mask)), f"netmask of {name}")
        _set_up(name)
    except BaseException:
        delete_bridge(name)
        raise
    return True


def delete_bridge(name: str) -> None:
    """Delete a bridge cocoon created; others are left alone."""
    if not owned(name):
        return
    with socket.socket() as s:
        # The kernel refuses to delete a bridge that is up.
        flags = struct.unpack_from("H", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, _ifreq(name)), 16)[0]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, _ifreq(name, struct.pack("H", flags & ~IFF_UP)))
        try:
            fcntl.ioctl(s.fileno(), SIOCBRDELBR, name.encode())
        except OSError as e:
            raise ExternalError(f"delete bridge {name}: {e.strerror}") from e


def open_tap(name: str, bridge: str | None) -> int:
    """A TAP device on ``bridge`` (or on none), up; its fd (the device goes when the fd's
    last holder exits). Made in the calling thread's network namespace."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise Unsupported(f"cannot open /dev/net/tun: {e.strerror}") from e
    try:
        flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        try:
            fcntl.ioctl(fd, TUNSETIFF, _ifreq(name, struct.pack("H", flags)))
        except OSError as e:
            raise ExternalError(f"create TAP {name}: {e.strerror}") from e
        if bridge is not None:
            index = struct.pack("i", socket.if_nametoindex(name))
            _ioctl(SIOCBRADDIF, _ifreq(bridge, index), f"attach {name} to {bridge}")
        _set_up(name)
    except BaseException:
        os.close(fd)
        raise
    return fd


def detach(name: str, bridge: str) -> None:
    """Take interface ``name`` off ``bridge``; nothing if it is not on it (any more)."""
    if not Path(f"/sys/class/net/{bridge}/brif/{name}").exists():
        return
    index = struct.pack("i", socket.if_nametoindex(name))
    _ioctl(SIOCBRDELIF, _ifreq(bridge, index), f"detach {name} from {bridge}")


def cocoon_bridges() -> list[str]:
    """Interfaces in this namespace that cocoon created."""
    with contextlib.suppress(OSError):
        return sorted(p.name for p in Path("/sys/class/net").iterdir() if owned(p.name))
    return []


def traffic(name: str) -> list[int] | None:
    """An interface's counters in this process's namespace, as ``/proc/net/dev``
    lists them (received: bytes packets errs drop fifo frame compressed
    multicast; sent: bytes packets errs drop fifo colls carrier compressed);
    None if there is no such interface here."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
            iface, _, numbers = line.partition(":")
            if iface.strip() == name:
                return [int(n) for n in numbers.split()]
    return None


__all__ = [
    "can_admin",
    "cocoon_bridges",
    "delete_bridge",
    "detach",
    "ensure_bridge",
    "exists",
    "open_tap",
    "traffic",
]
