"""A process's resource limits and extra groups, checked once, wherever they come from.

Docker's ``--ulimit NAME=SOFT[:HARD]`` and ``--group-add``, and an OCI
``process.rlimits``/``user.additionalGids``, become the same plain values a
``ProcessSpec`` keeps: ``(name, soft, hard)`` with Docker's names, and group
names or numbers the agent resolves in the container's ``/etc/group``.
"""

from __future__ import annotations

from cocoon.errors import InvalidArgument

# Docker's names and Linux's RLIMIT_* numbers (asm-generic/resource.h): the
# resource byte of the agent's RLIMIT field.
RESOURCES = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
    "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12,
    "nice": 13, "rtprio": 14, "rttime": 15,
}  # fmt: skip
UNLIMITED = (1 << 64) - 1  # RLIM_INFINITY on the wire

Rlimit = tuple[str, int, int]


def _value(text: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f"ulimit {spec!r}: {text!r} is not a number") from None
    if value == -1:  # Docker's way to say unlimited
        return UNLIMITED
    if not 0 <= value <= UNLIMITED:
        raise InvalidArgument(f"ulimit {spec!r}: {text} is out of range")
    return value


def rlimit(name: str, soft: int, hard: int, spec: str = "") -> Rlimit:
    spec = spec or f"{name}={soft}:{hard}"
    if name not in RESOURCES:
        raise InvalidArgument(f"ulimit {spec!r}: unknown limit {name!r} (known: "
                              f"{', '.join(sorted(RESOURCES))})")  # fmt: skip
    if soft > hard:
        raise InvalidArgument(f"ulimit {spec!r}: the soft limit exceeds the hard limit")
    return name, soft, hard


def parse_ulimit(spec: str) -> Rlimit:
    """``NAME=SOFT[:HARD]`` as ``docker run --ulimit`` takes it (HARD defaults to SOFT)."""
    name, equals, values = spec.partition("=")
    if not equals or not values:
        raise InvalidArgument(f"ulimit {spec!r}: use NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    soft, _, hard = values.partition(":")
    low = _value(soft, spec)
    return rlimit(name, low, _value(hard, spec) if hard else low, spec)


def rlimits(items: list[Rlimit]) -> tuple[Rlimit, ...]:
    """One limit per resource: a later one for the same resource wins, as in Docker."""
    return tuple({name: (name, soft, hard) for name, soft, hard in items}.values())


def group(value: str | int) -> str:
    """A group name or number for ``--group-add``: what the agent can look up."""
    text = str(value)
    if not text or any(c in text for c in ",:\n\0"):
        raise InvalidArgument(f"group {text!r}: a group name or number")
    return text


__all__ = ["RESOURCES", "UNLIMITED", "Rlimit", "group", "parse_ulimit", "rlimit", "rlimits"]
