"""A container's network, over its life: settings at create, devices at boot, release at removal.

Three modes, recorded in the container's config under ``network``:

- ``bridge``: a cocoon network (default ``cocoon0``); the container leases an
  address, its VM gets a TAP on the network's bridge, published ports are
  relayed by the owner process (``ports.Forwarder``). Needs CAP_NET_ADMIN.
- ``user``: QEMU's user-mode (slirp) stack; no bridge, no privileges, the
  guest is 10.0.2.15 behind QEMU's NAT and published ports are ``hostfwd``.
- ``none``: only loopback.

Without ``--network`` the default is ``cocoon0`` when cocoon may create
bridges, else ``user`` (``COCOON_NETWORK`` overrides the default).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cocoon.container import record as records
from cocoon.errors import CocoonError, InvalidArgument, Unsupported
from cocoon.log import Logger
from cocoon.network import ipam, nat, netdev, ports

if TYPE_CHECKING:
    from cocoon.agent.channel import Channel

log = Logger(__name__)

USER_NET = "10.0.2.0/24"
USER_IP, USER_GATEWAY, USER_DNS = "10.0.2.15", "10.0.2.2", "10.0.2.3"
USER_MAC = "52:54:00:12:34:56"


def default_network() -> str:
    if value := os.environ.get("COCOON_NETWORK"):
        return value
    return ipam.DEFAULT if netdev.can_admin() else "user"


def _host_dns() -> list[str]:
    """The host's IPv4 name servers, except loopback ones a VM cannot reach."""
    servers = []
    with contextlib.suppress(OSError):
        for line in Path("/etc/resolv.conf").read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    address = ipaddress.IPv4Address(words[1])
                    if not address.is_loopback:
                        servers.append(str(address))
    return servers


def _check_ipv4(values: Sequence[str], flag: str) -> list[str]:
    for value in values:
        try:
            ipaddress.IPv4Address(value)
        except ValueError as e:
            raise InvalidArgument(f"{flag} {value}: not an IPv4 address") from e
    return list(values)


def parse_add_host(text: str) -> tuple[str, str]:
    name, sep, address = text.partition(":")
    if not sep or not name or any(c.isspace() for c in name):
        raise InvalidArgument(f"--add-host {text}: expected NAME:IP")
    _check_ipv4([address], "--add-host")
    return name, address


def configure(
    container_id: str,
    container_name: str,
    *,
    network: str | None = None,
    ip: str | None = None,
    dns: Sequence[str] = (),
    add_hosts: Sequence[str] = (),
    publish: Sequence[str] = (),
) -> dict[str, Any]:
    """A new container's network settings (leasing its address on a bridge network)."""
    name = network or default_network()
    specs = [ports.parse(p) for p in publish]
    settings: dict[str, Any] = {
        "mode": name if name in ("none", "user") else "bridge",
        "dns": _check_ipv4(dns, "--dns"),
        "add_hosts": [":".join(parse_add_host(h)) for h in add_hosts],
        "ports": [vars_of(s) for s in specs],
    }
    if ip is not None and settings["mode"] != "bridge":
        raise InvalidArgument(f"--ip needs a bridge network, not --network {name}")
    if settings["mode"] == "none":
        if specs:
            raise InvalidArgument("-p needs a network; --network none has only loopback")
        return settings
    if settings["mode"] == "user":
        settings.update(ip=USER_IP, prefix=24, gateway=USER_GATEWAY, mac=USER_MAC)
        settings["dns"] = settings["dns"] or [USER_DNS]
        return settings
    if not netdev.can_admin():
        raise Unsupported(f"network {name} needs CAP_NET_ADMIN (root); use --network user")
    net, address = ipam.allocate(
        name, container_id, container_name, ip, exists=lambda i: records.folder(i).exists()
    )
    a, b, c, d = ipaddress.IPv4Address(address).packed
    settings.update(
        network=net.name,
        ip=address,
        prefix=net.prefix,
        gateway=net.gateway,
        mac=f"02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}",
    )
    settings["dns"] = settings["dns"] or _host_dns()
    return settings


def vars_of(spec: ports.PortSpec) -> dict[str, Any]:
    return {"host_ip": spec.host_ip, "host_port": spec.host_port,
            "container_port": spec.container_port, "protocol": spec.protocol}  # fmt: skip


def release(container_id: str) -> None:
    """Give up the container's address: it is being removed."""
    ipam.release(container_id)


def hosts_file(rec: records.Record) -> str:
    """The container's /etc/hosts: itself, its network's other containers, --add-host."""
    settings = rec.config.get("network") or {}
    hostname = rec.config.get("hostname") or rec.id[:12]
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    names = " ".join(dict.fromkeys([hostname, rec.name]))
    lines.append(f"{settings['ip']}\t{names}" if settings.get("ip") else f"127.0.1.1\t{names}")
    if settings.get("network"):
        for ip, lease in sorted(ipam.peers(settings["network"]).items()):
            if lease["id"] != rec.id:
                lines.append(f"{ip}\t{lease['name']}")
    for entry in settings.get("add_hosts", []):
        name, _, address = entry.partition(":")
        lines.append(f"{address}\t{name}")
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class Plug:
    """What one boot of the VM needs for its network, and what to undo after."""

    netdev: str | None = None
    mac: str | None = None
    guest: dict[str, Any] = field(default_factory=dict)  # address, gateway, dns of GuestConfig
    fds: list[int] = field(default_factory=list)
    forwarder: ports.Forwarder | None = None

    def started(self) -> None:
        """QEMU holds the TAP now; ours would keep it alive after QEMU exits."""
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def close(self) -> None:
        self.started()
        if self.forwarder is not None:
            self.forwarder.close()


def _ensure_bridge(net: ipam.Network) -> None:
    with ipam.locked() as nets:
        if netdev.ensure_bridge(net.bridge, net.gateway, net.prefix):
            log.debug("created bridge %s for network %s (%s)", net.bridge, net.name, net.subnet)
            nat.apply([(n.bridge, n.subnet) for n in nets.values() if netdev.exists(n.bridge)])


def plug(rec: records.Record) -> Plug:
    """Devices and forwarders for booting the container's VM (before QEMU starts)."""
    settings = rec.config.get("network") or {"mode": "none"}
    mode = settings["mode"]
    log.debug("network mode %s for %s", mode, rec.name)
    result = Plug()
    if mode == "none":
        return result
    result.guest = {
        "address": f"{settings['ip']}/{settings['prefix']}",
        "gateway": settings["gateway"],
        "dns": settings["dns"],
    }
    result.mac = settings["mac"]
    specs = [ports.PortSpec(**p) for p in settings["ports"]]
    if mode == "user":
        forwards = "".join(
            f",hostfwd={s.protocol}:{s.host_ip}:{s.host_port}-:{s.container_port}" for s in specs
        )
        result.netdev = f"user,id=n0,net={USER_NET}{forwards}"
        return result
    _ensure_bridge(ipam.get(settings["network"]))
    try:
        result.forwarder = ports.Forwarder(specs, settings["ip"]) if specs else None
        result.fds.append(netdev.open_tap(f"cc{rec.id[:12]}", ipam.get(settings["network"]).bridge))
    except BaseException:
        result.close()
        raise
    result.netdev = f"tap,id=n0,fd={result.fds[0]}"
    return result


def send_hosts(rec: records.Record, channel: Channel) -> None:
    """The container's /etc/hosts, for the agent to write before any process runs."""
    from cocoon.agent.protocol import Msg  # once QEMU runs, as in boot()

    channel.send(Msg.HOSTS, 0, hosts_file(rec).encode())


def ready(rec: records.Record, result: Plug, channel: Channel) -> None:
    """The agent is up: open the published ports, tell the peers."""
    if result.forwarder is not None:
        result.forwarder.start()
    network = (rec.config.get("network") or {}).get("network")
    if network:
        _tell_peers(rec, network)


def _tell_peers(rec: records.Record, network: str) -> None:
    """Running peers learn the newcomer's name (those run in the foreground do not)."""
    from cocoon.container import control  # control imports boot, which imports us

    for lease in ipam.peers(network).values():
        if lease["id"] == rec.id:
            continue
        with contextlib.suppress(CocoonError):
            peer = records.load(lease["id"])
            control.request(peer.id, "hosts", content=hosts_file(peer))


def teardown() -> list[str]:
    """Remove the bridges and NAT table cocoon made in this network namespace."""
    removed = []
    for bridge in netdev.cocoon_bridges():
        netdev.delete_bridge(bridge)
        removed.append(bridge)
    nat.apply([])
    return removed


__all__ = [
    "Plug",
    "configure",
    "default_network",
    "hosts_file",
    "plug",
    "ready",
    "release",
    "teardown",
]
