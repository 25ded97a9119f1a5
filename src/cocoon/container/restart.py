"""Restart policies (``--restart``), decided by the per-container monitor.

    no                 never (the default)
    on-failure[:N]     when the process exits non-zero; at most N times if N is given
    always             whatever the exit code
    unless-stopped     as always, but not brought back at boot once stopped by hand

A container stopped on purpose (``cocoon stop``, ``kill``, ``rm -f``) is not
restarted. After a host reboot, ``cocoon start --all-restartable`` (run it from
a boot-time unit) starts the ``always`` containers and the ``unless-stopped``
ones nobody stopped: a stop leaves a marker that the next start clears.
Between attempts the monitor waits as Docker does: 100 ms, doubled
after each quick failure, at most a minute, back to 100 ms once a run has
lasted 10 s. ``cocoon stop`` during that wait cancels the restart; so does
removing the container.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cocoon.container import record as records
from cocoon.errors import InvalidArgument

POLICIES = ("no", "on-failure", "always", "unless-stopped")
FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # a run this long starts the back-off again from FIRST_DELAY
CANCEL = "no-restart"  # a marker in the container's folder: the next restart is off


@dataclass(frozen=True, slots=True)
class Policy:
    """A restart policy (``--restart``): its name and, for on-failure, its retry limit."""

    name: str = "no"
    max_retries: int | None = None  # on-failure:N

    def __str__(self) -> str:
        return self.name if self.max_retries is None else f"{self.name}:{self.max_retries}"

    def wants(self, exit_code: int | None, attempts: int) -> bool:
        """Whether to run again after ``attempts`` restarts, given how the last run ended."""
        if self.name in ("always", "unless-stopped"):
            return True
        if self.name != "on-failure" or exit_code == 0:
            return False
        return self.max_retries is None or attempts < self.max_retries


def parse(text: str) -> Policy:
    name, sep, count = text.partition(":")
    if name not in POLICIES:
        raise InvalidArgument(
            f"--restart {text!r}: use no, on-failure[:N], always or unless-stopped"
        )
    if not sep:
        return Policy(name)
    if name != "on-failure" or not count.isdigit():
        raise InvalidArgument(f"--restart {text!r}: only on-failure takes a count, on-failure:N")
    return Policy(name, int(count))


def from_docker(policy: Mapping[str, Any]) -> str | None:
    """Docker's ``{"Name": "on-failure", "MaximumRetryCount": 3}`` (API, docker-py) as
    ``on-failure:3``; None when it names no policy."""
    name, count = policy.get("Name"), policy.get("MaximumRetryCount") or 0
    if not name:
        return None
    if not isinstance(name, str) or not isinstance(count, int) or count < 0:
        raise InvalidArgument(f"restart policy {dict(policy)!r}: a Name and a count, 0 or more")
    return str(parse(f"{name}:{count}" if name == "on-failure" and count else name))


def to_docker(text: str) -> dict[str, Any]:
    """``on-failure:3`` as Docker writes it (``inspect``'s HostConfig)."""
    policy = parse(text)
    return {"Name": policy.name, "MaximumRetryCount": policy.max_retries or 0}


def delay(previous: float | None, ran_for: float) -> float:
    """The wait before the next attempt, from the last wait and how long the run lasted."""
    if previous is None or ran_for >= RESET_AFTER:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def cancel(container_id: str) -> None:
    """Tell a monitor waiting to restart this container not to."""
    (records.folder(container_id) / CANCEL).touch()


def cancelled(container_id: str) -> bool:
    return (records.folder(container_id) / CANCEL).exists()


def clear(container_id: str) -> None:
    (records.folder(container_id) / CANCEL).unlink(missing_ok=True)


__all__ = ["POLICIES", "Policy", "cancel", "cancelled", "clear", "delay", "parse"]
