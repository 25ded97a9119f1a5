"""Choosing the accelerator, with QEMU replaced at the process boundary.

The probe is a QEMU process, so a stand-in script on PATH plays each outcome
a host can give: a KVM guest that reaches the agent, QEMU refusing KVM, and
a guest that never reaches the agent although QEMU exits 0 (what a standard
kernel does under a paravirtual KVM). It logs every start, which shows when
a verdict came from the cache. Each choice runs in its own `cocoon` process,
as a user's would, so the cache is read back from disk, not from memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cocoon.errors import InvalidArgument
from cocoon.vm import accel

# The mode is read from a file, not written into the script: rewriting the
# script would change QEMU's mtime, which is part of the cached verdict's key.
FAKE_QEMU = """#!/bin/sh
echo "$*" >> {root}/starts
case "$(cat {root}/mode)" in
  ok) echo "cocoon-agent: cocoon-probe-ok" ;;
  refused) echo "qemu-system-x86_64: kvm: failed to set MSR 0x10a" >&2; exit 1 ;;
  silent) echo "Probing EDD (edd=off to disable)... ok" ;;
esac
"""

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]


class Host:
    """A fake QEMU, fake kernel and agent, and a cache dir of the test's own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bin").mkdir()
        qemu = root / "bin" / "qemu-system-x86_64"
        qemu.write_text(FAKE_QEMU.format(root=root))
        qemu.chmod(0o755)
        (root / "vmlinux").write_bytes(b"not a kernel")
        (root / "agent").write_bytes(b"not an agent")
        (root / "starts").write_text("")
        self.mode("silent")
        self.env = dict(
            os.environ,
            PATH=f"{root / 'bin'}:{os.environ['PATH']}",
            COCOON_KERNEL=str(root / "vmlinux"),
            COCOON_AGENT=str(root / "agent"),
            COCOON_CACHE_DIR=str(root / "cache"),
        )
        # Every user may read and write it, for the runs as nobody.
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o777)

    def mode(self, mode: str) -> None:
        (self.root / "mode").write_text(mode)

    def starts(self) -> list[str]:
        return (self.root / "starts").read_text().splitlines()

    def info(self, *flags: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        argv = [*prefix, sys.executable, "-m", "cocoon.cli.main", "--debug", "system", "info",
                *flags, "--format", "json"]  # fmt: skip
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60)

    def choice(self, *flags: str) -> str:
        result = self.info(*flags)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["accelerator"]


@pytest.fixture
def host() -> Iterator[Host]:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("needs an openable /dev/kvm: the probe only runs where KVM may work")
    # Not pytest's tmp_path: nobody must reach it too.
    root = Path(tempfile.mkdtemp(prefix="cocoon-accel-"))
    try:
        yield Host(root)
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)


def test_auto_uses_kvm_when_a_probe_boot_reaches_the_agent(host):
    host.mode("ok")
    assert host.choice("--accel", "auto") == "kvm"
    (probe,) = host.starts()
    assert "-accel kvm" in probe and "cocoon.probe=1" in probe


def test_a_guest_that_never_reaches_the_agent_means_tcg(host):
    """A paravirtual KVM: QEMU starts, the standard kernel hangs or dies, QEMU exits 0."""
    result = host.info("--accel", "auto")
    assert json.loads(result.stdout)["accelerator"] == "tcg"
    assert "KVM cannot boot a standard guest here (qemu exited with 0); using TCG" in result.stderr


def test_refused_kvm_means_tcg_with_qemus_reason(host):
    host.mode("refused")
    result = host.info("--accel", "auto")
    assert json.loads(result.stdout)["accelerator"] == "tcg"
    assert "(qemu-system-x86_64: kvm: failed to set MSR 0x10a); using TCG" in result.stderr


def test_the_verdict_is_cached_per_host(host):
    assert host.choice("--accel", "auto") == "tcg"
    host.mode("ok")  # the host did not change, so its verdict holds
    assert host.choice("--accel", "auto") == "tcg"
    assert len(host.starts()) == 1
    (verdict,) = (host.root / "cache" / "accel").glob("*.json")
    assert json.loads(verdict.read_text()) == {"accel": "tcg", "reason": "qemu exited with 0"}


def test_a_changed_host_probes_again(host):
    assert host.choice("--accel", "auto") == "tcg"
    host.mode("ok")
    (host.root / "vmlinux").write_bytes(b"another kernel, another size")
    assert host.choice("--accel", "auto") == "kvm"
    assert len(host.starts()) == 2


@pytest.mark.parametrize("choice", ["kvm", "tcg"])
def test_an_explicit_choice_is_not_probed(host, choice):
    assert host.choice("--accel", choice) == choice
    assert host.starts() == []


def test_unknown_accelerator_is_refused():
    with pytest.raises(InvalidArgument, match="unknown accelerator 'xen'"):
        accel.choose("xen", Path("/nonexistent"), Path("/nonexistent"))


def test_without_access_to_dev_kvm_auto_is_tcg_unprobed(host):
    """An unprivileged user who may not open /dev/kvm gets TCG without a probe."""
    if os.stat("/dev/kvm").st_mode & 0o006:
        pytest.skip("everyone may open /dev/kvm on this host")
    result = host.info("--accel", "auto", prefix=tuple(NOBODY))
    assert json.loads(result.stdout)["accelerator"] == "tcg", result.stderr
    assert "no usable /dev/kvm; using TCG" in result.stderr
    assert host.starts() == []
    refused = host.info("--accel", "kvm", prefix=tuple(NOBODY))
    assert refused.returncode == 125
    assert refused.stderr.splitlines()[-1] == (
        "cocoon: --accel kvm: /dev/kvm is missing or not accessible"
    )
