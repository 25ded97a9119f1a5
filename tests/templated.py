"""Helpers of the memory template tests: cocoon with templates on, and which
template a run or a running VM came from (``--debug`` lines, QEMU's argv)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from procs import vms_of

LONG = 600
CLONED = re.compile(rb"starting from memory template ([0-9a-f]{16})")
BUILT = re.compile(rb"built memory template ([0-9a-f]{16})")


class Templated:
    """The cocoon command with templates on, optionally inside a netns."""

    def __init__(self, cocoon, netns: str | None = None, **env: str) -> None:
        self.cocoon, self.netns = cocoon, netns
        self.env = {**cocoon.env, "COCOON_TEMPLATE": "1", **env}
        if netns is not None:
            self.env.pop("COCOON_NETWORK", None)

    def __call__(self, *args: str, timeout: float = LONG) -> subprocess.CompletedProcess:
        argv = self.cocoon.argv("--debug", *args)
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout)

    def sh(self, *argv: str) -> subprocess.CompletedProcess:
        assert self.netns is not None
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True)


def cloned(result: subprocess.CompletedProcess) -> str:
    """The template a run was cloned from; fails if it cold-booted."""
    found = CLONED.search(result.stderr)
    assert found, result.stderr.decode()
    return found.group(1).decode()


def running_clones(state: Path) -> dict[str, str]:
    """Container id -> template key of each running VM that was cloned."""
    clones = {}
    for pid in vms_of(state):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            ram = next((a for a in argv if "mem-path=" in a and "share=off" in a), None)
            disk = next((a for a in argv if "disk.qcow2" in a), "")
            if ram and "-incoming" in argv:
                key = re.search(r"templates/([0-9a-f]{16})/ram", ram)
                cid = re.search(r"containers/([0-9a-f]{64})/", disk)
                if key and cid:
                    clones[cid.group(1)] = key.group(1)
    return clones


@pytest.fixture
def tc(cocoon):
    yield Templated(cocoon)
    ids = cocoon("ls", "-a", "-q").stdout.decode().split()
    if ids:
        cocoon("rm", "-f", *ids, timeout=LONG)


def refusing_qemu(tc: Templated, folder: Path, pattern: str, said: str) -> Templated:
    """``tc`` with a QEMU that fails, saying ``said``, when its argv matches
    the shell ``pattern`` (a template QEMU cannot build), and is QEMU otherwise."""
    qemu = shutil.which("qemu-system-x86_64")
    fake = folder / "bin" / "qemu-system-x86_64"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\ncase "$*" in {pattern}) echo "{said}" >&2; exit 1;; esac\nexec {qemu} "$@"\n'
    )
    fake.chmod(0o755)
    return Templated(tc.cocoon, PATH=f"{fake.parent}:{os.environ['PATH']}")
