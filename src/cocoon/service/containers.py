"""``/containers/...``: a face over ``cocoon.container``, in dockerd's terms.

Containers are ordinary cocoon containers (records, monitors): the service
keeps only what a client may still ask about once a container is gone (its
exit code, in ``exits``) and the attach requests waiting for a start.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

from cocoon.container import inspect as details
from cocoon.container import manager
from cocoon.container.record import Record
from cocoon.container.state import State
from cocoon.errors import CocoonError, InvalidArgument, InvalidState, NotFound
from cocoon.service import create, networks, params, streams
from cocoon.service.exits import Exits
from cocoon.service.http import RAW_STREAM, Request
from cocoon.service.lookup import find, not_found

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
ATTACH_POLL = 0.25  # a start by the service wakes it at once; this finds others'


def docker_inspect(rec: Record) -> dict[str, Any]:
    """``cocoon inspect``'s view with what dockerd's clients also read."""
    view = details.view(rec)
    for name, endpoint in view["NetworkSettings"]["Networks"].items():
        endpoint.update(Aliases=networks.aliases(rec.id, name),
                        NetworkID=networks.network_id(name))  # fmt: skip
    view["HostConfig"].setdefault("LogConfig", {"Type": "json-file", "Config": {}})
    view["HostConfig"].setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
    view.update(Driver="cocoon", Platform="linux", RestartCount=0, MountLabel="",
                ProcessLabel="", AppArmorProfile="", ExecIDs=None)  # fmt: skip
    return view


class Containers:
    def __init__(self, exits: Exits) -> None:
        self.exits = exits
        exits.on_exit = self._exited
        self._lock = threading.Lock()
        # Attach requests made before the container started: docker run
        # attaches first, so that it sees the process's first byte.
        self._waiting_attach: dict[str, int] = {}
        self._started: dict[str, threading.Event] = {}

    def _exited(self, container_id: str, code: int | None) -> None:
        """From the exit watcher's thread: a --rm container's exit code outlives it."""
        try:
            removing = manager.get(container_id).remove
        except NotFound:
            removing = True
        if removing:
            self.exits.removed(container_id)

    # -- making, finding -----------------------------------------------------------

    def create(self, req: Request) -> dict[str, Any]:
        from cocoon.image.store import ImageStore

        body = req.json_object()
        image, opts = create.options(body, req.arg("name"), req.arg("platform"))
        opts, names = networks.endpoints(opts, create.endpoints(body))
        store = ImageStore()
        try:
            store.resolve(image)
        except NotFound:
            # The words docker-py and compose look for before they pull.
            raise NotFound(f"No such image: {image}") from None
        rec = manager.create(image, opts, store)
        try:
            for network, aliases in names.items():
                networks.set_aliases(rec.id, aliases, network)
        except CocoonError:
            manager.remove(rec.id, force=True)
            raise
        return {"Id": rec.id, "Warnings": []}

    def inspect(self, req: Request) -> dict[str, Any]:
        return docker_inspect(find(req.match["id"]))

    def list(self, req: Request) -> list[dict[str, Any]]:
        limit = req.number("limit", -1) or -1
        everything = req.flag("all") or limit > 0
        found = manager.containers(everything, params.filters(req.arg("filters")))
        if limit > 0:
            found = found[:limit]
        if not req.flag("size"):
            return [summary(r) for r in found]
        from cocoon.image.store import ImageStore
        from cocoon.system import container_size, image_sizes

        sizes = image_sizes(ImageStore().images())
        return [{**summary(r), "SizeRw": (use := container_size(r, sizes)).size,
                 "SizeRootFs": use.root_size} for r in found]  # fmt: skip

    # -- running -------------------------------------------------------------------

    def start(self, req: Request) -> None:
        rec = find(req.match["id"])
        if rec.state == State.RUNNING:
            req.handler.reply_empty(304)
            return
        # The main process starts once the service watches for its exit: a
        # --rm container's code would otherwise be lost with its record.
        manager.start(rec.id, wait_attach=True)
        self.exits.watch(rec.id)
        with self._lock:
            waiting = self._waiting_attach.get(rec.id, 0)
            started = self._started.pop(rec.id, None)
        if started is not None:
            started.set()  # the attached clients start the process
        if not waiting:
            with contextlib.suppress(CocoonError):
                manager.attach(rec.id).channel.close()

    def stop(self, req: Request) -> None:
        rec = find(req.match["id"])
        if rec.state != State.RUNNING:
            req.handler.reply_empty(304)
            return
        manager.stop(rec.id, timeout=req.number("t"), signal_name=req.arg("signal"))

    def restart(self, req: Request) -> None:
        rec = find(req.match["id"])
        if rec.state == State.RUNNING:
            manager.stop(rec.id, timeout=req.number("t"))
        self.start(req)

    def kill(self, req: Request) -> None:
        rec = find(req.match["id"])
        if rec.state != State.RUNNING:
            raise InvalidState(f"Container {rec.id} is not running")
        manager.kill(rec.id, req.arg("signal") or "SIGKILL")

    def pause(self, req: Request) -> None:
        rec = find(req.match["id"])
        if rec.state != State.RUNNING:
            raise InvalidState(f"Container {rec.id} is not running")
        manager.pause(rec.id)

    def unpause(self, req: Request) -> None:
        manager.unpause(find(req.match["id"]).id)

    def rename(self, req: Request) -> None:
        name = req.arg("name")
        if not name:
            raise InvalidArgument("bad parameter: name is required")
        manager.rename(find(req.match["id"]).id, name.lstrip("/"))

    def update(self, req: Request) -> dict[str, Any]:
        """Memory, CPUs and restart policy, through ``container.update`` as ``cocoon update``."""
        from cocoon.container.update import update

        update(find(req.match["id"]).id, **create.update(req.json_object()))
        return {"Warnings": []}

    def export(self, req: Request) -> None:
        """The root filesystem as a tar (``docker export``), as ``cocoon export``."""
        from cocoon.container import copy

        rec = find(req.match["id"])

        def sink(data: bytes) -> None:
            if not req.handler.answered:
                req.handler.start_stream("application/x-tar")
            req.handler.chunk(data)

        copy.export(rec.id, sink)
        if not req.handler.answered:
            req.handler.start_stream("application/x-tar")
        req.handler.end_stream()

    def delete(self, req: Request) -> None:
        rec = find(req.match["id"])
        if rec.state == State.RUNNING and not req.flag("force"):
            raise InvalidState(
                f"You cannot remove a running container {rec.id}. "
                "Stop the container before attempting removal or force remove"
            )
        manager.remove(rec.id, force=req.flag("force"))

    def prune(self, req: Request) -> dict[str, Any]:
        if params.filters(req.arg("filters")):
            raise InvalidArgument("cocoon's container prune takes no filters")
        gone = manager.prune()
        return {"ContainersDeleted": [r.id for r in gone], "SpaceReclaimed": 0}

    def wait(self, req: Request) -> None:
        condition = req.arg("condition") or "not-running"
        if condition not in WAIT_CONDITIONS:
            raise InvalidArgument(f"invalid condition {condition!r}")
        rec = find(req.match["id"])
        seen, since = self.exits.seen(rec.id), time.time()
        if rec.state == State.RUNNING:
            self.exits.watch(rec.id)
        # As dockerd: the headers now (the client starts the container once
        # they come), the answer when the container has exited.
        req.handler.start_stream("application/json")
        if condition == "not-running" and rec.state != State.RUNNING:
            # Never started: nothing failed (dockerd's 0 too).
            code = 0 if rec.state == State.CREATED else rec.exit_code
        else:
            code = self.exits.next_exit(rec.id, seen, since)
        if condition == "removed":
            self.exits.removed(rec.id)
        error = None if code is not None else {"Message": "the container's exit code is unknown"}
        body = {"StatusCode": -1 if code is None else code, "Error": error}
        req.handler.chunk(json.dumps(body).encode() + b"\n")
        req.handler.end_stream()

    # -- output and input -----------------------------------------------------------

    def attach(self, req: Request) -> None:
        rec = find(req.match["id"])
        if not req.flag("stream"):
            raise InvalidArgument("cocoon serves attach only with stream=1 (logs give the rest)")
        stdin = req.flag("stdin")
        tty = rec.settings.process.tty is not None
        if rec.state != State.RUNNING:
            with self._lock:
                self._waiting_attach[rec.id] = self._waiting_attach.get(rec.id, 0) + 1
                started = self._started.setdefault(rec.id, threading.Event())
        else:
            started = None
        try:
            req.handler.hijack()
            if started is not None:
                self._until_started(rec.id, started)
            process = manager.attach(rec.id)
        finally:
            if started is not None:
                with self._lock:
                    self._waiting_attach[rec.id] -= 1
                    if not self._waiting_attach[rec.id]:
                        del self._waiting_attach[rec.id]
        try:
            streams.relay(process, req.handler.connection, req.handler.rfile, tty=tty,
                          stdin=stdin and rec.settings.process.stdin,
                          stdout=req.flag("stdout"), stderr=req.flag("stderr"))  # fmt: skip
        finally:
            process.channel.close()

    @staticmethod
    def _until_started(container_id: str, started: threading.Event) -> None:
        """Wait for a start through the service, or one by anyone else (``cocoon start``)."""
        while not started.wait(ATTACH_POLL):
            if manager.get(container_id).state == State.RUNNING:
                return

    def logs(self, req: Request) -> None:
        from cocoon.container import logs

        rec = find(req.match["id"])
        wanted = {n for n in ("stdout", "stderr") if req.flag(n)}
        if not wanted:
            raise InvalidArgument("you must choose at least one stream")
        tail_text = req.arg("tail") or "all"
        try:
            tail = None if tail_text == "all" else max(0, int(tail_text))
        except ValueError:
            raise InvalidArgument(f"invalid tail {tail_text!r}") from None
        since, until = params.seconds(req.arg("since")), params.seconds(req.arg("until"))
        stamps = req.flag("timestamps")
        encode = streams.encoder(rec.settings.process.tty is not None)
        entries = logs.shown(rec.id, tail=tail, keep_following=req.flag("follow"),
                             streams=wanted, since=since, until=until or None)  # fmt: skip
        req.handler.start_stream(RAW_STREAM)
        for entry in entries:
            data = logs.stamp(entry.time) + entry.data if stamps else entry.data
            which = streams.STDOUT if entry.stream == "stdout" else streams.STDERR
            req.handler.chunk(encode(which, data))
            req.handler.wfile.flush()
        req.handler.end_stream()

    def top(self, req: Request) -> dict[str, Any]:
        """The processes, from the image's ``ps`` (dockerd runs the host's)."""
        from cocoon.container import top

        rec = find(req.match["id"])
        if rec.state != State.RUNNING:
            raise InvalidState(f"Container {rec.id} is not running")
        return top.table(top.ps(rec.id, (req.arg("ps_args") or "").split()))

    def resize(self, req: Request) -> None:
        rec = find(req.match["id"])
        if rec.state != State.RUNNING:
            raise InvalidState(f"Container {rec.id} is not running")
        # A terminal's size goes with an attached session; the monitor passes
        # it to the main process.
        process = manager.attach(rec.id)
        try:
            process.resize(req.number("h", 24) or 24, req.number("w", 80) or 80)
        finally:
            process.channel.close()


def summary(rec: Record) -> dict[str, Any]:
    """One container as ``GET /containers/json`` lists it."""
    view = docker_inspect(rec)
    ports = []
    for key, bindings in view["NetworkSettings"]["Ports"].items():
        port, _, protocol = key.partition("/")
        for b in bindings or []:
            ports.append({"IP": b["HostIp"], "PrivatePort": int(port),
                          "PublicPort": int(b["HostPort"]), "Type": protocol})  # fmt: skip
    return {
        "Id": rec.id,
        "Names": [f"/{rec.name}"],
        "Image": rec.image,
        "ImageID": rec.image_id,
        "Command": " ".join(rec.command),
        "Created": int(rec.created),
        "Ports": ports,
        "Labels": view["Config"]["Labels"],
        "State": rec.state.value,
        "Status": details.status(rec, time.time()),
        "HostConfig": {"NetworkMode": view["HostConfig"]["NetworkMode"]},
        "NetworkSettings": {"Networks": view["NetworkSettings"]["Networks"]},
        "Mounts": [],
    }


__all__ = ["Containers", "docker_inspect", "find", "not_found", "summary"]
