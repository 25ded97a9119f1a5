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

A rooted template goes further for one image: its guest (``cocoon.rooted=1``)
mounts the root, makes the container mounts and namespaces and reads the
files every process reads first, then parks; under emulation that is the
work every clone would otherwise pay for in first-run kernel code. It is
booted with a copy of a new container's root disk, an untouched qcow2
overlay of the image's disk (``qcow2.untouched``: nothing allocated), and
keeps that copy as the guest left it (``Template.root``; QEMU has flushed
and let go of it when the save completes). Any two untouched overlays of
one backing file and one virtual size read alike, so the template serves
every new container of the image: before QEMU starts, the clone's disk is
replaced by a copy of the template's, byte for byte what the guest has
mounted and cached. Its key is the shape plus the backing file's name,
identity (a removed and re-pulled image's disk is another file) and the
virtual size. A disk a guest has written (a restarted container), a 9p
root or a read-only one resumes the shape's template, which mounts after
the resume; a failed rooted build falls back to it too, and that to a
cold boot. The agent makes the namespaces again for a clone with a
read-only root or mounts; everything else of the container (hostname,
network, ``/dev/shm``'s size, the root's size) it applies after CONFIG as
in any clone.

Templates are kept under ``<cache>/templates``, one folder per shape (or
shape and image disk) named by the hash of its inputs (the kernel's and
initramfs's contents among them), so a new kernel or agent makes a new
template on first need; the ``KEEP`` most recently used shapes' and the
``KEEP_ROOTED`` most recently used rooted ones stay, and a rooted one whose
image disk is gone goes at the next sweep (no clone can start from it).

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
import stat
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from cocoon import paths, sha256, tools
from cocoon.errors import CocoonError, ExternalError, Timeout
from cocoon.files import write_atomic
from cocoon.locks import flock
from cocoon.log import Logger
from cocoon.vm import backend, qcow2, qemu
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
PARKED_ROOTED = PARKED + b"-rooted"  # a rooted template's agent: its root is set up
BUILD_TIMEOUT = 120.0  # a cold boot under emulation on a loaded host


def template_mac(index: int) -> str:
    """The template's card ``index`` (0 = eth0), each its own; a clone's agent
    sets the container's own addresses."""
    return f"02:00:00:00:00:{index + 1:02x}"


TEMPLATE_MAC = template_mac(0)
KEEP = 8  # templates kept, the most recently used
KEEP_ROOTED = 4  # rooted templates (one image's each) kept besides, the most recently used
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
    """One saved template: its guest's RAM, device state and, if rooted, root disk."""

    path: Path  # its folder

    @property
    def ram(self) -> Path:
        return self.path / "ram"

    @property
    def state(self) -> Path:
        return self.path / "state"

    @property
    def root(self) -> Path:
        """A rooted template's root disk as its guest left it; every clone starts from a copy."""
        return self.path / "root.qcow2"


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
            if header[:4] != qcow2.MAGIC:
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
        "more_nics": len(spec.more_nets),
    }


def _backing_identity(st: os.stat_result) -> str:
    """Which file a path names now: another file there (an image removed and
    pulled again) is another identity, even with the same content's name.
    Not its ctime, which each container's hard link to it changes."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def rooted_shape(spec: MachineSpec) -> dict[str, object] | None:
    """What a rooted template must share with ``spec`` besides its shape: the
    root disk's backing file and virtual size, when the root is an untouched
    qcow2 overlay (any two of those read alike); None when it is anything else."""
    if not spec.disks:
        return None
    root = spec.disks[0]
    if _volume_disk(root) or root.format != "qcow2" or root.readonly:
        return None
    overlay = qcow2.untouched(root.path)
    # A relative backing name would mean another file beside the template's copy.
    if overlay is None or not os.path.isabs(overlay.backing):
        return None
    try:
        st = os.stat(overlay.backing)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return {
        "backing": overlay.backing,
        "backing_format": overlay.backing_format,
        "backing_identity": _backing_identity(st),
        "size": overlay.size,
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


def _wait_parked(console: Path, machine, timeout: float, rooted: bool) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if machine.poll() is not None:
            raise ExternalError(f"the template VM exited: {machine.last_words()}")
        with contextlib.suppress(OSError):
            said = console.read_bytes()
            if (PARKED_ROOTED if rooted else PARKED) in said:
                return
            # Its plain marker, whole (a line end after it): an agent from
            # before rooted templates, which parks without the root.
            if rooted and (PARKED + b"\n" in said or PARKED + b"\r" in said):
                raise ExternalError("the guest agent cannot set up the root in a template")
        time.sleep(0.01)
    raise Timeout(f"the template VM did not reach its agent within {timeout:g}s")


def build(spec: MachineSpec, where: Path, *, rooted: bool = False) -> None:
    """Boot a template of ``spec``'s shape into ``where`` (a new folder) and save it.

    ``rooted``: its guest sets up the root (a copy of ``spec``'s untouched
    root disk, kept as ``Template.root``) before it parks.
    """
    where.mkdir()
    disks, shares = [], []
    for i, disk in enumerate(spec.disks):
        if i == 0 and rooted:
            root = Template(where).root
            shutil.copyfile(disk.path, root)
            disks.append(Disk(root, "qcow2"))
            continue
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
            params={**spec.params, "template": "1", **({"rooted": "1"} if rooted else {})},
            memory_file=MemoryFile(where / "ram", shared=True),
        )
        machine = backend.create(template_spec)
        machine.start()
        try:
            _wait_parked(where / "console.log", machine, BUILD_TIMEOUT, rooted)
            # Its end flushes and lets go of the disks: the root's file is
            # then what the saved guest believes its disk holds.
            machine.save(where / "state")
        finally:
            machine.kill()
            machine.stop(0)
    finally:
        agent.close()
        shutil.rmtree(sockets, ignore_errors=True)
    for disk in disks[1:] if rooted else disks:
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
    rooted = [e for e in kept if Template(e).root.exists()]
    plain = [e for e in kept if e not in rooted]
    orphans = [e for e in rooted if _orphaned(e)]
    live = [e for e in rooted if e not in orphans]
    for entry in [*plain[KEEP:], *orphans, *live[KEEP_ROOTED:]]:
        shutil.rmtree(entry, ignore_errors=True)


def _orphaned(entry: Path) -> bool:
    """A rooted template whose image disk is gone or another file now: no
    clone can start from it (its key names the old file), so its RAM goes."""
    try:
        inputs = json.loads((entry / "shape.json").read_text())
        rooted = inputs["rooted"]
        return _backing_identity(os.stat(rooted["backing"])) != rooted["backing_identity"]
    except FileNotFoundError:
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable: left to the LRU count


def _key(inputs: dict[str, object]) -> str:
    return sha256.hexdigest(json.dumps(inputs, sort_keys=True).encode())[:16]


def key(spec: MachineSpec) -> str:
    """The name of ``spec``'s template folder: the hash of its shape."""
    return _key(shape(spec))


def ensure(spec: MachineSpec, rooted: dict[str, object] | None = None) -> Template:
    """The template for ``spec``'s shape, built now if there is none yet;
    with ``rooted`` (``rooted_shape(spec)``), the rooted one of its root disk."""
    _ensure_ramfs(folder())
    inputs = shape(spec) if rooted is None else {**shape(spec), "rooted": rooted}
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
            build(spec, work, rooted=rooted is not None)
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


def _give_root(spec: MachineSpec, template: Template) -> None:
    """Make the clone's root disk (untouched, checked by ``rooted_shape``) the
    rooted template's, byte for byte: what its guest has mounted."""
    disk = spec.disks[0].path
    tmp = disk.with_name(f".{disk.name}.{os.getpid()}")
    try:
        shutil.copyfile(template.root, tmp)
        os.replace(tmp, disk)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ExternalError(f"cannot copy the template's root disk: {e.strerror}") from e


def _rooted_clone(spec: MachineSpec) -> MachineSpec | None:
    """A clone of the rooted template of ``spec``'s root disk, or None (why, with ``--debug``)."""
    rooted = rooted_shape(spec)
    if rooted is None:
        log.debug("no rooted template: the root disk is not an untouched overlay of an image")
        return None
    try:
        template = ensure(spec, rooted)
        _give_root(spec, template)
    except CocoonError as e:
        log.debug("no rooted template (%s)", e)
        return None
    log.debug("starting from memory template %s (rooted)%s", template.path.name, _cards(spec))
    return clone(spec, template)


def _cards(spec: MachineSpec) -> str:
    return f" ({1 + len(spec.more_nets)} network cards)" if spec.more_nets else ""


def prepare(spec: MachineSpec, wanted: bool = True) -> MachineSpec:
    """A clone of the rooted template of ``spec``'s image if it can (and is
    ``wanted`` to) have one, else of its shape's template, else ``spec`` to
    cold-boot."""
    reason = why_not(spec, wanted)
    if reason is None:
        if (rooted := _rooted_clone(spec)) is not None:
            return rooted
        try:
            template = ensure(spec)
        except CocoonError as e:
            reason = f"no template ({e})"
        else:
            log.debug("starting from memory template %s%s", template.path.name, _cards(spec))
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
    "rooted_shape",
    "shape",
    "unavailable",
    "why_not",
]
