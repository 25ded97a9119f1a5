"""Finding the guest kernel and agent; the initramfs made from the agent."""

import pytest

from cocoon.errors import NotFound
from cocoon.vm import artifacts


def test_own_cache_first_then_the_system_one(tmp_path, monkeypatch):
    own, system = tmp_path / "own", tmp_path / "system"
    monkeypatch.setenv("COCOON_CACHE_DIR", str(own))
    monkeypatch.delenv("COCOON_KERNEL", raising=False)
    monkeypatch.setattr(artifacts, "SYSTEM_CACHE", system)
    with pytest.raises(NotFound, match=r"run \./setup\.sh"):
        artifacts.kernel_path()
    (system / "kernel/current").mkdir(parents=True)
    (system / "kernel/current/vmlinux").write_bytes(b"k")
    assert artifacts.kernel_path() == system / "kernel/current/vmlinux"
    (own / "kernel/current").mkdir(parents=True)
    (own / "kernel/current/vmlinux").write_bytes(b"k")
    assert artifacts.kernel_path() == own / "kernel/current/vmlinux"


def test_env_override_is_exclusive(tmp_path, monkeypatch):
    monkeypatch.setenv("COCOON_AGENT", str(tmp_path / "missing"))
    with pytest.raises(NotFound, match="COCOON_AGENT"):
        artifacts.agent_path()


def test_initramfs_holds_the_agent_as_init():
    cpio = artifacts.initramfs_bytes(b"\x7fELF-agent")
    assert cpio.startswith(b"070701")
    assert b"init\0" in cpio and b"\x7fELF-agent" in cpio
    assert b"dev/console\0" in cpio and cpio.rstrip(b"\0").endswith(b"TRAILER!!!")
