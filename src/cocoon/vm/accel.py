"""Which accelerator to run VMs with: KVM where it boots a standard guest, else TCG.

``/dev/kvm`` existing is not enough: a paravirtual KVM (PVM) accepts the VM
and then hangs a standard kernel. So "auto" boots cocoon's kernel once under
KVM in probe mode and trusts KVM only if the agent answered; the verdict is
cached per host fingerprint so the probe costs once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cocoon import paths, sha256
from cocoon.errors import InvalidArgument, Unsupported
from cocoon.files import write_atomic
from cocoon.log import Logger
from cocoon.vm import qemu
from cocoon.vm.machine import MachineSpec

log = Logger(__name__)

CHOICES = ("auto", "kvm", "tcg")
PROBE_TIMEOUT = 20.0
PROBE_OK = b"cocoon-probe-ok"


def _kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def _fingerprint(kernel: Path) -> str:
    """What the verdict depends on: host kernel, KVM flavour, QEMU, guest kernel."""
    modules = sorted(p.name for p in Path("/sys/module").glob("kvm*"))
    qemu_bin = qemu.binary()
    parts = [
        os.uname().release,  # platform.release(), without importing platform
        ",".join(modules),
        f"{qemu_bin}:{qemu_bin.stat().st_mtime_ns}",
        f"{kernel.resolve()}:{kernel.stat().st_size}",
    ]
    return sha256.hexdigest("\n".join(parts).encode())[:16]


def probe(kernel: Path, initrd: Path) -> tuple[bool, str]:
    """Boot under KVM in probe mode; (booted?, why not)."""
    spec = MachineSpec(
        kernel=kernel, initrd=initrd, accel="kvm", memory_mib=128, params={"probe": "1"}
    )
    return qemu.probe(spec, PROBE_OK, PROBE_TIMEOUT)


def choose(requested: str, kernel: Path, initrd: Path) -> str:
    if requested not in CHOICES:
        raise InvalidArgument(f"unknown accelerator {requested!r} (choose from auto, kvm, tcg)")
    if requested == "tcg":
        return "tcg"
    if requested == "kvm":
        if not _kvm_usable():
            raise Unsupported("--accel kvm: /dev/kvm is missing or not accessible")
        return "kvm"
    if not _kvm_usable():
        log.debug("no usable /dev/kvm; using TCG (software emulation)")
        return "tcg"
    cache = paths.cache_dir() / "accel" / f"{_fingerprint(kernel)}.json"
    try:
        verdict = json.loads(cache.read_text())
    except (OSError, ValueError):
        ok, why = probe(kernel, initrd)
        verdict = {"accel": "kvm" if ok else "tcg", "reason": why}
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, json.dumps(verdict).encode())
    if verdict["accel"] == "tcg":
        log.debug("KVM cannot boot a standard guest here (%s); using TCG", verdict["reason"])
    return verdict["accel"]
