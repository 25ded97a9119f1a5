"""Health checks (``--health-*`` and the image's HEALTHCHECK), probed by the container's monitor.

The monitor runs the check as an exec through the agent every ``interval``;
a run longer than ``timeout`` is killed and counts as a failure. The status
is ``starting`` until the first success, ``healthy`` after one, and
``unhealthy`` after ``retries`` failures in a row (failures within
``start_period`` of the start do not count). It is kept beside the control
socket (``health.json``), so ``ls`` and ``inspect`` read it without asking
the monitor, and it goes with the run dir when the VM stops. Durations are
Go's (``30s``, ``1m30s``, ``500ms``), as Docker takes them; an image gives
them in nanoseconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cocoon.container.record import sock_dir
from cocoon.errors import InvalidArgument

STATE = "health.json"
KEEP_RESULTS = 5  # Docker keeps the last five probes' results
MAX_OUTPUT = 4096
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")


def parse_duration(text: str | float | int, what: str) -> float:
    """``1m30s``, ``500ms`` or a number of seconds, as seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    elif isinstance(text, str) and text and _DURATION.sub("", text) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    else:
        raise InvalidArgument(f"{what} {text!r}: use a duration such as 30s, 1m30s or 500ms")
    if seconds < 0:
        raise InvalidArgument(f"{what} {text!r} is negative")
    return seconds


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A health check's command and timing, as ``--health-*`` or the image set them."""

    test: list[str]  # ["CMD-SHELL", "cmd"] or ["CMD", "arg0", ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0

    def argv(self) -> list[str]:
        kind, *rest = self.test
        return ["/bin/sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HealthCheck:
        return cls(**data)


def _from_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """An image config's ``Healthcheck`` (hostile: checked like any input), in seconds."""
    found: dict[str, Any] = {}
    if "Test" in image:
        found["test"] = image["Test"]
    for key, name in (("Interval", "interval"), ("Timeout", "timeout"),
                      ("StartPeriod", "start_period")):  # fmt: skip
        if isinstance(image.get(key), int) and image[key] > 0:
            found[name] = image[key] / 1e9  # nanoseconds; 0 means "the default"
    if isinstance(image.get("Retries"), int) and image["Retries"] > 0:
        found["retries"] = image["Retries"]
    return found


def configure(
    wanted: Mapping[str, Any] | None, image: Mapping[str, Any] | None
) -> HealthCheck | None:
    """The check a container gets: the caller's fields over the image's; None for none.

    ``wanted`` has docker-py's keys: ``test`` (a list as in an image, or one
    shell command), ``interval``, ``timeout``, ``start_period`` (durations)
    and ``retries``. ``{"test": ["NONE"]}`` turns the image's check off.
    """
    fields = {**_from_image(image or {}), **dict(wanted or {})}
    unknown = fields.keys() - {"test", "interval", "timeout", "retries", "start_period"}
    if unknown:
        raise InvalidArgument(f"unknown health check field {sorted(unknown)[0]!r}")
    test = fields.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not test or test == ["NONE"]:
        return None
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise InvalidArgument("health check test must be a command")
    if (
        test[0] not in ("CMD", "CMD-SHELL")
        or len(test) < 2
        or (test[0] == "CMD-SHELL" and len(test) != 2)
    ):
        raise InvalidArgument(f"health check test {test!r}: use CMD-SHELL CMD or CMD ARG...")
    retries = fields.get("retries", 3)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 1:
        raise InvalidArgument(f"health check retries {retries!r}: use a whole number, 1 or more")
    check = HealthCheck(
        test=list(test),
        interval=parse_duration(fields.get("interval", 30.0), "health check interval"),
        timeout=parse_duration(fields.get("timeout", 30.0), "health check timeout"),
        retries=retries,
        start_period=parse_duration(fields.get("start_period", 0.0), "health check start period"),
    )
    if check.interval <= 0 or check.timeout <= 0:
        raise InvalidArgument("health check interval and timeout must be above zero")
    return check


def read(container_id: str) -> dict[str, Any] | None:
    """The last status the monitor wrote (Docker's State.Health), or None."""
    try:
        data = json.loads((sock_dir(container_id) / STATE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


__all__ = ["STATE", "HealthCheck", "configure", "parse_duration", "read"]
