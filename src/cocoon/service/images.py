"""``/images/...``: pull with dockerd's progress lines, list, inspect, tag, remove."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any

from cocoon import reference as references
from cocoon.errors import CocoonError, InvalidArgument, NotFound, Unsupported
from cocoon.image.model import Image
from cocoon.image.store import ImageStore
from cocoon.service import params
from cocoon.service.http import Request

PROGRESS_EVERY = 0.2  # seconds between two progress lines of one layer


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


class Progress:
    """A pull's or push's progress as dockerd's JSON lines; the stream starts with the first.

    Until then a failure is an ordinary HTTP error (404, 500); after, it is
    an ``{"error": ...}`` line, as dockerd sends it.
    """

    def __init__(self, req: Request) -> None:
        self.req = req
        self.lock = threading.Lock()
        self.started = False
        self.done: dict[str, int] = {}
        self.verbs: dict[str, str] = {}
        self.last: dict[str, float] = {}

    def line(self, **fields: Any) -> None:
        with self.lock:
            if not self.started:
                self.req.handler.start_stream("application/json")
                self.started = True
            self.req.handler.chunk(json.dumps(fields).encode() + b"\r\n")
            self.req.handler.wfile.flush()

    def fail(self, error: CocoonError) -> None:
        if not self.started:
            raise error
        self.line(errorDetail={"message": str(error)}, error=str(error))

    def start(self, digest: str, size: int, verb: str) -> None:
        self.done[digest], self.verbs[digest] = 0, verb
        self.line(status=verb, progressDetail={"current": 0, "total": size}, id=_short(digest))

    def advance(self, digest: str, n: int) -> None:
        self.done[digest] = self.done.get(digest, 0) + n
        now = time.monotonic()
        if now - self.last.get(digest, 0) >= PROGRESS_EVERY:
            self.last[digest] = now
            self.line(status=self.verbs.get(digest, ""), id=_short(digest),
                      progressDetail={"current": self.done[digest]})  # fmt: skip

    def finish(self, digest: str, note: str) -> None:
        self.line(status=note, progressDetail={}, id=_short(digest))


def pull(req: Request) -> None:
    from cocoon.image.registry import parse_platform
    from cocoon.image.registry.fetch import pull as fetch

    if req.arg("fromSrc"):
        raise Unsupported("cocoon does not serve image import (fromSrc); use cocoon image load")
    name, tag = req.arg("fromImage") or "", req.arg("tag") or ""
    if not name:
        raise InvalidArgument("fromImage is required")
    text = name if not tag else f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"
    ref = references.parse(text)
    platform = parse_platform(req.arg("platform") or "") if req.arg("platform") else None
    progress = Progress(req)
    try:
        image = fetch(ref, store=ImageStore(), platform=platform, progress=progress)
    except CocoonError as e:
        progress.fail(e)
    else:
        progress.line(status=f"Digest: {image.manifest_digest}")
        progress.line(status=f"Status: Image is up to date for {ref.familiar()}")
    req.handler.end_stream()


def push(req: Request) -> None:
    """``POST /images/{name}/push?tag=``: every stored tag of the repository when no tag."""
    from cocoon.image.registry.upload import push as upload

    _no_credentials(req.handler.headers.get("X-Registry-Auth"))
    name, tag = req.match["name"], req.arg("tag") or ""
    repository = references.parse(name).name
    store = ImageStore()
    if tag:
        targets = [str(references.parse(f"{name}:{tag}"))]
        find(targets[0])
    else:
        targets = sorted(n for i in store.images() for n in i.references
                         if references.parse(n).name == repository)  # fmt: skip
        if not targets:
            raise NotFound(f"An image does not exist locally with the tag: {name}")
    progress = Progress(req)
    progress.line(status=f"The push refers to repository [{repository}]")
    for target in targets:
        try:
            digest = upload(target, store=store, progress=progress)
        except CocoonError as e:
            progress.fail(e)
            break
        shown = references.parse(target).tag
        progress.line(status=f"{shown}: digest: {digest}")
        progress.line(progressDetail={}, aux={"Tag": shown, "Digest": digest})
    req.handler.end_stream()


def _no_credentials(header: str | None) -> None:
    """Credentials in the request cannot be honoured: cocoon pushes with its own logins."""
    import base64

    if not header:
        return
    try:
        auth = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        raise InvalidArgument("X-Registry-Auth is not base64 JSON") from None
    if isinstance(auth, dict) and any(auth.get(k) for k in ("username", "password",
                                                            "identitytoken", "auth")):  # fmt: skip
        raise Unsupported("credentials through the API: use `cocoon registry login` instead")


def find(name: str) -> Image:
    try:
        return ImageStore().resolve(name)
    except (NotFound, InvalidArgument):
        raise NotFound(f"No such image: {name}") from None


def _tags(image: Image) -> list[str]:
    return [references.parse(n).familiar() for n in image.references]


def _created(image: Image) -> int:
    text = image.config.created
    if not text:
        return 0
    try:  # whole seconds are enough; Go writes nanoseconds, which Python does not parse
        whole = text.rstrip("Z").partition(".")[0]
        return int(datetime.fromisoformat(whole + "+00:00").timestamp())
    except ValueError:
        return 0


def summary(image: Image, size: int | None = None) -> dict[str, Any]:
    """One image as ``GET /images/json`` lists it; ``size``: its unpacked bytes, if known."""
    if size is None:
        from cocoon.rootfs.disks import image_size

        size = image_size(image)
    return {
        "Id": image.id,
        "ParentId": "",
        "RepoTags": _tags(image),
        "RepoDigests": [],
        "Created": _created(image),
        "Size": size,
        "VirtualSize": size,
        "SharedSize": -1,
        "Labels": dict(image.config.labels),
        "Containers": -1,
    }


def list_images(req: Request) -> list[dict[str, Any]]:
    from cocoon.image import filters

    wanted = filters.checked(params.filters(req.arg("filters")))
    return [summary(image) for image in ImageStore().images() if filters.matches(image, wanted)]


def prune(req: Request) -> dict[str, Any]:
    """Untagged images, as ``docker image prune`` (without ``-a``) asks."""
    from cocoon.diskuse import allocated

    wanted = params.filters(req.arg("filters"))
    if set(wanted) - {"dangling"} or wanted.get("dangling", ["true"]) not in (["true"], ["1"]):
        raise Unsupported("cocoon prunes only untagged images (dangling=true): "
                          "remove tagged ones by name")  # fmt: skip
    store = ImageStore()
    before = allocated(store.root)
    deleted, _ = store.prune()
    return {"ImagesDeleted": [{"Deleted": d} for d in deleted],
            "SpaceReclaimed": max(0, before - allocated(store.root))}  # fmt: skip


def inspect(req: Request) -> dict[str, Any]:
    """``cocoon image inspect``'s view with what dockerd's clients also read, in its
    terms: familiar names, ``""`` for what is unset, ports as a map, unpacked size."""
    from cocoon.image.inspect import view
    from cocoon.rootfs.disks import image_size

    image = find(req.match["name"])
    details, config = view(image), image.config
    size = image_size(image)
    shown = details["Config"]
    return {
        **details,
        "RepoTags": _tags(image),
        "RepoDigests": [],
        "Parent": "",
        "Comment": "",
        "Created": details["Created"] or "",
        "Container": "",
        "DockerVersion": "",
        "Author": "",
        "Config": {
            **shown,
            "WorkingDir": shown["WorkingDir"] or "",
            "User": shown["User"] or "",
            "ExposedPorts": {port: {} for port in shown["ExposedPorts"]},
            "StopSignal": shown["StopSignal"] or "",
        },
        "Architecture": config.architecture,
        "Variant": config.variant or "",
        "Os": config.os,
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Name": "cocoon", "Data": {}},
        "RootFS": {"Type": "layers", "Layers": list(config.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def tag(req: Request) -> None:
    find(req.match["name"])  # dockerd's 404 for an unknown image
    repo = req.arg("repo") or ""
    if not repo:
        raise InvalidArgument("repository name is required")
    target = f"{repo}:{req.arg('tag')}" if req.arg("tag") else repo
    # By the name given: an id that several stored variants share is ambiguous.
    ImageStore().tag_image(req.match["name"], target)
    req.handler.reply_empty(201)


def remove(req: Request) -> list[dict[str, str]]:
    name = req.match["name"]
    find(name)  # dockerd's 404 for an unknown image
    removed = ImageStore().remove(name, force=req.flag("force"))
    answer = [{"Untagged": references.parse(n).familiar()} for n in removed.untagged]
    if removed.deleted:
        answer.append({"Deleted": removed.deleted})
    return answer


class _ChunkWriter:
    """A file-like end for ``archive.save``: each write goes out as one chunk."""

    def __init__(self, req: Request) -> None:
        self.req = req

    def write(self, data: bytes) -> int:
        self.req.handler.chunk(bytes(data))
        return len(data)

    def flush(self) -> None:
        self.req.handler.wfile.flush()


def save(req: Request) -> None:
    """``GET /images/{name}/get``, ``/images/get?names=``: one archive ``docker load`` reads."""
    from cocoon.image.archive import save as write

    names = [req.match["name"]] if "name" in req.match else req.params.get("names", [])
    if not names:
        raise InvalidArgument("name at least one image (names=)")
    for name in names:
        find(name)  # a missing one is a 404 before the stream starts
    req.handler.start_stream("application/x-tar")
    write(ImageStore(), names, _ChunkWriter(req))  # type: ignore[arg-type]
    req.handler.end_stream()


def load(req: Request) -> None:
    """``POST /images/load``: a tar (OCI layout or docker-archive) in the body."""
    import tempfile

    from cocoon.image.archive import load as read

    store = ImageStore()
    store.root.mkdir(parents=True, exist_ok=True)
    # Spooled beside the store, not in /tmp: archives are as large as images.
    with tempfile.TemporaryFile(dir=store.root) as spool:
        for piece in req.handler.body_chunks():
            spool.write(piece)
        spool.seek(0)
        loaded = read(store, spool)
    # One line a name, as dockerd: "Loaded image ID:" for an image without one.
    said = [f"Loaded image: {n}" for i in loaded for n in _tags(i)]
    said += [f"Loaded image ID: {i.id}" for i in loaded if not i.references]
    body = b"".join(json.dumps({"stream": f"{line}\n"}).encode() + b"\n" for line in said)
    req.handler.reply_bytes(200, body, "application/json")


__all__ = ["Progress", "inspect", "list_images", "load", "pull", "push", "remove", "save", "tag"]
