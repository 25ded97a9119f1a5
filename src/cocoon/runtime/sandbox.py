"""Kubernetes pod sandboxes: a host process instead of a VM.

A CRI pod's first container (``io.kubernetes.cri.container-type=sandbox``,
the "pause" container) only holds the pod's namespaces, which containerd
already keeps by path (the network namespace is a bind mount), so a VM
would hold nothing. Its pid is a small host process that waits for a
signal, as pause does; the pod's containers are VMs, and the first of them
to start takes the pod's veth (``cocoon.network.netns``).
"""

from __future__ import annotations

import os
import signal

from cocoon.runtime.bundle import Bundle
from cocoon.runtime.spawn import detached

ANNOTATION = "io.kubernetes.cri.container-type"
# What ends pause with 0; anything else kills it (SIGKILL: 128+9 to the caller).
_ENDING = (signal.SIGTERM, signal.SIGINT)


def wanted(bundle: Bundle) -> bool:
    return bundle.annotations.get(ANNOTATION) == "sandbox"


def _hold() -> int:
    for fd in (0, 1, 2):
        os.dup2(os.open(os.devnull, os.O_RDWR), fd)
    signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING)
    signal.sigwait(_ENDING)
    return 0


def spawn() -> int:
    """The holder's pid, a grandchild of the caller (as the VM's process is)."""
    return detached(_hold)


__all__ = ["ANNOTATION", "spawn", "wanted"]
