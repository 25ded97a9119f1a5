"""The build VM: one microVM per base image that runs every step of its stages.

The VM's root disk is a copy-on-write overlay of the stage's base image disk
(an empty ext4 for ``FROM scratch``); a second, sparse disk holds one folder
per step. The agent runs in build mode (``CONFIG BUILD``): no process ends
the VM. Each step's process gets a ``ROOT`` field, so it runs in an overlay
of its own folder's ``upper`` over the earlier steps' and the base root, and
its changes land in that one folder, which ``TAR LAYER`` then streams back
as an OCI layer (whiteouts translated by the agent). A layer taken from the
cache is turned back into a step folder by ``TAR UNLAYER``, so a stage whose
first steps are cached boots only for the first step that is not. Stages on
one base share its VM, each on a stack of step folders of its own (a folder
of an earlier stage may be in a later one's stack, never written again).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from cocoon import paths
from cocoon.agent.keepalive import Watchdog
from cocoon.agent.listener import Listener
from cocoon.agent.protocol import GuestConfig, GuestMount, MountKind, Msg, TarOp
from cocoon.agent.session import ExitStatus, Process
from cocoon.agent.spec import ProcessSpec
from cocoon.errors import ExternalError
from cocoon.image.model import Image
from cocoon.image.store import ImageStore
from cocoon.rootfs import ext4
from cocoon.rootfs.disks import container_disk, image_disk
from cocoon.vm import accel as accelerators
from cocoon.vm import backend
from cocoon.vm import machine as vms
from cocoon.vm.artifacts import artifacts

Sink = Callable[[bytes], None]
STEPS = "/dev/.cocoon-build"  # in the VM's devtmpfs: never in a step's root
STEPS_SERIAL = "cocoon-build"
STEPS_SIZE = 64 << 30  # sparse: costs what the steps write
SCRATCH_SIZE = 1 << 30  # the empty root of FROM scratch
BOOT_TIMEOUT = 120.0
STOP_GRACE = 10.0
MEMORY_MIB = 512
ACTIVE = ".active"  # the lock each running build holds shared


def work_dir() -> Path:
    """Where build VMs keep their disks and sockets while they run."""
    return paths.state_dir() / "build"


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Hold the build folder for one build (a shared lock). A build that finds
    no other one running first removes what a killed build left there."""
    folder = work_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ACTIVE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # other builds run: what is there is theirs
        else:
            for entry in folder.iterdir():
                if entry.name != ACTIVE:
                    _remove(entry)
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class BuildVM:
    """A booted build VM; ``close`` stops it and removes everything it made."""

    def __init__(
        self,
        store: ImageStore,
        base: Image | None,
        *,
        network: bool = False,
        cpus: int = 1,
        memory_mib: int = MEMORY_MIB,
    ) -> None:
        work_dir().mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="vm-", dir=work_dir()))
        self._steps = 0
        self.folders: dict[str, int] = {}  # layer digest -> the step folder holding it
        self._proc = 0
        self.machine: vms.Machine | None = None
        self.listener: Listener | None = None
        self._watchdog: Watchdog | None = None
        try:
            self._boot(store, base, network, cpus, memory_mib)
        except BaseException:
            self.close()
            raise

    def _boot(
        self, store: ImageStore, base: Image | None, network: bool, cpus: int, memory_mib: int
    ) -> None:
        from cocoon.container import network as nets  # QEMU's user-mode NAT, as `run` has it

        root = self.folder / "root.qcow2"
        if base is None:
            root = self.folder / "root.img"
            ext4.make_empty(root, SCRATCH_SIZE)
        else:
            container_disk(root, image_disk(store, base))
        steps = self.folder / "steps.img"
        ext4.make_empty(steps, STEPS_SIZE)
        arts = artifacts()
        sockets = self.folder
        spec = vms.MachineSpec(
            kernel=arts.kernel,
            initrd=arts.initrd,
            accel=accelerators.choose("auto", arts.kernel, arts.initrd),
            cpus=cpus,
            memory_mib=memory_mib,
            disks=[
                vms.Disk(root, "qcow2" if base is not None else "raw"),
                vms.Disk(steps, "raw", serial=STEPS_SERIAL),
            ],
            net=vms.UserNet(nets.USER_NET, nets.USER_MAC) if network else None,
            agent_socket=sockets / "agent.sock",
            control_socket=sockets / "vmm.sock",
            console=self.folder / "console.log",
            params={"root": "vda"},
        )
        self.listener = Listener(spec.agent_socket)
        self.machine = backend.create(spec)
        self.machine.start()
        try:
            self.channel = self.listener.accept(self.machine.events, BOOT_TIMEOUT)
            outside = {}
            if network:
                outside = {"address": f"{nets.USER_IP}/24", "gateway": nets.USER_GATEWAY,
                           "dns": [nets.USER_DNS], "mac": nets.USER_MAC}  # fmt: skip
            config = GuestConfig(
                **outside,  # type: ignore[arg-type]
                hostname="cocoon-build",
                time_ns=time.time_ns(),
                mounts=[GuestMount(MountKind.EXT4, STEPS, STEPS_SERIAL)],
                entropy=os.urandom(64),
                build=True,
            )
            self.channel.send(Msg.CONFIG, 0, config.encode())
            self.channel.wait_ready(BOOT_TIMEOUT)
        except ExternalError as e:
            raise ExternalError(f"build VM: {e}: {self.machine.last_words()}") from e
        # A build guest that halts or hangs says nothing more, as a
        # container's would: the watchdog kills its VM, and the step waiting
        # on the channel ends with the watchdog's reason (``channel.lost``).
        self._watchdog = Watchdog(self.channel, self.machine.kill).start()

    # -- steps ---------------------------------------------------------------

    def new_step(self) -> int:
        """The number of a new, empty step folder."""
        self._steps += 1
        return self._steps

    @staticmethod
    def _root(stack: Sequence[int]) -> tuple[str, ...]:
        """A ROOT field: the top step's folder first, then those below it."""
        return tuple(f"{STEPS}/{n}" for n in reversed(stack))

    def _process(self) -> Process:
        self._proc += 1
        return Process(self.channel, self._proc)

    def run(
        self,
        stack: Sequence[int],
        argv: list[str],
        env: list[str],
        *,
        cwd: str,
        user: str,
        stdout: Sink,
        stderr: Sink,
    ) -> ExitStatus:
        """Run a RUN instruction's command on ``stack`` (step folders, bottom first):
        its changes land in the top one."""
        spec = ProcessSpec(argv, env, cwd=cwd, user=user, root=self._root(stack))
        process = self._process()
        process.start(spec)
        return process.relay(stdout, stderr)

    def _tar(
        self,
        stack: Sequence[int] | None,
        op: TarOp,
        path: str,
        *,
        source: BinaryIO | None = None,
        sink: Sink | None = None,
        cwd: str = "/",
    ) -> None:
        """The agent's tar in the VM, reading ``source``, writing to ``sink``;
        ExternalError with its words when it fails."""
        root = None if stack is None else self._root(stack)
        stdin = source is not None
        spec = ProcessSpec(["cocoon-tar"], [], cwd=cwd, tar=(op, 0, path), stdin=stdin, root=root)
        err = bytearray()
        process = self._process()
        process.start(spec)
        if source is not None:
            process.feed_stdin(source.fileno())
        status = process.relay(sink or (lambda _: None), err.extend)
        if status.code != 0:
            said = err.decode(errors="replace").strip().splitlines()
            raise ExternalError(f"build VM: {said[-1] if said else status.error or status.code}")

    def extract(self, stack: Sequence[int], tar: BinaryIO) -> None:
        """Unpack ``tar`` (names relative to /) on ``stack``: COPY and ADD."""
        self._tar(stack, TarOp.EXTRACT, "/", source=tar)

    def make_dir(self, stack: Sequence[int], path: str) -> None:
        """Make the folder ``path`` (and its parents) as root where missing: WORKDIR.

        The agent makes a process's missing working folder; this process is
        its tar, unpacking nothing (no stdin)."""
        self._tar(stack, TarOp.EXTRACT, "/", cwd=path)

    def is_dir(self, stack: Sequence[int], path: str) -> bool:
        """Whether ``path`` is a folder (or a link to one) as ``stack`` sees it."""
        import io
        import tarfile

        data = bytearray()
        try:
            self._tar(stack, TarOp.ENTRY, path, sink=data.extend)
        except ExternalError as e:
            if "no such file" in str(e).lower() or "not a directory" in str(e).lower():
                return False
            raise
        with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
            first = tar.next()
        return first is not None and first.isdir()

    def read(self, stack: Sequence[int], path: str, sink: Sink) -> None:
        """A tar of ``path`` (named from its last component) as ``stack`` sees it."""
        self._tar(stack, TarOp.CREATE, path, sink=sink)

    def layer(self, step: int, sink: Sink) -> None:
        """``step``'s changes as an OCI layer tar, given to ``sink`` piece by piece."""
        self._tar(None, TarOp.LAYER, f"{STEPS}/{step}/upper", sink=sink)

    def unlayer(self, step: int, tar: BinaryIO) -> None:
        """Make ``step``'s folder hold the (uncompressed) OCI layer ``tar``."""
        self._tar(None, TarOp.UNLAYER, f"{STEPS}/{step}/upper", source=tar)

    # -- the end -------------------------------------------------------------

    def close(self) -> None:
        """Stop the VM (the guest powers off when the port closes) and remove its files."""
        if self._watchdog is not None:
            self._watchdog.stop()
        if self.machine is not None:
            with contextlib.suppress(Exception):
                self.channel.send(Msg.SHUTDOWN, 0)
            with contextlib.suppress(Exception):
                self.channel.close()
            with contextlib.suppress(Exception):
                self.machine.stop(STOP_GRACE)
            self.machine.kill()
        if self.listener is not None:
            self.listener.close()
        shutil.rmtree(self.folder, ignore_errors=True)


__all__ = ["BuildVM", "session", "work_dir"]
