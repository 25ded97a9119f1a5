"""Debug messages (``cocoon --debug``) from modules on the way to a VM's start.

Importing ``logging`` costs a few milliseconds of every command. Until
something imports it, nothing can have given it a handler or a level, so a
message would be dropped anyway: these loggers drop it then without importing
logging, and pass it on once something has (``--debug``, or an application
using cocoon as a library). Modules that need logging anyway (the monitor,
the registry client's HTTP stack) use it directly.
"""

from __future__ import annotations

import sys


class Logger:
    """A stand-in for ``logging.getLogger(name)``, with the methods cocoon uses."""

    def __init__(self, name: str) -> None:
        self.name = name

    def debug(self, message: str, *args: object) -> None:
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.getLogger(self.name).debug(message, *args)

    def warning(self, message: str, *args: object) -> None:
        """Always shown: through logging once something uses it, else on stderr as
        logging's last-resort handler would print it."""
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.getLogger(self.name).warning(message, *args)
        else:
            sys.stderr.write(f"{message % args}\n")
