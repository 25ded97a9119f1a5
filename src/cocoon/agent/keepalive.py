"""Is the guest still there? A watchdog over the agent connection.

A guest whose kernel halted or hung keeps its VMM running with nothing
inside: without a check, a foreground run, ``exec`` and ``wait`` would wait
for it forever. The watchdog pings the agent once the connection has been
quiet for ``PING_AFTER`` seconds and, if nothing at all has come back after
``DEAD_AFTER`` seconds of quiet, calls ``on_silent`` (which stops the VM: the
connection then ends and its reader finds out why in ``Channel.lost``).

Quiet means nothing arrived, not that nothing was read: a host that is slow
to read (its own output blocked) sees data waiting in the socket, and a
guest that has something to say is alive.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Protocol

from cocoon.errors import CocoonError

PING_AFTER = 5.0
# Far above what a live agent needs to answer, even under emulation on a
# loaded host (it answers from its poll loop, ahead of any process output).
DEAD_AFTER = 20.0
SILENT = "the guest stopped responding (its kernel halted or hung); its VM was stopped"


class Watched(Protocol):
    """What the watchdog needs of a connection (``channel.Channel``)."""

    last_seen: float
    lost: str | None

    def has_unread(self) -> bool: ...

    def seen(self) -> None: ...

    def ping(self) -> None: ...


class Watchdog:
    def __init__(
        self,
        channel: Watched,
        on_silent: Callable[[], None],
        *,
        ping_after: float = PING_AFTER,
        dead_after: float = DEAD_AFTER,
    ) -> None:
        self.channel = channel
        self.on_silent = on_silent
        self.ping_after = ping_after
        self.dead_after = dead_after
        self._stop = threading.Event()
        self._held = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cocoon-keepalive", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def hold(self) -> None:
        """Stop watching for now: a paused VM is silent on purpose."""
        self._held.set()

    def release(self) -> None:
        """Watch again, counting the quiet from now."""
        self.channel.seen()
        self._held.clear()

    def _watch(self) -> None:
        tick = min(1.0, self.ping_after / 2)
        while not self._stop.wait(tick):
            if self._held.is_set():
                continue
            if self.channel.has_unread():
                self.channel.seen()
            quiet = time.monotonic() - self.channel.last_seen
            if quiet >= self.dead_after:
                self.channel.lost = SILENT
                self.on_silent()
                return
            if quiet >= self.ping_after:
                with contextlib.suppress(CocoonError):
                    self.channel.ping()


__all__ = ["DEAD_AFTER", "PING_AFTER", "SILENT", "Watchdog", "Watched"]
