"""Outbound NAT for bridge networks: one nftables table, ``ip cocoon``, that cocoon owns.

The table is rewritten whole (atomically, by one ``nft -f``) from the list of
bridges that exist, so there are no rule handles to track and removing it
removes everything cocoon added. IP forwarding is switched on only when a
bridge network is set up, and back off at teardown if cocoon switched it on
(the marker file remembers that).
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from cocoon import paths, tools
from cocoon.errors import ExternalError

TABLE = "cocoon"
FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def _marker() -> Path:
    return paths.state_dir() / "networks" / "forwarding-enabled"


def _nft(script: str) -> None:
    result = subprocess.run(
        [tools.find("nft"), "-f", "-"], input=script.encode(), capture_output=True
    )
    if result.returncode != 0:
        said = result.stderr.decode(errors="replace").strip().splitlines()
        raise ExternalError(f"nft: {said[-1] if said else 'failed'}")


def apply(networks: list[tuple[str, str]]) -> None:
    """Masquerade traffic leaving each (bridge, subnet) for elsewhere; [] removes the table."""
    rules = "".join(
        f'    ip saddr {subnet} ip daddr != {subnet} masquerade comment "{bridge}"\n'
        for bridge, subnet in networks
    )
    script = f"table ip {TABLE} {{}}\ndelete table ip {TABLE}\n"
    if networks:
        script += (
            f"table ip {TABLE} {{\n  chain postrouting {{\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f"{rules}  }}\n}}\n"
        )
        _enable_forwarding()
    _nft(script)
    if not networks:
        _restore_forwarding()


def _enable_forwarding() -> None:
    if FORWARD.read_text().strip() == "1":
        return
    FORWARD.write_text("1")
    _marker().parent.mkdir(parents=True, exist_ok=True)
    _marker().touch()


def _restore_forwarding() -> None:
    if _marker().exists():
        with contextlib.suppress(OSError):
            FORWARD.write_text("0")
        _marker().unlink(missing_ok=True)


__all__ = ["apply"]
