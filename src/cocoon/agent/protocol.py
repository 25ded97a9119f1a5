"""Frames of the guest protocol (docs/guest-protocol.md), encoded and decoded.

Pure functions over bytes: the one framing code path every host-side caller
shares, tested against the same document as the C agent.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cocoon.agent.limits import RESOURCES
from cocoon.errors import Corrupt, InvalidArgument
from cocoon.text import printable

if TYPE_CHECKING:
    from cocoon.agent.spec import ProcessSpec

VERSION = 3
# Room for a RUN of everything execve(2) takes (ARG_MAX, 2 MiB) and its field headers.
MAX_PAYLOAD = 4 << 20
HEADER = struct.Struct(">IBI")


class Msg(enum.IntEnum):
    # guest -> host
    READY = 0x01
    STDOUT = 0x02
    STDERR = 0x03
    EXIT = 0x04
    ERROR = 0x05
    STARTED = 0x06
    COUNTERS = 0x07
    PONG = 0x08
    # host -> guest
    RUN = 0x10
    STDIN = 0x11
    SIGNAL = 0x12
    RESIZE = 0x13
    SHUTDOWN = 0x14
    HOSTS = 0x15
    STATS = 0x16
    CONFIG = 0x17
    PING = 0x18


class Field(enum.IntEnum):
    ARG = 0x01
    ENV = 0x02
    CWD = 0x03
    USER = 0x04
    TTY = 0x05
    STDIN = 0x06
    TAR = 0x07
    RLIMIT = 0x08
    GROUPS = 0x09
    ROOT = 0x0A  # build: an overlay of the step's folder over lower folders


class TarOp(enum.IntEnum):
    CREATE = 1  # a tar of the path on stdout
    EXTRACT = 2  # the tar on stdin unpacked at the path
    LAYER = 3  # an overlay upper folder at the path, as an OCI layer tar on stdout
    UNLAYER = 4  # the OCI layer tar on stdin, made an overlay upper folder at the path
    ENTRY = 5  # a tar of the path's own entry alone (what it is), its link followed


TAR_ONE_FS = 0x01  # CREATE: folders of other filesystems stay empty
TAR_KEEP_KINDS = 0x02  # EXTRACT: never replace a folder by a non-folder or the reverse


class ConfigField(enum.IntEnum):
    HOSTNAME = 0x01
    TIME = 0x02
    ADDRESS = 0x03
    GATEWAY = 0x04
    DNS = 0x05
    MAC = 0x06
    ENTROPY = 0x07
    DNS_SEARCH = 0x08
    DNS_OPTION = 0x09
    SHM_SIZE = 0x0A
    ROOT_SIZE = 0x0B
    NIC = 0x0D  # one more network card (eth1, eth2, ... in order): MAC, address, prefix
    MOUNT = 0x10
    READONLY = 0x11
    BUILD = 0x18  # a build VM: no main process


class MountKind(enum.IntEnum):
    EXT4 = 1  # a volume's virtio-blk disk, found by its serial
    NINEP = 2  # a host folder shared over virtio-9p, by its mount tag
    TMPFS = 3


class MountFlag(enum.IntFlag):
    NONE = 0
    RDONLY = 0x01
    COPY_UP = 0x02  # an empty volume first gets the image's files at target
    NOEXEC = 0x04
    NOSUID = 0x08
    NODEV = 0x10


_KNOWN = frozenset(int(m) for m in Msg)
_FIELD = struct.Struct(">BI")
_RLIMIT = struct.Struct(">BQQ")  # resource, soft, hard


@dataclass(frozen=True, slots=True)
class Frame:
    """One message of the guest protocol: its type, the process it is about, its bytes."""

    type: Msg
    proc: int
    payload: bytes = b""


def encode(type: Msg, proc: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise InvalidArgument(f"frame payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(len(payload), type, proc) + payload


def decode_header(header: bytes) -> tuple[int, Msg, int]:
    """(payload length, type, proc) of a 9-byte header; Corrupt when invalid."""
    if len(header) != HEADER.size:
        raise Corrupt("guest protocol: truncated frame header")
    length, type_, proc = HEADER.unpack(header)
    if length > MAX_PAYLOAD:
        raise Corrupt(f"guest protocol: frame length {length} exceeds {MAX_PAYLOAD}")
    if type_ not in _KNOWN:
        raise Corrupt(f"guest protocol: unknown frame type 0x{type_:02x}")
    return length, Msg(type_), proc


class Decoder:
    """Turns a byte stream, fed in arbitrary pieces, into frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while len(self._buf) >= HEADER.size:
            length, type_, proc = decode_header(bytes(self._buf[: HEADER.size]))
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            frames.append(Frame(type_, proc, bytes(self._buf[HEADER.size : end])))
            del self._buf[:end]
        return frames

    def close(self) -> None:
        """End of stream: anything left over is a cut frame."""
        if self._buf:
            raise Corrupt(f"guest protocol: stream ended inside a frame ({len(self._buf)} bytes)")


def _field(tag: Field | ConfigField, value: bytes) -> bytes:
    return _FIELD.pack(tag, len(value)) + value


def _text(tag: Field, value: str) -> bytes:
    if "\0" in value:
        raise InvalidArgument(f"NUL byte in {tag.name.lower()} {value!r}")
    return _field(tag, value.encode())


def encode_run(spec: ProcessSpec) -> bytes:
    """A RUN payload: the process's fields, in the order the document gives."""
    if not spec.args:
        raise InvalidArgument("no command to run: the image has no Cmd or Entrypoint")
    parts = [_text(Field.ARG, a) for a in spec.args]
    parts += [_text(Field.ENV, e) for e in spec.env]
    parts += [_text(Field.CWD, spec.cwd), _text(Field.USER, spec.user)]
    if spec.tty is not None:
        parts.append(_field(Field.TTY, struct.pack(">HH", *spec.tty)))
    if spec.stdin:
        parts.append(_field(Field.STDIN, b""))
    if spec.tar is not None:
        op, flags, path = spec.tar
        if "\0" in path:
            raise InvalidArgument(f"NUL byte in path {path!r}")
        parts.append(_field(Field.TAR, bytes([op, flags]) + path.encode()))
    for name, soft, hard in spec.rlimits:
        parts.append(_field(Field.RLIMIT, _RLIMIT.pack(RESOURCES[name], soft, hard)))
    if spec.groups:
        parts.append(_text(Field.GROUPS, ",".join(spec.groups)))
    if spec.root is not None:
        if any("\0" in folder for folder in spec.root):
            raise InvalidArgument(f"NUL byte in a build folder {spec.root!r}")
        parts.append(_field(Field.ROOT, b"".join(f.encode() + b"\0" for f in spec.root)))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class GuestMount:
    """One MOUNT field: what the agent mounts on ``target`` before READY."""

    kind: MountKind
    target: str
    source: str = ""  # the disk's serial (EXT4) or the share's tag (NINEP)
    file: str = ""  # NINEP: bind this file of the share on target
    flags: MountFlag = MountFlag.NONE
    mode: int = 0  # TMPFS
    size: int = 0  # TMPFS, bytes; 0 = the guest kernel's default

    def encode(self) -> bytes:
        strings = (self.source, self.target, self.file)
        if any("\0" in text for text in strings):
            raise InvalidArgument(f"NUL byte in the mount on {self.target!r}")
        head = struct.pack(">BBHQ", self.kind, self.flags, self.mode, self.size)
        return _field(ConfigField.MOUNT, head + b"\0".join(t.encode() for t in strings))


@dataclass(frozen=True, slots=True)
class GuestConfig:
    """Per-container settings, sent in CONFIG before anything else the agent acts on."""

    hostname: str | None = None
    time_ns: int | None = None  # the host's wall clock, nanoseconds since the epoch
    address: str | None = None  # eth0's A.B.C.D/N; None = no network but lo
    gateway: str | None = None
    dns: Sequence[str] = ()
    mounts: Sequence[GuestMount] = ()  # parents first
    readonly: bool = False  # the container's root is read-only
    mac: str | None = None  # eth0's hardware address, aa:bb:cc:dd:ee:ff
    # The cards after eth0, in order: (MAC, A.B.C.D/N), no gateway (as Docker,
    # the default route goes through the first network only).
    nics: Sequence[tuple[str, str]] = ()
    entropy: bytes | None = None  # fresh host bytes for the guest's RNG
    dns_search: Sequence[str] = ()  # resolv.conf's search list
    dns_options: Sequence[str] = ()  # resolv.conf's options, NAME[:VALUE]
    shm_size: int | None = None  # bytes of /dev/shm; None = the guest kernel's default
    root_size: int | None = None  # the root disk's bytes, for a clone (see vm/template.py)
    build: bool = False  # a build VM: every RUN is an extra process, up until SHUTDOWN

    def encode(self) -> bytes:
        parts = []
        if self.hostname is not None:
            parts.append(_field(ConfigField.HOSTNAME, self.hostname.encode()))
        if self.time_ns is not None:
            parts.append(_field(ConfigField.TIME, struct.pack(">Q", self.time_ns)))
        if self.address is not None:
            parts.append(_field(ConfigField.ADDRESS, _interface(self.address)))
        if self.gateway is not None:
            gateway = _ipv4(ipaddress.IPv4Address, self.gateway).packed
            parts.append(_field(ConfigField.GATEWAY, gateway))
        parts += [_field(ConfigField.DNS, _ipv4(ipaddress.IPv4Address, a).packed) for a in self.dns]
        parts += [m.encode() for m in self.mounts]
        if self.readonly:
            parts.append(_field(ConfigField.READONLY, b""))
        if self.mac is not None:
            parts.append(_field(ConfigField.MAC, _mac(self.mac)))
        for mac, address in self.nics:
            parts.append(_field(ConfigField.NIC, _mac(mac) + _interface(address)))
        if self.entropy is not None:
            parts.append(_field(ConfigField.ENTROPY, self.entropy))
        parts += [_field(ConfigField.DNS_SEARCH, d.encode()) for d in self.dns_search]
        parts += [_field(ConfigField.DNS_OPTION, o.encode()) for o in self.dns_options]
        if self.shm_size is not None:
            parts.append(_field(ConfigField.SHM_SIZE, struct.pack(">Q", self.shm_size)))
        if self.root_size is not None:
            parts.append(_field(ConfigField.ROOT_SIZE, struct.pack(">Q", self.root_size)))
        if self.build:
            parts.append(_field(ConfigField.BUILD, b""))
        return b"".join(parts)


def _mac(text: str) -> bytes:
    try:
        value = bytes.fromhex(text.replace(":", ""))
    except ValueError:
        value = b""
    if len(value) != 6 or value[0] & 1:
        raise InvalidArgument(f"not a unicast MAC address: {text!r}")
    return value


def _interface(text: str) -> bytes:
    """A.B.C.D/N as ADDRESS and NIC carry it: 4 bytes, then the prefix length."""
    iface = _ipv4(ipaddress.IPv4Interface, text)
    return iface.ip.packed + bytes([iface.network.prefixlen])


def _ipv4(kind: type[ipaddress.IPv4Address | ipaddress.IPv4Interface], text: str) -> Any:
    try:
        return kind(text)
    except ValueError as e:
        raise InvalidArgument(f"not an IPv4 address: {text!r}") from e


def guest_text(payload: bytes) -> str:
    """Text from the guest, safe to show: decoded, control characters and escapes removed."""
    return printable(payload.decode(errors="replace"))


def exit_status(payload: bytes) -> tuple[bool, int]:
    """(killed by a signal?, code) from an EXIT payload."""
    if len(payload) != 5:
        raise Corrupt(f"guest protocol: EXIT payload of {len(payload)} bytes, expected 5")
    how, code = struct.unpack(">Bi", payload)
    if how not in (0, 1):
        raise Corrupt(f"guest protocol: EXIT with unknown kind {how}")
    return how == 1, code


def resize_payload(rows: int, columns: int) -> bytes:
    return struct.pack(">HH", rows, columns)
