"""Memory templates: a VM booted once per shape and saved, each start a copy-on-write clone.

A template is one VM of a given shape (kernel, initramfs, accelerator,
vCPUs, memory, device layout) booted with ``cocoon.template=1``: its agent
opens the port and parks at the first read, before touching any disk. The
host then pauses it and saves its device state; its RAM already lives in a
file (``memory_file`` shared). A clone is a new VMM over the same devices,
each backed by the container's own disk, TAP or user network, whose RAM
maps that file privately and which resumes from the saved state: the guest
wakes at that read and gets everything of its container in CONFIG.

Disks and 9p shares are slots of the shape: a template has the disks and
shares of the container that first needed it, and a clone's command line
puts its own root disk, volumes and folders behind them (QEMU reads a
slot's backing file and a disk's serial from the clone's command line;
only what the guest read at boot stays the template's). What the guest
did read then: a disk's size, so every disk slot is as large as any disk
may be (the agent mounts the filesystem on it, which fits, and grows the
root's filesystem to the size CONFIG's ROOT_SIZE gives, not the slot's),
and a share's tag, so the tags are part of the shape. The root's size is
thus not, and one template serves every image. A disk's read-only flag is
a feature the guest acknowledged at boot, which a restore must still find
offered: volume slots are writable in the template, and a clone's
read-only volume is read-only behind the slot (QEMU refuses writes) and
mounted read-only by the agent. microvm has eight virtio-mmio slots in
all, which bounds the volumes of any VM, cloned or not.

Templates are kept under ``<cache>/templates``, one folder per shape named
by the hash of its inputs (the kernel's and initramfs's contents among
them), so a new kernel or agent makes a new template on first need; the
``KEEP`` most recently used stay.

Clones must never write into the template. QEMU 7.2 discards guest memory
(free page reporting, balloon inflation) by punching holes in a file
backend even when the clone maps it privately, which zeroes that memory
for every other clone. So the folder is a ramfs mount, which cannot punch
holes: the discard fails inside QEMU and the file stays whole, whatever a
guest asks. Clones run without free page reporting (each report would only
fail); what a clone frees stays with it until it exits. ramfs is also what
keeps the template in RAM and off the disk; it needs root to mount, so
without root containers cold-boot.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from cocoon import paths, sha256, tools
from cocoon.errors import CocoonError, ExternalError, Timeout
from cocoon.files import write_atomic
from cocoon.locks import flock
from cocoon.log import Logger
from cocoon.vm import backend, qemu
from cocoon.vm.machine import (
    Disk,
    MachineSpec,
    MemoryFile,
    SharedFolder,
    Tap,
    Unplugged,
    UserNet,
)

log = Logger(__name__)

PARKED = b"cocoon-template-parked"
BUILD_TIMEOUT = 120.0  # a cold boot under emulation on a loaded host


def template_mac(index: int) -> str:
    """The template's card ``index`` (0 = eth0), each its own; a clone's agent
    sets the container's own addresses."""
    return f"02:00:00:00:00:{index + 1:02x}"


TEMPLATE_MAC = template_mac(0)
QCOW2_MAGIC = b"QFI\xfb"
KEEP = 8  # templates kept, the most recently used
RETRY_AFTER = 600.0  # seconds before a shape whose build failed is tried again
# A disk slot's size as the template's guest sees it: ext4's limit with
# 4 KiB blocks, so every root's and volume's filesystem fits on the slot.
SLOT_BYTES = 16 << 40


# Every VM test passes with templates on (tests/integration, tests/security).
DEFAULT = "1"


def enabled() -> bool:
    """Whether containers start from templates: ``COCOON_TEMPLATE`` 1 or 0."""
    return os.environ.get("COCOON_TEMPLATE", DEFAULT) != "0"


def folder() -> Path:
    return paths.cache_dir() / "templates"


@dataclass(frozen=True, slots=True)
class Template:
    path: Path  # its folder

    @property
    def ram(self) -> Path:
        return self.path / "ram"

    @property
    def state(self) -> Path:
        return self.path / "state"


def _digest(path: Path) -> str:
    """The file's content hash, remembered per (path, size, mtime) so it is read once."""
    st = path.stat()
    memo = folder() / "digests.json"
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if isinstance(found := known.get(key), str):
        return found
    digest = sha256.hexdigest(path.read_bytes())
    known = {k: v for k, v in known.items() if not k.startswith(f"{path.resolve()}:")}
    known[key] = digest
    with contextlib.suppress(OSError):
        write_atomic(memo, json.dumps(known).encode())
    return digest


def _disk_size(disk: Disk) -> int:
    """The disk's size as the guest sees it: a qcow2's virtual size, a raw file's length."""
    with open(disk.path, "rb") as f:
        header = f.read(32)
        if disk.format == "qcow2":
            if header[:4] != QCOW2_MAGIC:
                raise ExternalError(f"{disk.path} is not a qcow2 image")
            return int.from_bytes(header[24:32], "big")
        return os.fstat(f.fileno()).st_size


def _volume_disk(disk: Disk) -> bool:
    """A disk the agent finds by serial and mounts as it is (a volume), as
    opposed to the root, which it mounts at boot and may grow."""
    return disk.serial is not None


def _disk_slot(disk: Disk) -> list[object]:
    return ["volume"] if _volume_disk(disk) else ["root", disk.readonly]


def root_size(spec: MachineSpec) -> int | None:
    """The root disk's size for a clone's agent (CONFIG's ROOT_SIZE), whose
    device shows the template's slot size instead; None for a cold boot."""
    if spec.restore is None:
        return None
    root = next((d for d in spec.disks if not _volume_disk(d)), None)
    return None if root is None else _disk_size(root)


def shape(spec: MachineSpec) -> dict[str, object]:
    """What a template must share with its clones: everything the guest saw at boot."""
    qemu_bin = qemu.binary()
    return {
        "kernel": _digest(spec.kernel),
        "initrd": _digest(spec.initrd),
        "qemu": f"{qemu_bin.resolve()}:{qemu_bin.stat().st_mtime_ns}",
        "accel": spec.accel,
        "cpus": spec.cpus,
        "memory_mib": spec.memory_mib,
        "disks": [_disk_slot(d) for d in spec.disks],
        "shares": [s.tag for s in spec.shares],
        "nic": spec.net is not None,
        # All of it, not only cocoon's words: a kernel argument cocoon adds
        # (the TSC rate, say) changes what every clone's guest booted with.
        "cmdline": qemu.kernel_cmdline(spec),
        # Only when there are more cards: a one-card shape keeps its old key
        # (and its template) from before containers had several networks.
        **({"more_nics": len(spec.more_nets)} if spec.more_nets else {}),
    }


def unavailable() -> str | None:
    """Why no VM on this host can start from a template, or None."""
    if not enabled():
        return "templates are off (COCOON_TEMPLATE=0)"
    if os.geteuid() != 0:
        return "keeping templates in ramfs needs root"
    return None


def why_not(spec: MachineSpec, wanted: bool = True) -> str | None:
    """Why ``spec`` cannot start from a template, or None if it can."""
    if not (wanted and enabled()):
        return "templates are off (COCOON_TEMPLATE=0 or --no-template)"
    if any(_disk_size(d) > SLOT_BYTES for d in spec.disks):
        return f"a disk larger than a template's disk slot ({SLOT_BYTES >> 40} TiB)"
    if spec.memory_file is not None or spec.restore is not None:
        return "the VM already has a memory image"
    if not (isinstance(spec.net, Tap | UserNet) or spec.net is None) or not all(
        isinstance(n, Tap) for n in spec.more_nets
    ):
        return "a network card without a backend"
    return unavailable()


def _is_ramfs(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            # mount point is field 5; the filesystem type follows the " - ".
            dash = fields.index("-")
            if fields[4] == target and fields[dash + 1] == "ramfs":
                return True
    return False


def _ensure_ramfs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if _is_ramfs(path):
        return
    with flock(path.parent / "templates.lock"):
        if _is_ramfs(path):
            return
        result = subprocess.run(
            [tools.find("mount"), "-t", "ramfs", "-o", "mode=0700", "cocoon-templates", str(path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ExternalError(f"cannot mount a ramfs for templates: {result.stderr.strip()}")


def _blank_disk(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def _wait_parked(console: Path, machine, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if machine.poll() is not None:
            raise ExternalError(f"the template VM exited: {machine.last_words()}")
        with contextlib.suppress(OSError):
            if PARKED in console.read_bytes():
                return
        time.sleep(0.01)
    raise Timeout(f"the template VM did not reach its agent within {timeout:g}s")


def build(spec: MachineSpec, where: Path) -> None:
    """Boot a template of ``spec``'s shape into ``where`` (a new folder) and save it."""
    where.mkdir()
    disks, shares = [], []
    for i, disk in enumerate(spec.disks):
        blank = where / f"disk{i}"
        _blank_disk(blank, SLOT_BYTES)  # sparse: ramfs holds only what is read
        readonly = disk.readonly and not _volume_disk(disk)
        disks.append(Disk(blank, "raw", readonly, serial=disk.serial))
    for i, share in enumerate(spec.shares):
        # Never mounted by the template's guest (it parks before any mount):
        # QEMU would refuse to save a VM with a mounted share.
        empty = where / f"share{i}"
        empty.mkdir()
        shares.append(SharedFolder(empty, share.tag, readonly=True, security_model="none"))
    # Unix socket paths are short: the run dir, not the cache dir.
    sockets = paths.run_dir() / f"tpl-{os.getpid()}-{where.name[:8]}"
    sockets.mkdir(parents=True, exist_ok=True)
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        agent.bind(str(sockets / "agent.sock"))
        agent.listen(1)  # the VMM connects; nothing is ever said on it
        template_spec = replace(
            spec,
            disks=disks,
            shares=shares,
            net=None if spec.net is None else Unplugged(template_mac(0)),
            more_nets=tuple(Unplugged(template_mac(i + 1)) for i in range(len(spec.more_nets))),
            agent_socket=sockets / "agent.sock",
            control_socket=sockets / "vmm.sock",
            console=where / "console.log",
            params={**spec.params, "template": "1"},
            memory_file=MemoryFile(where / "ram", shared=True),
        )
        machine = backend.create(template_spec)
        machine.start()
        try:
            _wait_parked(where / "console.log", machine, BUILD_TIMEOUT)
            machine.save(where / "state")
        finally:
            machine.kill()
            machine.stop(0)
    finally:
        agent.close()
        shutil.rmtree(sockets, ignore_errors=True)
    for disk in disks:
        disk.path.unlink()
    for share in shares:
        share.path.rmdir()


def _sweep() -> None:
    """Keep the most recently used templates (a ramfs holds them in RAM, never
    swapped) and drop builds that died half-way. Clones still running keep
    their mapping of a removed file."""
    for entry in folder().glob("*.build-*"):
        with (
            contextlib.suppress(BlockingIOError),
            flock(
                folder() / f"{entry.name.split('.build-')[0]}.lock", fcntl.LOCK_EX | fcntl.LOCK_NB
            ),
        ):
            shutil.rmtree(entry, ignore_errors=True)
    kept = sorted(
        (e for e in folder().iterdir() if (e / "state").exists()),
        key=lambda e: e.joinpath("state").stat().st_mtime,
        reverse=True,
    )
    for entry in kept[KEEP:]:
        shutil.rmtree(entry, ignore_errors=True)


def _key(inputs: dict[str, object]) -> str:
    return sha256.hexdigest(json.dumps(inputs, sort_keys=True).encode())[:16]


def key(spec: MachineSpec) -> str:
    """The name of ``spec``'s template folder: the hash of its shape."""
    return _key(shape(spec))


def ensure(spec: MachineSpec) -> Template:
    """The template for ``spec``'s shape, built now if there is none yet."""
    _ensure_ramfs(folder())
    inputs = shape(spec)
    name = _key(inputs)
    template = Template(folder() / name)
    with contextlib.suppress(FileNotFoundError):
        os.utime(template.state)  # its last use, for _sweep
        return template
    failed = folder() / f"{name}.failed"
    with flock(folder() / f"{name}.lock"):
        if template.state.exists():
            return template
        with contextlib.suppress(OSError):
            if time.time() - failed.stat().st_mtime < RETRY_AFTER:
                raise ExternalError(f"building it failed: {failed.read_text()}")
        t0 = time.monotonic()
        work = folder() / f"{name}.build-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            build(spec, work)
            write_atomic(work / "shape.json", json.dumps(inputs).encode())
            os.rename(work, template.path)
        except CocoonError as e:
            # Remembered for a while: every start would otherwise pay for
            # the same failure (a VMM without the feature, a guest that hangs).
            write_atomic(failed, str(e).encode())
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        failed.unlink(missing_ok=True)
        log.debug("built memory template %s in %.2fs", name, time.monotonic() - t0)
    _sweep()
    return template


def clone(spec: MachineSpec, template: Template) -> MachineSpec:
    """``spec`` resumed from ``template`` instead of booted."""
    return replace(
        spec,
        memory_file=MemoryFile(template.ram, shared=False),
        restore=template.state,
    )


def prepare(spec: MachineSpec, wanted: bool = True) -> MachineSpec:
    """A clone of ``spec``'s template if it can (and is ``wanted`` to) have
    one, else ``spec`` to cold-boot."""
    reason = why_not(spec, wanted)
    if reason is None:
        try:
            template = ensure(spec)
        except CocoonError as e:
            reason = f"no template ({e})"
        else:
            cards = f" ({1 + len(spec.more_nets)} network cards)" if spec.more_nets else ""
            log.debug("starting from memory template %s%s", template.path.name, cards)
            return clone(spec, template)
    log.debug("cold boot: %s", reason)
    return spec


__all__ = [
    "Template",
    "build",
    "clone",
    "enabled",
    "ensure",
    "key",
    "prepare",
    "root_size",
    "shape",
    "unavailable",
    "why_not",
]
