"""The host's TSC rate, which under TCG is the guest's.

QEMU's emulated ``rdtsc`` reads the host's counter, so the guest's TSC ticks
at the host's rate. The guest kernel measures that rate against the PIT at
boot, and under emulation on a busy host the measurement often fails (five
boots in eight on a loaded two-core host): the kernel then marks the TSC
unstable and keeps time with jiffies, 10 ms steps for every clock and timer
in the container, and a memory template built that way hands that to every
clone. Measured here once per host boot and given to the kernel as
``tsc_early_khz``, the rate is never guessed.
"""

from __future__ import annotations

import contextlib
import os
import time

from cocoon import paths
from cocoon.files import write_atomic

# rdtsc; shl rdx, 32; or rax, rdx; ret
_RDTSC = b"\x0f\x31\x48\xc1\xe2\x20\x48\x09\xd0\xc3"
_WINDOW = 0.05  # seconds: ~20 ppm with microsecond clock jitter


def _invariant() -> bool:
    """Whether the host's counter ticks at one rate whatever the CPU's speed or sleep state."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return "constant_tsc" in flags and "nonstop_tsc" in flags
    return False


def _measure() -> int:
    """kHz of the host's TSC against CLOCK_MONOTONIC_RAW, over ``_WINDOW``."""
    # Imported here: this runs once per host boot, and every VMM's owner
    # imports this module (ctypes alone is ~0.4 MiB of each monitor).
    import ctypes
    import mmap

    # The five instructions run from a page of their own, made executable
    # only once written (no page is ever writable and executable at once).
    page = mmap.mmap(-1, mmap.PAGESIZE)
    try:
        page.write(_RDTSC)
        buf = ctypes.c_char.from_buffer(page)
        address = ctypes.addressof(buf)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mprotect(ctypes.c_void_p(address), mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC):
            raise OSError(ctypes.get_errno(), "mprotect")
        rdtsc = ctypes.CFUNCTYPE(ctypes.c_uint64)(address)
        raw = time.CLOCK_MONOTONIC_RAW
        t0, c0 = time.clock_gettime_ns(raw), rdtsc()
        time.sleep(_WINDOW)
        c1, t1 = rdtsc(), time.clock_gettime_ns(raw)
        del rdtsc, buf
    finally:
        with contextlib.suppress(BufferError):
            page.close()
    return round((c1 - c0) * 1_000_000 / (t1 - t0))


def host_khz() -> int | None:
    """The host's TSC rate in kHz, or None where it has no invariant x86 TSC.

    Kept in the run folder, which a reboot empties: a host booted on other
    hardware (or a VM migrated) may tick at another rate.
    """
    if os.uname().machine != "x86_64":
        return None
    memo = paths.run_dir() / "tsc-khz"
    with contextlib.suppress(OSError, ValueError):
        return int(memo.read_text()) or None
    try:
        khz = _measure() if _invariant() else 0
    except OSError:
        khz = 0  # no executable page here (a hardened host): the guest measures
    with contextlib.suppress(OSError):
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(memo, str(khz).encode())
    return khz or None


__all__ = ["host_khz"]
