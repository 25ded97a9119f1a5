"""Push: blobs the registry lacks (in parallel), then manifests, byte for byte.

Blobs and manifests go up exactly as stored, so every digest on the
registry is the digest in the local store. A blob the registry has already
(HEAD) is skipped; a small one goes up in one PUT, a large one in PATCH
chunks. An upload that breaks is restarted from a new upload session.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from cocoon import reference as references
from cocoon.errors import Corrupt, ExternalError, InvalidArgument
from cocoon.image.model import Descriptor, Index, Manifest, is_index
from cocoon.image.registry.client import RegistryClient, discard
from cocoon.image.registry.fetch import JOBS
from cocoon.image.registry.progress import Quiet, Reporter
from cocoon.image.store import ImageStore

CHUNKED_ABOVE = 64 << 20  # bytes; larger blobs go up in chunks
CHUNK = 16 << 20
ATTEMPTS = 3  # whole-upload attempts per blob


def push(
    source: str,
    destination: str | None = None,
    *,
    store: ImageStore | None = None,
    insecure: bool = False,
    progress: Reporter | None = None,
    jobs: int = JOBS,
    chunked_above: int = CHUNKED_ABOVE,
) -> str:
    """Push the stored image ``source`` as ``destination`` (default: its own name).

    Returns the digest the destination now points at.
    """
    store = store or ImageStore()
    image = store.resolve(source)
    target = references.parse(destination or source)
    if destination is None and str(target) not in image.references:
        raise InvalidArgument(f"{source!r} is not a name of the image: say where to push it")
    with RegistryClient(target.registry, insecure=insecure, connections=jobs + 1) as client:
        pusher = _Pusher(client, target, store, progress or Quiet(), chunked_above)
        manifests = pusher.manifests(image.digest, image.manifest_digest)
        blobs = {b.digest: b for b in (image.manifest.config, *image.layers)}
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="push") as pool:
            for future in [pool.submit(pusher.blob, b) for b in blobs.values()]:
                future.result()
        for i, manifest in enumerate(manifests):
            last = i == len(manifests) - 1
            pusher.manifest(manifest, target.tag if last and target.tag else manifest.digest)
        return manifests[-1].digest


class _Pusher:
    def __init__(
        self,
        client: RegistryClient,
        target: references.Reference,
        store: ImageStore,
        progress: Reporter,
        chunked_above: int,
    ) -> None:
        self.client = client
        self.target = target
        self.store = store
        self.progress = progress
        self.chunked_above = chunked_above
        self.scope = f"repository:{target.repository}:pull,push"

    def manifests(self, top: str, manifest: str) -> list[Descriptor]:
        """What to put, children before the index that names them.

        The store keeps only this host's manifest of a multi-platform index;
        pushing the index would name manifests we cannot send, so then only
        the platform's manifest goes up.
        """
        if top == manifest:
            return [self._descriptor(manifest)]
        index = Index.parse(self.store.read_blob(top, "index"), f"index {top}")
        if all(self.store.has_blob(m.digest) for m in index.manifests) and all(
            not is_index(m.media_type, self.store.read_blob(m.digest)) for m in index.manifests
        ):
            return [*index.manifests, self._descriptor(top)]
        return [self._descriptor(manifest)]

    def _descriptor(self, digest: str) -> Descriptor:
        data = self.store.read_blob(digest, "manifest")
        if is_index("", data):
            media_type = Index.parse(data, f"index {digest}").media_type
        else:
            media_type = Manifest.parse(data, f"manifest {digest}").media_type
        return Descriptor(media_type, digest, len(data))

    def blob(self, blob: Descriptor) -> None:
        path = f"/v2/{self.target.repository}/blobs/{blob.digest}"
        head = self.client.request("HEAD", path, scope=self.scope, expect=(200, 404))
        discard(head)
        if head.status == 200:
            self.progress.start(blob.digest, blob.size, "Pushing")
            self.progress.finish(blob.digest, "Layer already exists")
            return
        self.progress.start(blob.digest, blob.size, "Pushing")
        for attempt in range(ATTEMPTS):
            try:
                self._upload(blob)
                break
            except ExternalError:
                if attempt + 1 == ATTEMPTS:
                    raise
        self.progress.finish(blob.digest, "Pushed")

    def _upload(self, blob: Descriptor) -> None:
        start = self.client.request(
            "POST", f"/v2/{self.target.repository}/blobs/uploads/", scope=self.scope, expect=(202,)
        )
        discard(start)
        location = _location(start.headers.get("Location"), self.target)
        with self.store.open_blob(blob.digest) as f:
            if blob.size <= self.chunked_above:
                self._put(location, blob, f.read(), {"Content-Type": "application/octet-stream"})
                self.progress.advance(blob.digest, blob.size)
                return
            offset = 0
            while chunk := f.read(CHUNK):
                end = offset + len(chunk) - 1
                response = self.client.request(
                    "PATCH",
                    self.client.url(location),
                    scope=self.scope,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{end}",
                    },
                    body=chunk,
                    expect=(202,),
                )
                discard(response)
                location = _location(response.headers.get("Location"), self.target)
                offset = end + 1
                self.progress.advance(blob.digest, len(chunk))
        self._put(location, blob, b"", {})

    def _put(self, location: str, blob: Descriptor, body: bytes, headers: dict[str, str]) -> None:
        query = urlencode({"digest": blob.digest})
        url = self.client.url(location) + ("&" if "?" in location else "?") + query
        response = self.client.request(
            "PUT", url, scope=self.scope, headers=headers, body=body, expect=(201,)
        )
        discard(response)

    def manifest(self, manifest: Descriptor, name: str) -> None:
        data = self.store.read_blob(manifest.digest, "manifest")
        response = self.client.request(
            "PUT",
            f"/v2/{self.target.repository}/manifests/{name}",
            scope=self.scope,
            headers={"Content-Type": manifest.media_type},
            body=data,
            expect=(201,),
        )
        discard(response)
        echoed = response.headers.get("Docker-Content-Digest")
        if echoed and echoed != manifest.digest:
            raise Corrupt(
                f"{self.target}: the registry stored manifest {manifest.digest} as {echoed}"
            )


def _location(header: str | None, target: references.Reference) -> str:
    if not header:
        raise ExternalError(f"registry {target.registry} gave no upload location")
    return header


__all__ = ["push"]
