"""A VMM that dies with the process that started it.

Whoever owns a VM (a container's process, a build, ``cocoon run``) can be
killed outright, SIGKILL included, before it could stop its VMM; a VMM left
behind keeps its memory, CPU and disks with nobody to end it. The kernel
can send the VMM SIGKILL itself when its parent dies (``PR_SET_PDEATHSIG``).
It ties that to the thread that forked, not the process: only a VMM started
by the main thread gets it, since a helper thread's end must not end a VM.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def tie() -> Callable[[], None] | None:
    """What the VMM's child runs before exec (``preexec_fn``); None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    import ctypes  # here: of all who import the VM layer, only a VM's owner needs it

    prctl = ctypes.CDLL(None).prctl  # looked up here: the child only calls it
    owner = os.getpid()

    def tied() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # cannot fail with these arguments
        # The owner may have died between fork and prctl: then nobody
        # would ever send the signal, so do not start at all.
        if os.getppid() != owner:
            os._exit(1)

    return tied


__all__ = ["tie"]
