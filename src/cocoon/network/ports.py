"""Published ports: ``-p [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]``, and the forwarder behind them.

On a bridge network the container's owner process (its monitor, or the
foreground ``cocoon run``) listens on the host port and relays each
connection to the container's address, in user space. DNAT rules would not
catch connections the host makes to itself over loopback (127.0.0.1:8080),
and those are the ones people try first. With user-mode networking QEMU's
``hostfwd`` does the same job.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from dataclasses import dataclass

from cocoon.errors import InvalidArgument, InvalidState

CONNECT_TIMEOUT = 5.0
UDP_IDLE = 60.0  # a UDP "connection" without traffic for this long is dropped


@dataclass(frozen=True, slots=True)
class PortSpec:
    """A published port (``-p``): host address and port to container port."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = "0.0.0.0"

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.protocol}"


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidArgument(f"invalid port {text!r} in -p {spec}")
    return int(text)


def parse(spec: str) -> PortSpec:
    """``[[HOSTIP:]HOSTPORT:]CPORT[/PROTO]``; without a host port, a free one is picked."""
    body, _, protocol = spec.partition("/")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "udp"):
        raise InvalidArgument(f"-p {spec}: protocol must be tcp or udp")
    parts = body.split(":")
    if len(parts) == 1:
        return any_host_port(PortSpec(0, _port(parts[0], spec), protocol))
    if len(parts) == 2:
        host_ip, (host, container) = "0.0.0.0", parts
    elif len(parts) == 3:
        host_ip, host, container = parts
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError as e:
            raise InvalidArgument(f"-p {spec}: {host_ip!r} is not an IPv4 address") from e
    else:
        raise InvalidArgument(f"-p {spec}: expected [[HOSTIP:]HOSTPORT:]CPORT[/tcp|udp]")
    if host == "":  # HOSTIP::CPORT, Docker's way to pick the address but not the port
        return any_host_port(PortSpec(0, _port(container, spec), protocol, host_ip))
    return PortSpec(_port(host, spec), _port(container, spec), protocol, host_ip)


def any_host_port(spec: PortSpec) -> PortSpec:
    """``spec`` on a port the kernel says is free now (Docker's ``-p CPORT`` and ``-P``)."""
    ip = spec.host_ip
    kind = socket.SOCK_STREAM if spec.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((ip, 0))
        except OSError as e:
            raise InvalidState(f"cannot find a free {spec.protocol} port on {ip}: {e}") from e
        port = probe.getsockname()[1]
    return PortSpec(port, spec.container_port, spec.protocol, ip)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class Forwarder:
    """Relays the published ports of one container to ``target`` until closed."""

    def __init__(self, specs: list[PortSpec], target: str) -> None:
        self.target = target
        self.listeners: list[tuple[PortSpec, socket.socket]] = []
        try:
            for spec in specs:
                kind = socket.SOCK_STREAM if spec.protocol == "tcp" else socket.SOCK_DGRAM
                sock = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
                self.listeners.append((spec, sock))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((spec.host_ip, spec.host_port))
                except OSError as e:
                    raise InvalidState(f"cannot publish {spec}: {e.strerror}") from e
                if spec.protocol == "tcp":
                    sock.listen(128)
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        for spec, sock in self.listeners:
            serve = self._tcp if spec.protocol == "tcp" else self._udp
            threading.Thread(target=serve, args=(spec, sock), daemon=True).start()

    def _tcp(self, spec: PortSpec, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._connect, args=(spec, client), daemon=True).start()

    def _connect(self, spec: PortSpec, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection((self.target, spec.container_port), CONNECT_TIMEOUT)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def _udp(self, spec: PortSpec, listener: socket.socket) -> None:
        flows: dict[tuple[str, int], socket.socket] = {}
        lock = threading.Lock()

        def replies(peer: tuple[str, int], upstream: socket.socket) -> None:
            upstream.settimeout(UDP_IDLE)
            with contextlib.suppress(OSError):
                while True:
                    listener.sendto(upstream.recv(65536), peer)
            with lock:
                flows.pop(peer, None)
            upstream.close()

        while True:
            try:
                data, peer = listener.recvfrom(65536)
            except OSError:
                return  # closed
            with lock:
                upstream = flows.get(peer)
                if upstream is None:
                    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    upstream.connect((self.target, spec.container_port))
                    flows[peer] = upstream
                    threading.Thread(target=replies, args=(peer, upstream), daemon=True).start()
            with contextlib.suppress(OSError):
                upstream.send(data)

    def close(self) -> None:
        for _, sock in self.listeners:
            # shutdown wakes a thread blocked in accept(); close alone does not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


__all__ = ["Forwarder", "PortSpec", "parse"]
