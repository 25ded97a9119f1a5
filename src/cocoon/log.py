"""Debug messages (``cocoon --debug``) from modules on the way to a VM's start.

Importing ``logging`` costs a few milliseconds of every command. Until
something imports it, nothing can have given it a handler or a level, so a
message would be dropped anyway: these loggers drop it then without importing
logging, and pass it on once something has (``--debug``, or an application
using cocoon as a library). Modules that need logging anyway (the monitor,
the registry client's HTTP stack) use it directly; a container's monitor
writes its own lines instead (``to_stderr``): logging would cost each
running container ~1.3 MiB.
"""

from __future__ import annotations

import sys
import time

_prefix: str | None = None  # set by to_stderr


def to_stderr(prefix: str) -> None:
    """Write info, warnings and errors of every Logger to stderr as
    ``logging.basicConfig(level=INFO)`` would, without importing logging."""
    global _prefix
    _prefix = prefix


class Logger:
    """A stand-in for ``logging.getLogger(name)``, with the methods cocoon uses."""

    def __init__(self, name: str) -> None:
        self.name = name

    def debug(self, message: str, *args: object) -> None:
        logging = sys.modules.get("logging")
        if _prefix is None and logging is not None:
            logging.getLogger(self.name).debug(message, *args)

    def info(self, message: str, *args: object) -> None:
        logging = sys.modules.get("logging")
        if _prefix is not None:
            _write(message % args)
        elif logging is not None:
            logging.getLogger(self.name).info(message, *args)

    def warning(self, message: str, *args: object) -> None:
        """Always shown: through logging once something uses it, else on stderr as
        logging's last-resort handler would print it."""
        self._shown("warning", message, args)

    def error(self, message: str, *args: object) -> None:
        self._shown("error", message, args)

    def _shown(self, level: str, message: str, args: tuple[object, ...]) -> None:
        logging = sys.modules.get("logging")
        if _prefix is not None:
            _write(message % args)
        elif logging is not None:
            getattr(logging.getLogger(self.name), level)(message, *args)
        else:
            sys.stderr.write(f"{message % args}\n")


def _write(text: str) -> None:
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    sys.stderr.write(f"{stamp},{int(now * 1000) % 1000:03d} {_prefix}: {text}\n")
    sys.stderr.flush()
