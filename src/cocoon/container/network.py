"""A container's network, over its life: settings at create, devices at boot, release at removal.

The network layer (``cocoon.network``) owns bridges, addresses, NAT and
port relays; this module ties them to one container and tells its peers when
it joins. Three modes, recorded in the container's config under ``network``:

- ``bridge``: a cocoon network (default ``cocoon0``); the container leases an
  address, its VM gets a TAP on the network's bridge, published ports are
  relayed by the owner process (``ports.Forwarder``). Needs CAP_NET_ADMIN.
- ``user``: QEMU's user-mode (slirp) stack; no bridge, no privileges, the
  guest is 10.0.2.15 behind QEMU's NAT and published ports are ``hostfwd``.
- ``none``: only loopback.

Without ``--network`` the default is ``cocoon0`` when cocoon may create
bridges, else ``user`` (``COCOON_NETWORK`` overrides the default).

A bridge-mode container may be on several cocoon networks (``--network A
--network B``, ``connect``): one TAP and one card per network, the first
network's the default route (as Docker), its peers on every network in its
/etc/hosts. Cards are fixed at boot: QEMU's microvm cannot hot-plug one on
virtio-mmio ("Bus 'virtio-mmio-bus.N' does not support hotplugging"), so
``connect`` and ``disconnect`` change what the next boot attaches;
``connect`` is refused while the VM runs, ``disconnect`` cuts the card off.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cocoon.container import record as records
from cocoon.container.config import Attachment, NetworkSettings
from cocoon.errors import (
    AlreadyExists,
    CocoonError,
    InvalidArgument,
    InvalidState,
    NotFound,
    Unsupported,
)
from cocoon.log import Logger
from cocoon.network import ipam, nat, netdev, netns, ports
from cocoon.vm.machine import Forward, Tap, UserNet

if TYPE_CHECKING:
    from cocoon.agent.channel import Channel
    from cocoon.vm.machine import Machine

log = Logger(__name__)

USER_NET = "10.0.2.0/24"
USER_IP, USER_GATEWAY, USER_DNS = "10.0.2.15", "10.0.2.2", "10.0.2.3"
USER_MAC = "52:54:00:12:34:56"
# A card per network: QEMU's microvm has 8 virtio-mmio slots, of which the
# root disk, the agent's port, the RNG and the balloon take 4 (volumes take
# more, which the VM layer checks at boot).
MAX_NETWORKS = 4
RUNNING_CONNECT = "cocoon cannot add a network card to a running VM; stop it first"


def default_network() -> str:
    if value := os.environ.get("COCOON_NETWORK"):
        return value
    return ipam.DEFAULT if netdev.can_admin() else "user"


def nic_count(network: str | None, more: Sequence[str] = ()) -> int:
    """How many network cards a container asking for ``network`` (None: the
    default) and ``more`` networks gets: one each, none for mode none."""
    return 0 if (network or default_network()) == "none" else 1 + len(more)


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


# glibc reads at most 6 search domains; musl and glibc ignore options past a line's worth.
MAX_SEARCH, MAX_OPTIONS = 6, 16
_DNS_OPTION = re.compile(r"^[A-Za-z0-9_-]+(:[A-Za-z0-9_.-]+)?$")


def _check_resolver(search: Sequence[str], options: Sequence[str]) -> None:
    """--dns-search and --dns-option as the guest agent takes them (it refuses the rest)."""
    from cocoon.container.spec import check_hostname

    if len(search) > MAX_SEARCH or len(options) > MAX_OPTIONS:
        raise InvalidArgument(
            f"at most {MAX_SEARCH} --dns-search domains and {MAX_OPTIONS} --dns-option entries"
        )
    for domain in search:
        check_hostname(domain, limit=253, what="--dns-search domain")
    for option in options:
        if len(option) > 63 or not _DNS_OPTION.match(option):
            raise InvalidArgument(
                f"--dns-option {option!r}: expected NAME or NAME:VALUE (e.g. ndots:2, edns0)"
            )


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
    more_networks: Sequence[str] = (),
    ip: str | None = None,
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
    aliases: Sequence[str] = (),
    add_hosts: Sequence[str] = (),
    publish: Sequence[str] = (),
) -> NetworkSettings:
    """A new container's network settings (leasing its address on a bridge network,
    and on each of ``more_networks``, with ``aliases``: more names its peers
    there resolve)."""
    from cocoon.container.spec import check_hostname

    name = network or default_network()
    mode = name if name in ("none", "user") else "bridge"
    _check_resolver(dns_search, dns_options)
    for alias in aliases:
        check_hostname(alias, what="--network-alias")
    if aliases and mode != "bridge":
        raise InvalidArgument(f"--network-alias needs a bridge network, not --network {name}")
    settings = NetworkSettings(
        mode=mode,
        dns=_check_ipv4(dns, "--dns"),
        dns_search=list(dns_search),
        dns_options=list(dns_options),
        add_hosts=[":".join(parse_add_host(h)) for h in add_hosts],
        ports=[ports.parse(p) for p in publish],
    )
    if ip is not None and mode != "bridge":
        raise InvalidArgument(f"--ip needs a bridge network, not --network {name}")
    if more_networks and mode != "bridge":
        raise InvalidArgument(f"--network {name} cannot be combined with other networks")
    if mode == "none":
        if settings.ports:
            raise InvalidArgument("-p needs a network; --network none has only loopback")
        return settings
    if mode == "user":
        settings.ip, settings.prefix, settings.gateway = USER_IP, 24, USER_GATEWAY
        settings.mac = USER_MAC
        settings.dns = settings.dns or [USER_DNS]
        return settings
    if not netdev.can_admin():
        raise Unsupported(f"network {name} needs CAP_NET_ADMIN (root); use --network user")
    _join(settings, _lease(container_id, container_name, name, ip))
    for more in more_networks:
        _check_more(settings, more, container_name)
        _join(settings, _lease(container_id, container_name, more))
    if aliases:
        ipam.set_aliases(container_id, aliases)
    return settings


def _lease(
    container_id: str, container_name: str, network: str, ip: str | None = None
) -> Attachment:
    """An address on ``network`` for the container, and the card's MAC (from it, as Docker)."""
    net, address = ipam.allocate(
        network, container_id, container_name, ip, exists=lambda i: records.folder(i).exists()
    )
    a, b, c, d = ipaddress.IPv4Address(address).packed
    mac = f"02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}"
    return Attachment(net.name, address, net.prefix, net.gateway, mac)


def _join(settings: NetworkSettings, attachment: Attachment) -> None:
    """The first network a container is on is its default route; the others are ``more``."""
    if settings.network is not None:
        settings.more.append(attachment)
        return
    settings.mode, settings.network, settings.ip = "bridge", attachment.network, attachment.ip
    settings.prefix, settings.gateway = attachment.prefix, attachment.gateway
    settings.mac = attachment.mac
    settings.dns = settings.dns or _host_dns()


def _check_more(settings: NetworkSettings, network: str, container: str) -> None:
    """Whether the container may go on ``network`` too."""
    if network in ("none", "user", "host"):
        raise InvalidArgument(f"network {network} cannot be combined with other networks")
    if network in settings.networks():
        raise AlreadyExists(f"container {container} is already on network {network}")
    if len(settings.networks()) >= MAX_NETWORKS:
        raise InvalidArgument(
            f"a cocoon container is on at most {MAX_NETWORKS} networks: QEMU's microvm has "
            "8 device slots and the root disk, agent port, RNG and balloon take 4"
        )


def connect(container_id: str, network: str, aliases: Sequence[str] = ()) -> records.Record:
    """Put a container that is not running on one more network: its next boot
    has a card there (a VM's cards are fixed while it runs)."""
    from cocoon.container.spec import check_hostname
    from cocoon.container.state import State

    for alias in aliases:
        check_hostname(alias, what="--alias")
    ipam.get(network)  # a clear "no such network" before anything else

    def change(rec: records.Record) -> None:
        settings = rec.settings.network
        if settings.mode not in ("bridge", "none"):
            raise InvalidArgument(
                f"container {rec.name} uses the {settings.mode} network, "
                "which cannot be combined with others"
            )
        _check_more(settings, network, rec.name)
        if rec.state == State.RUNNING:
            raise InvalidState(RUNNING_CONNECT)
        _join(settings, _lease(rec.id, rec.name, network))

    rec = records.update(container_id, change)
    if aliases:
        ipam.set_aliases(rec.id, aliases, network=network)
    return rec


def disconnect(container_id: str, network: str) -> records.Record:
    """Take a container off ``network``: its next boot has no card there; off its
    first network, the next one becomes its default route. A running VM keeps
    the card, cut off: its TAP leaves the bridge and the guest sees the carrier
    go (QEMU cannot unplug it), and the peers there forget the container."""
    from cocoon.container import control
    from cocoon.container.state import State

    rec = records.load(container_id)
    mac = _card(rec, network).mac
    running = rec.state == State.RUNNING
    if running:
        control.request(rec.id, "unplug", network=network, mac=mac)
    rec = records.update(container_id, lambda r: _leave(r, network))
    ipam.release(rec.id, network)
    if running:
        _tell_peers(rec, [network])
        with contextlib.suppress(CocoonError):  # it may have stopped meanwhile
            control.request(rec.id, "hosts", content=hosts_file(rec))
    return rec


def _card(rec: records.Record, network: str) -> Attachment:
    """The container's card on ``network``."""
    settings = rec.settings.network
    if settings.network == network:
        assert settings.ip and settings.prefix and settings.gateway and settings.mac
        return Attachment(network, settings.ip, settings.prefix, settings.gateway, settings.mac)
    for attachment in settings.more:
        if attachment.network == network:
            return attachment
    raise NotFound(f"container {rec.name} is not connected to network {network}")


def _leave(rec: records.Record, network: str) -> None:
    _card(rec, network)  # still there
    settings = rec.settings.network
    if settings.network != network:
        settings.more = [a for a in settings.more if a.network != network]
        return
    rest = settings.more
    settings.mode, settings.more = "none", []
    settings.network = settings.ip = settings.prefix = settings.gateway = settings.mac = None
    for attachment in rest:
        _join(settings, attachment)


def unplug(container_id: str, machine: Machine, network: str, mac: str) -> None:
    """In the monitor: the running VM's card ``mac`` leaves ``network`` (its TAP off
    the bridge, its carrier down for the guest)."""
    cards = [machine.spec.net, *machine.spec.more_nets]
    index = next((i for i, card in enumerate(cards) if card and card.mac == mac), None)
    if index is None:
        raise NotFound(f"the running VM has no card on network {network}")
    machine.set_link(index, False)
    netdev.detach(tap_name(container_id, index), ipam.get(network).bridge)


def release(container_id: str) -> None:
    """Give up the container's address: it is being removed."""
    ipam.release(container_id)


def hosts_file(rec: records.Record) -> str:
    """The container's /etc/hosts: itself, the other containers of each of its networks,
    --add-host."""
    config = rec.settings
    settings = config.network
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    names = " ".join(dict.fromkeys([config.hostname, rec.name]))
    lines.append(f"{settings.ip}\t{names}" if settings.ip else f"127.0.1.1\t{names}")
    for network in settings.networks():
        for ip, lease in sorted(ipam.peers(network).items()):
            if lease["id"] != rec.id:
                lines.append(f"{ip}\t{' '.join([lease['name'], *lease.get('aliases', ())])}")
    for entry in settings.add_hosts:
        name, _, address = entry.partition(":")
        lines.append(f"{address}\t{name}")
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class Plug:
    """What one boot of the VM needs for its network, and what to undo after."""

    device: Tap | UserNet | None = None
    more: tuple[Tap, ...] = ()  # a card on each further network
    guest: dict[str, Any] = field(
        default_factory=dict
    )  # GuestConfig's address, gateway, dns*, nics
    forwarder: ports.Forwarder | None = None

    def started(self) -> None:
        """The VMM holds the TAPs now; ours would keep them alive after the VMM exits."""
        if isinstance(self.device, Tap):
            self.device = _closed(self.device)
        self.more = tuple(_closed(tap) for tap in self.more)

    def close(self) -> None:
        self.started()
        if self.forwarder is not None:
            self.forwarder.close()


def _closed(tap: Tap) -> Tap:
    if tap.fd >= 0:
        os.close(tap.fd)
    return Tap(-1, tap.mac)


def _ensure_bridge(net: ipam.Network) -> None:
    with ipam.locked() as nets:
        if netdev.ensure_bridge(net.bridge, net.gateway, net.prefix):
            log.debug("created bridge %s for network %s (%s)", net.bridge, net.name, net.subnet)
            nat.apply([(n.bridge, n.subnet) for n in nets.values() if netdev.exists(n.bridge)])


def plug(rec: records.Record) -> Plug:
    """Devices and forwarders for booting the container's VM (before the VMM starts)."""
    settings = rec.settings.network
    log.debug("network mode %s for %s", settings.mode, rec.name)
    # resolv.conf's search and options even with no network: Docker writes them too.
    result = Plug(guest={"dns_search": settings.dns_search, "dns_options": settings.dns_options})
    if settings.mode == "none" or settings.mac is None:
        return result
    result.guest |= {
        "address": f"{settings.ip}/{settings.prefix}",
        "gateway": settings.gateway,
        "dns": settings.dns,
    }
    if settings.mode == "user":
        forwards = tuple(
            Forward(p.protocol, p.host_ip, p.host_port, p.container_port) for p in settings.ports
        )
        result.device = UserNet(USER_NET, settings.mac, forwards)
        return result
    if settings.mode == "netns":
        assert settings.netns is not None and settings.veth is not None
        tap = netns.open_tap(settings.netns, tap_name(rec.id), settings.veth)
        result.device = Tap(tap, settings.mac)
        return result
    assert settings.network is not None and settings.ip is not None
    result.guest["nics"] = [(a.mac, f"{a.ip}/{a.prefix}") for a in settings.more]
    try:
        result.forwarder = ports.Forwarder(settings.ports, settings.ip) if settings.ports else None
        result.device = _tap(rec.id, 0, settings.network, settings.mac)
        for index, attachment in enumerate(settings.more, 1):
            result.more += (_tap(rec.id, index, attachment.network, attachment.mac),)
    except BaseException:
        result.close()
        raise
    return result


def _tap(container_id: str, index: int, network: str, mac: str) -> Tap:
    net = ipam.get(network)
    _ensure_bridge(net)
    return Tap(netdev.open_tap(tap_name(container_id, index), net.bridge), mac)


def tap_name(container_id: str, index: int = 0) -> str:
    """The host side of a container's network card ``index`` (bridge and netns modes)."""
    return f"cc{container_id[:12]}{index or ''}"


def send_hosts(rec: records.Record, channel: Channel) -> None:
    """The container's /etc/hosts, for the agent to write before any process runs."""
    from cocoon.agent.protocol import Msg  # once QEMU runs, as in boot()

    channel.send(Msg.HOSTS, 0, hosts_file(rec).encode())


def ready(rec: records.Record, result: Plug, channel: Channel) -> None:
    """The agent is up: open the published ports, tell the peers."""
    if result.forwarder is not None:
        result.forwarder.start()
    _tell_peers(rec, rec.settings.network.networks())


def _tell_peers(rec: records.Record, networks: Sequence[str]) -> None:
    """Running peers learn the newcomer's name (those run in the foreground do not)."""
    from cocoon.container import control  # only once a peer is there to tell

    told = {rec.id}
    for network in networks:
        for lease in ipam.peers(network).values():
            if lease["id"] in told:
                continue
            told.add(lease["id"])
            with contextlib.suppress(CocoonError):
                peer = records.load(lease["id"])
                control.request(peer.id, "hosts", content=hosts_file(peer))


__all__ = [
    "MAX_NETWORKS",
    "Plug",
    "configure",
    "connect",
    "default_network",
    "disconnect",
    "hosts_file",
    "plug",
    "ready",
    "release",
    "tap_name",
    "unplug",
]
