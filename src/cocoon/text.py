"""Text from outside (a guest, a VMM, a registry) made safe to put on a person's terminal."""

from __future__ import annotations

import re

# Everything a terminal could act on: escape sequences whole, then any other
# C0 control but tab, DEL and C1.
_CONTROL = re.compile(
    r"""
    \x1b \[ [0-?]* [ -/]* [@-~]         # CSI: colours, cursor moves
    | \x1b \] [^\x07\x1b]* (\x07|\x1b\\)?  # OSC: window titles, hyperlinks
    | \x1b .?                           # any other escape
    | [\x00-\x08\x0a-\x1f\x7f-\x9f]
    """,
    re.VERBOSE,
)


def printable(text: str) -> str:
    """``text`` without escape sequences or control characters (tab is kept)."""
    return _CONTROL.sub("", text)


__all__ = ["printable"]
