"""Run a parsed Dockerfile: stages in order, each filesystem step cached or run in a build VM.

A stage starts from an image (pulled if missing, or always with ``pull``),
from ``scratch`` or from an earlier stage. Instructions that only change
the config are applied by ``StageState`` on the host; RUN, COPY and ADD each
make one layer (WORKDIR one when its folder was missing), taken from the
cache when their key matches (no VM at all) or made in the build VM of the
stage's base, booted at the first step that needs it.
Only the target stage becomes an image; a failure leaves no image, no VM
and no temporary files (the layers it stored stay as cache).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cocoon.builder import cache as caches
from cocoon.builder.assemble import EPOCH, StageResult, assemble
from cocoon.builder.layers import Layer, copy_tar, store_layer
from cocoon.builder.progress import Quiet
from cocoon.builder.sources import fetch
from cocoon.builder.stage import StageState, base_platform, base_ref, meta_values, unused_build_args
from cocoon.builder.vm import BuildVM, work_dir
from cocoon.container.copy import piped
from cocoon.errors import ExternalError, InvalidArgument, NotFound
from cocoon.image.model import Image, loads
from cocoon.image.store import ImageStore
from cocoon.stamps import rfc3339

if TYPE_CHECKING:
    from cocoon.builder.context import Context
    from cocoon.builder.dockerfile import Dockerfile, Instruction, Stage
    from cocoon.builder.stage import CopyOp

FS_STEPS = ("RUN", "COPY", "ADD", "WORKDIR")
PLATFORMS = ("linux/amd64", "linux/x86_64", "amd64")  # what the build VM runs


class BuildFailed(ExternalError):
    """A RUN ended with a non-zero status; ``tail`` holds its last output lines."""

    def __init__(self, message: str, code: int, tail: Sequence[str]) -> None:
        super().__init__(message)
        self.exit_code = code
        self.tail = list(tail)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    network: str | None = None


def check_platform(platform: str | None, what: str) -> None:
    if platform is not None and platform.lower() not in PLATFORMS:
        raise InvalidArgument(f"{what} {platform}: only linux/amd64 can be built here")


def wants_network(network: str | None) -> bool:
    """Whether RUN steps get a network: QEMU's user-mode NAT (docker build's
    default, and ``host``), or none (``none``, or ``COCOON_NETWORK=none``)."""
    from cocoon.container.network import default_network

    mode = network or ("none" if default_network() == "none" else "default")
    if mode not in ("none", "default", "host", "bridge"):
        raise InvalidArgument(f"--network {network}: use default, host or none")
    return mode != "none"


class Builder:
    def __init__(
        self,
        dockerfile: Dockerfile,
        context: Context,
        opts: BuildOptions,
        *,
        store: ImageStore,
        progress: Quiet,
        filename: str = "Dockerfile",
    ) -> None:
        self.df = dockerfile
        self.context = context
        self.opts = opts
        self.store = store
        self.progress = progress
        self.filename = filename
        self.cache = caches.LayerCache(store)
        self.results: dict[str, StageResult] = {}
        self.vms = _VMs(store, wants_network(opts.network))
        self.meta = meta_values(dockerfile, opts.build_args)
        self.work = _work()  # build() makes its own folder in there

    # -- the whole build ------------------------------------------------------

    def build(self) -> Image:
        from cocoon.builder.dockerfile import select

        check_platform(self.opts.platform, "--platform")
        self.work = Path(tempfile.mkdtemp(prefix="run-", dir=_work()))
        try:
            with self.store.ingest():
                stages = select(self.df, self.opts.target)
                unused = unused_build_args(self.df, stages, self.opts.build_args)
                if unused:
                    names = ", ".join(unused)
                    self.progress.note(f"warning: build arguments not used: {names}")
                result = None
                for number, stage in enumerate(stages, 1):
                    result = self._stage(stage, number, len(stages))
                    self.results[str(stage.index)] = result
                    if stage.name:
                        self.results[stage.name.lower()] = result
                assert result is not None
                config = dict(result.config)
                if self.opts.labels:
                    config["Labels"] = {**(config.get("Labels") or {}), **self.opts.labels}
                image = assemble(self.store, result, config, self.opts.tags)
                self.cache.prune()  # entries whose layer a collection took since
                return image
        finally:
            self.vms.close()
            shutil.rmtree(self.work, ignore_errors=True)

    # -- one stage ------------------------------------------------------------

    def _parent(self, stage: Stage) -> StageResult:
        word = base_ref(stage, self.meta, self.opts.build_args)
        platform = base_platform(stage, self.meta, self.opts.build_args)
        check_platform(platform, f"{self.filename}:{stage.line}: FROM --platform")
        if word.lower() == "scratch":
            return StageResult(None, {}, [], [], {}, caches.chain("scratch"))
        earlier = self.results.get(word.lower())
        if earlier is not None and not word.isdigit():
            return earlier.copy()
        image = self._image(word, stage.line)
        doc = loads(self.store.read_blob(image.manifest.config.digest), f"image {word}")
        config = dict(doc.get("config") or {})
        return StageResult(image, doc, [], [], config, image.id, str(doc.get("created") or EPOCH))

    def _image(self, ref: str, line: int) -> Image:
        from cocoon.image.registry import resolve_or_pull

        try:
            policy = "always" if self.opts.pull else "missing"
            return resolve_or_pull(ref, self.store, policy=policy)
        except NotFound as e:
            raise NotFound(f"{self.filename}:{line}: {e}") from e

    def _from_image(self, source: str, line: int) -> Image:
        """The image of ``COPY --from``: a bare word is more likely a mistyped
        stage than an image to fetch from Docker Hub, so only a stored image
        of that name is used; a reference with a tag or a registry is pulled."""
        if any(c in source for c in "/:@"):
            return self._image(source, line)
        try:
            return self.store.resolve(source)
        except NotFound:
            raise NotFound(
                f"{self.filename}:{line}: COPY --from={source}: no stage of that name "
                f"(an image needs a tag or registry, e.g. {source}:latest, to be pulled)"
            ) from None

    def _stage(self, stage: Stage, number: int, count: int) -> StageResult:
        total = len(stage.instructions) + 1
        where = f"[stage {number}/{count}] " if count > 1 else ""
        where = f"[{stage.name}] " if stage.name else where
        self.progress.step(f"{where}STEP 1/{total}:", f"FROM {stage.base}")
        result = self._parent(stage)
        state = StageState(
            result.config, self.meta, self.opts.build_args, self.df.escape, line=stage.line
        )
        runner = _Runner(self.vms, result)
        triggers = state.onbuild_triggers()
        total += len(triggers)
        for i, instr in enumerate([*triggers, *stage.instructions], 2):
            label = f"{where}STEP {i}/{total}:"
            if instr.keyword in FS_STEPS:
                self._fs_step(instr, state, result, runner, label)
            else:
                self.progress.step(label, instr.text)
                state.apply(instr)
                result.key = caches.chain(result.key, instr.text, state.cache_args())
                if instr.keyword != "ARG":
                    result.history.append(_history(instr.text, result.created, empty=True))
        result.config = dict(state.config)
        if state.author is not None:
            result.author = state.author
        return result

    # -- RUN, COPY, ADD -------------------------------------------------------

    def _fs_step(
        self,
        instr: Instruction,
        state: StageState,
        result: StageResult,
        runner: _Runner,
        label: str,
    ) -> None:
        work: Callable[[BuildVM, list[int]], None]
        if instr.keyword == "WORKDIR":
            # Docker makes the folder even if nothing uses it: a layer when it
            # was missing, an empty_layer entry otherwise.
            state.apply(instr)
            folder = state.config["WorkingDir"]
            key = caches.chain(result.key, instr.text, state.cache_args())
            created_by = instr.text
            if folder == "/":  # always there
                self.progress.step(label, instr.text)
                result.history.append(_history(created_by, result.created, empty=True))
                result.key = key
                return
            work = lambda vm, stack: vm.make_dir(stack, folder)  # noqa: E731
        elif instr.keyword == "RUN":
            argv = state.run_argv(instr)
            key = caches.chain(result.key, instr.text, state.cache_args())
            created_by = f"RUN {' '.join(argv)}"
            work = lambda vm, stack: self._run(vm, stack, instr, argv, state)  # noqa: E731
        else:
            op = state.copy_op(instr)
            source, files = self._copy_source(op, instr)
            key = caches.chain(result.key, instr.text, state.cache_args(), source)
            created_by = instr.text
            work = lambda vm, stack: self._copy(vm, stack, files, op)  # noqa: E731
        hit = None if self.opts.no_cache else self.cache.get(key)
        self.progress.step(label, instr.text, cached=hit is not None)
        if hit is None:
            layer, created = self._make(runner, work, instr), rfc3339(time.time())
            self.cache.put(key, layer, created)
        else:
            layer, created = hit
            runner.pending.append(layer)
        result.key, result.created = key, created
        if instr.keyword == "WORKDIR" and layer.empty:
            runner.drop(layer)
            result.history.append(_history(created_by, created, empty=True))
            return
        result.layers.append(layer)
        result.history.append(_history(created_by, created))

    def _make(
        self, runner: _Runner, work: Callable[[BuildVM, list[int]], None], instr: Instruction
    ) -> Layer:
        """``runner.make(work)``; a VM that fails under it (it would not boot,
        went silent, stopped) fails the build naming the step."""
        try:
            return runner.make(work)
        except BuildFailed:
            raise  # names its step already
        except ExternalError as e:
            raise ExternalError(f"{self.filename}:{instr.line}: {instr.text}: {e}") from e

    def _run(
        self, vm: BuildVM, stack: list[int], instr: Instruction, argv: list[str], state: StageState
    ) -> None:
        config = state.config
        status = vm.run(
            stack,
            argv,
            state.run_env(),
            cwd=config.get("WorkingDir") or "/",
            user=config.get("User") or "0:0",
            stdout=self.progress.output,
            stderr=self.progress.output,
        )
        if status.code != 0:
            why = status.error or f"the command exited with code {status.code}"
            raise BuildFailed(
                f"{self.filename}:{instr.line}: {instr.text}: {why}",
                status.code,
                self.progress.tail(),
            )

    def _copy_source(
        self, op: CopyOp, instr: Instruction
    ) -> tuple[str, Callable[[], tuple[Context, CopyOp]]]:
        """What a COPY's cache key says of its source, and how to get the
        context it reads with the op to run against it (on a cache miss only).

        The build context is hashed by content; an earlier stage by its cache
        chain and an image by its id, so checking the cache needs no VM.
        """
        if op.from_ is None:
            return self.context.hash(op), lambda: (self.context, op)
        name = op.from_
        earlier = self.results.get(name.lower())
        if earlier is not None:
            source = StageResult(earlier.base, {}, earlier.layers, [], {}, earlier.key)
            key = f"stage:{earlier.key}"
        elif name.isdigit():
            raise NotFound(f"{self.filename}:{instr.line}: COPY --from={name}: no such stage")
        else:
            image = self._from_image(name, instr.line)
            source = StageResult(image, {}, [], [], {}, image.id)
            key = f"image:{image.id}"

        def files() -> tuple[Context, CopyOp]:
            from cocoon.builder.context import Context
            from cocoon.builder.ignore import Ignore

            vm, stack = _Runner(self.vms, source).view()
            root = fetch(vm, stack, op.sources, self.work)
            return Context(root, Ignore()), dataclasses.replace(op, from_=None)

        return key, files

    def _copy(
        self,
        vm: BuildVM,
        stack: list[int],
        files: Callable[[], tuple[Context, CopyOp]],
        op: CopyOp,
    ) -> None:
        context, op = files()
        owner = None if op.chown is None else _owner(vm, stack, op.chown, op.line, self.filename)
        # A destination folder already in the image takes files as if it ended in /.
        into = not op.dest.endswith("/") and vm.is_dir(stack, op.dest)
        with tempfile.TemporaryFile(dir=self.work) as tar:
            context.write_tar(op, tar, owner=owner, dest_is_dir=into)
            tar.seek(0)
            vm.extract(stack, tar)


class _VMs:
    """The build's VMs, one per base image (None: scratch), booted on first need."""

    def __init__(self, store: ImageStore, network: bool) -> None:
        self.store = store
        self.network = network
        self.booted: dict[str | None, BuildVM] = {}

    def get(self, base: Image | None) -> BuildVM:
        key = None if base is None else base.id
        if key not in self.booted:
            self.booted[key] = BuildVM(self.store, base, network=self.network)
        return self.booted[key]

    def close(self) -> None:
        for vm in self.booted.values():
            vm.close()
        self.booted.clear()


class _Runner:
    """A stage's stack of step folders in the build VM of its base, taken at
    the first step that is not cached.

    The stage's layers made before that (inherited from an earlier stage, or
    cached) wait in ``pending``: each becomes the folder that already holds it
    in that VM, or a new folder it is unpacked into.
    """

    def __init__(self, vms: _VMs, result: StageResult) -> None:
        self.vms = vms
        self.store = vms.store
        self.base = result.base
        self.pending: list[Layer] = list(result.layers)
        self.stack: list[int] = []

    def _ready(self) -> BuildVM:
        vm = self.vms.get(self.base)
        for layer in self.pending:
            folder = vm.folders.get(layer.digest)
            if folder is None or folder in self.stack:
                folder = vm.new_step()
                blob = layer.descriptor()
                with piped(
                    lambda out, b=blob: copy_tar(self.store, b, out), "a cached layer"
                ) as tar:
                    vm.unlayer(folder, tar)
                vm.folders[layer.digest] = folder
            self.stack.append(folder)
        self.pending.clear()
        return vm

    def make(self, work: Callable[[BuildVM, list[int]], None]) -> Layer:
        """Run ``work`` on a new step on top of the stack; that step's layer."""
        vm = self._ready()
        step = vm.new_step()
        work(vm, [*self.stack, step])
        layer = store_layer(self.store, lambda sink: vm.layer(step, sink))
        vm.folders[layer.digest] = step
        self.stack.append(step)
        return layer

    def drop(self, layer: Layer) -> None:
        """Forget the top step (or pending layer) ``layer``: it is no layer of the stage."""
        if self.pending and self.pending[-1] == layer:
            self.pending.pop()
        elif self.stack:
            self.stack.pop()

    def view(self) -> tuple[BuildVM, list[int]]:
        """The VM and a stack that sees the stage's files (its top step left empty)."""
        vm = self._ready()
        return vm, [*self.stack, vm.new_step()]


def _work() -> Path:
    folder = work_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _history(created_by: str, created: str, *, empty: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if empty:
        entry["empty_layer"] = True
    return entry


def _owner(vm: BuildVM, stack: list[int], chown: str, line: int, filename: str) -> tuple[int, int]:
    """``--chown=user[:group]`` as ids, names looked up in the step's root, as Docker does."""
    user, _, group = chown.partition(":")

    def lookup(name: str, table: str) -> int:
        if name.isdigit():
            return int(name)
        for entry in _read_table(vm, stack, table):
            fields = entry.split(":")
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise InvalidArgument(f"{filename}:{line}: --chown={chown}: no {name!r} in {table}")

    uid = lookup(user, "/etc/passwd")
    if not group:
        return uid, uid  # a user without a group: the same number, as Docker does
    return uid, lookup(group, "/etc/group")


def _read_table(vm: BuildVM, stack: list[int], path: str) -> list[str]:
    import io
    import tarfile

    data = bytearray()
    try:
        vm.read(stack, path, data.extend)
    except ExternalError:
        return []
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        member = tar.next()
        f = tar.extractfile(member) if member is not None else None
        return f.read(1 << 20).decode(errors="replace").splitlines() if f else []


def build(
    context: Context,
    dockerfile_text: str,
    opts: BuildOptions,
    *,
    store: ImageStore | None = None,
    progress: Quiet | None = None,
    filename: str = "Dockerfile",
) -> Image:
    """Build ``dockerfile_text`` with ``context`` (a ``build.context.Context``)."""
    from cocoon.builder.dockerfile import parse

    df = parse(dockerfile_text, filename=filename)
    store = store or ImageStore()
    progress = progress or Quiet()
    return Builder(df, context, opts, store=store, progress=progress, filename=filename).build()


__all__ = ["BuildFailed", "BuildOptions", "Builder", "StageResult", "build"]
