"""cocoon-runtime as engines call it: a wrapper script with the test's agent and state.

Engines do not pass their environment through to the runtime (conmon drops
it), so the wrapper sets what the test needs and puts ``--root`` first: a
``--root`` the engine adds after it (containerd does) wins.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from procs import pids_where, vms_of

GUEST_AGENT = Path(__file__).resolve().parents[1] / "guest" / "build" / "cocoon-agent"


@dataclass
class Runtime:
    path: Path  # the executable engines are given
    root: Path  # its state folder when the engine names none

    def containers(self, root: Path | None = None) -> list[str]:
        """The ids the runtime keeps state for under ``root`` (its own by default)."""
        root = root or self.root
        return (
            sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
            if root.exists()
            else []
        )

    def leftovers(self) -> list[int]:
        """VMs and per-container processes of this runtime that still run."""

        def shim(proc: Path) -> bool:
            cmdline = (proc / "cmdline").read_bytes()
            return b"cocoon.runtime" in cmdline and str(self.root).encode() in cmdline

        # Under the root: containerd's calls use <root>/<namespace> as theirs.
        return vms_of(self.root) + pids_where(shim)


@pytest.fixture
def runtime(cocoon) -> Iterator[Runtime]:
    # Short: the runtime's sockets live under its root.
    folder = Path(tempfile.mkdtemp(prefix="ccrt-", dir="/tmp"))
    path = folder / "cocoon-runtime"
    path.write_text(
        "#!/bin/sh\n"
        f"export COCOON_AGENT={GUEST_AGENT}\n"
        f'exec {sys.executable} -m cocoon.runtime.main --root {folder / "rt"} "$@"\n'
    )
    path.chmod(0o755)
    rt = Runtime(path, folder / "rt")
    try:
        yield rt
    finally:
        deadline = time.monotonic() + 10
        while (left := rt.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        assert not left, f"runtime VMs or processes left running: {left}"
