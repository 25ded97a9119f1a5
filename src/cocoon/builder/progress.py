"""What a build shows while it runs: each step, cache hits, RUN output.

``Plain`` writes lines (``--progress plain``, and ``auto`` off a terminal);
``Terminal`` (``auto`` on one) the same lines, steps in bold and cache hits
in green: RUN output is a stream, shown as it comes, so there is no redrawn
view. ``Quiet`` (``-q``) shows nothing. All
keep the last lines of output, which a failed RUN's error report shows.
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


class Terminal(Plain):
    def __init__(self, out: TextIO) -> None:
        from rich.console import Console

        super().__init__(out)
        self.console = Console(file=out, highlight=False, soft_wrap=True)

    def step(self, label: str, text: str, *, cached: bool = False) -> None:
        from rich.text import Text

        Quiet.step(self, label, text)
        line = Text()
        line.append(f"{label} ", style="bold cyan")
        line.append(printable(text), style="bold")
        if cached:
            line.append("  cached", style="green")
        self.console.print(line)


Progress = Quiet  # the interface: Quiet shows nothing, Plain shows it all

__all__ = ["Plain", "Progress", "Quiet", "Terminal"]
