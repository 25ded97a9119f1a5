"""What a build shows while it runs: each step, cache hits, RUN output.

``Plain`` writes lines (``--progress plain``, and ``auto`` off a terminal or
on one: RUN output is a stream, so it is shown as it comes); ``Quiet``
(``-q``) shows nothing. Both keep the last lines of output, which a failed
RUN's error report shows.
"""

from __future__ import annotations

import collections
from typing import TextIO

from cocoon.text import printable

TAIL_LINES = 10


class Quiet:
    def __init__(self) -> None:
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._partial = ""

    def step(self, label: str, text: str, *, cached: bool = False) -> None:
        self._tail.clear()
        self._partial = ""

    def output(self, data: bytes) -> None:
        lines = (self._partial + data.decode(errors="replace")).split("\n")
        self._partial = lines.pop()
        self._tail.extend(lines)

    def note(self, text: str) -> None:
        pass

    def tail(self) -> list[str]:
        """The last lines the current step wrote, control characters removed."""
        lines = [*self._tail, *([self._partial] if self._partial else [])]
        return [printable(line) for line in lines[-TAIL_LINES:]]


class Plain(Quiet):
    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out

    def step(self, label: str, text: str, *, cached: bool = False) -> None:
        super().step(label, text)
        self.out.write(f"{label} {printable(text)}{'  (cached)' if cached else ''}\n")
        self.out.flush()

    def output(self, data: bytes) -> None:
        super().output(data)
        text = data.decode(errors="replace")
        self.out.write("\n".join(printable(line) for line in text.split("\n")))
        self.out.flush()

    def note(self, text: str) -> None:
        self.out.write(f"{text}\n")
        self.out.flush()


Progress = Quiet  # the interface: Quiet shows nothing, Plain shows it all

__all__ = ["Plain", "Progress", "Quiet"]
