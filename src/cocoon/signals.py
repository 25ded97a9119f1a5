"""Signals by name or number, as users and engines write them."""

from __future__ import annotations

import signal

from cocoon.errors import InvalidArgument


def parse_signal(text: str | int) -> int:
    """``TERM``, ``SIGTERM``, ``15`` -> 15."""
    if isinstance(text, int) or text.isdigit():
        number = int(text)
        if not 0 < number < signal.NSIG:
            raise InvalidArgument(f"invalid signal {text}")
        return number
    name = text.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError as e:
        raise InvalidArgument(f"invalid signal {text!r}") from e


__all__ = ["parse_signal"]
