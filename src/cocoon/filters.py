"""``--filter KEY=VALUE`` as Docker takes it: values of one key are alternatives, keys all apply.

    {"label": ["a", "b=1"], "status": ["running", "exited"]}
    = (has label a AND label b is 1) AND (running OR exited)

Labels are the exception, as in Docker: every label filter must hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from cocoon.errors import InvalidArgument

Filters = Mapping[str, Sequence[str]]


def parse(items: Iterable[str], known: Iterable[str]) -> dict[str, list[str]]:
    """``["label=a", "status=running"]`` (the CLI's repeated --filter) as a mapping."""
    found: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgument(f"--filter {item!r}: use KEY=VALUE")
        found.setdefault(key.strip().lower(), []).append(value)
    return check(found, known)


def check(filters: Mapping[str, str | Sequence[str]], known: Iterable[str]) -> dict[str, list[str]]:
    """Filters from a caller (one value or a list per key), keys checked against ``known``."""
    allowed = sorted(known)
    result: dict[str, list[str]] = {}
    for key, values in filters.items():
        if key not in allowed:
            raise InvalidArgument(f"invalid filter {key!r} (use {', '.join(allowed)})")
        result[key] = [values] if isinstance(values, str) else [str(v) for v in values]
    return result


def labels_match(labels: Mapping[str, str], wanted: Sequence[str]) -> bool:
    """Every ``key`` or ``key=value`` in ``wanted`` holds for ``labels``."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


__all__ = ["Filters", "check", "labels_match", "parse"]
