"""Pull: manifests, then the config and layers in parallel, each verified, then the tag.

Every blob streams from the registry straight into ``ImageStore.put_blob``,
which hashes it on the way to a temporary file and only renames it into the
store when the digest and size match; a broken connection resumes with an
HTTP Range request where the registry allows it, otherwise the blob is
dropped. The whole pull is one ``store.transaction()``: garbage collection
cannot take blobs that are not tagged yet, and a failed or interrupted pull
(or an image whose layers would not unpack) leaves no blob behind.

Before the tag, the image's root disk is built (``rootfs.disks.prepare``),
which unpacks every layer by the rules a run applies: the first run then
starts as fast as any later one, and a layer that would not unpack fails
the pull.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

from urllib3.exceptions import HTTPError

from cocoon import reference as references
from cocoon.errors import Corrupt, ExternalError
from cocoon.image import digest as digests
from cocoon.image.model import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Image,
    Index,
    Manifest,
    Platform,
    is_index,
)
from cocoon.image.registry.client import RegistryClient, Response, discard
from cocoon.image.registry.progress import Quiet, Reporter
from cocoon.image.store import MAX_DOCUMENT, MAX_NESTING, ImageStore
from cocoon.rootfs import disks
from cocoon.rootfs.layers import check_image

JOBS = 4  # blobs downloaded at once: enough to fill a link, few enough to be polite
RESUMES = 5  # reconnections per blob before giving up on it
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))


class _Cancelled(Exception):
    """Another blob failed, or the user interrupted: stop this one."""


@dataclass(frozen=True, slots=True)
class _Document:
    descriptor: Descriptor
    data: bytes


def pull(
    reference: str | references.Reference,
    *,
    store: ImageStore | None = None,
    platform: Platform | None = None,
    insecure: bool = False,
    progress: Reporter | None = None,
    jobs: int = JOBS,
    prepare: bool = True,
) -> Image:
    """Pull ``reference`` into the store, tag it, and return the image.

    With ``prepare`` (and the host's platform), its root disk is built too.
    """
    ref = reference if isinstance(reference, references.Reference) else references.parse(reference)
    store = store or ImageStore()
    want = platform or store.platform
    with RegistryClient(ref.registry, insecure=insecure, connections=jobs + 1) as client:
        puller = _Puller(client, ref, store, progress or Quiet())
        with store.transaction():
            documents = puller.documents(want)
            manifest = Manifest.parse(documents[-1].data, f"{ref}: manifest")
            puller.blobs((manifest.config, *manifest.layers), jobs)
            stored = [store.put_bytes(d.data, d.descriptor.media_type) for d in reversed(documents)]
            # The store resolves an index for its own platform; for another
            # platform, the name has to point at that platform's manifest.
            top = stored[-1] if want == store.platform else stored[0]
            # As Docker does, a layer that could not be unpacked is refused now.
            image = store.image(stored[0].digest)
            if prepare and want == store.platform:
                disks.prepare(store, image, puller.progress)
            else:
                check_image(store, image)
            store.tag(ref, top)
    return store.image(top.digest)


class _Puller:
    def __init__(
        self,
        client: RegistryClient,
        ref: references.Reference,
        store: ImageStore,
        progress: Reporter,
    ) -> None:
        self.client = client
        self.ref = ref
        self.store = store
        self.progress = progress
        self.scope = f"repository:{ref.repository}:pull"
        self.cancel = threading.Event()
        self.streams: set[_BlobStream] = set()  # downloading now, to unblock on cancel
        self.lock = threading.Lock()

    def documents(self, want: Platform) -> list[_Document]:
        """The manifest chain from the reference down to ``want``'s manifest, top first."""
        chain = [self._manifest(self.ref.digest or self.ref.tag or "latest", self.ref.digest)]
        for _ in range(MAX_NESTING):
            top = chain[-1]
            if not is_index(top.descriptor.media_type, top.data):
                return chain
            what = f"{self.ref}: index {top.descriptor.digest}"
            chosen = Index.parse(top.data, what).select(want, what)
            chain.append(self._manifest(chosen.digest, chosen.digest))
        raise Corrupt(f"{self.ref}: indexes nested too deep")

    def _manifest(self, name: str, digest: str | None) -> _Document:
        path = f"/v2/{self.ref.repository}/manifests/{name}"
        response = self.client.request("GET", path, scope=self.scope, headers={"Accept": ACCEPT})
        media_type = (response.headers.get("Content-Type") or "").partition(";")[0].strip()
        claimed = response.headers.get("Docker-Content-Digest")
        data = self.client.read(response, MAX_DOCUMENT)
        actual = digests.of_bytes(data)
        # By digest, the content must match it; by tag, the registry's own
        # claim is all there is to check against.
        expected = digest or claimed
        if expected is not None and actual != expected:
            raise Corrupt(f"{self.ref}: manifest {expected} does not match its digest ({actual})")
        if media_type not in (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST):
            media_type = _media_type_of(data)
        return _Document(Descriptor(media_type, actual, len(data)), data)

    def blobs(self, wanted: tuple[Descriptor, ...], jobs: int) -> None:
        missing = {b.digest: b for b in wanted if not self.store.has_blob(b.digest)}
        if not missing:
            return
        pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="pull")
        try:
            futures = [pool.submit(self._blob, blob) for blob in missing.values()]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                if (error := future.exception()) is not None:
                    raise error
        finally:
            # Also on Ctrl-C: workers notice, and put_blob removes their temp files.
            # A worker waiting on a stalled registry would notice only at the
            # read timeout, so its socket is shut under it.
            self.cancel.set()
            with self.lock:
                for stream in self.streams:
                    stream.abort()
            pool.shutdown(wait=True, cancel_futures=True)

    def _blob(self, blob: Descriptor) -> None:
        if self.cancel.is_set():
            raise _Cancelled
        self.progress.start(blob.digest, blob.size, "Downloading")
        stream = _BlobStream(self, blob)
        with self.lock:
            self.streams.add(stream)
        try:
            if self.cancel.is_set():  # cancelled while it connected: abort() missed it
                raise _Cancelled
            self.store.put_blob(stream, blob.digest, size=blob.size, media_type=blob.media_type)
        finally:
            with self.lock:
                self.streams.discard(stream)
            stream.close()
        self.progress.finish(blob.digest, "Pull complete")


class _BlobStream:
    """A blob's bytes from the registry, reconnecting with Range when the connection drops."""

    def __init__(self, puller: _Puller, blob: Descriptor) -> None:
        self.puller = puller
        self.blob = blob
        self.path = f"/v2/{puller.ref.repository}/blobs/{blob.digest}"
        self.offset = 0
        self.resumes = 0
        self.response: Response | None = self._open()

    def _open(self) -> Response:
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        response = self.puller.client.request(
            "GET", self.path, scope=self.puller.scope, headers=headers, expect=(200, 206)
        )
        if self.offset and response.status != 206:
            discard(response)
            raise ExternalError(
                f"{self.puller.ref}: the connection broke while downloading {self.blob.digest} "
                "and the registry cannot resume it"
            )
        return response

    def read(self, n: int = -1) -> bytes:
        while True:
            if self.puller.cancel.is_set():
                raise _Cancelled
            assert self.response is not None
            try:
                data = self.response.read(n if n > 0 else digests.CHUNK)
            except HTTPError as e:
                self._resume(e)
                continue
            # A response that ends early (no error, too few bytes) broke too.
            if not data and self.offset < self.blob.size:
                self._resume(ExternalError("connection closed early"))
                continue
            self.offset += len(data)
            self.puller.progress.advance(self.blob.digest, len(data))
            return data

    def _resume(self, cause: Exception) -> None:
        if self.puller.cancel.is_set():
            raise _Cancelled  # the break was abort()'s doing
        self.resumes += 1
        if self.resumes > RESUMES:
            raise ExternalError(
                f"{self.puller.ref}: downloading {self.blob.digest} failed: {cause}"
            ) from cause
        self.close()
        self.response = self._open()

    def abort(self) -> None:
        """Unblock a read in another thread (it then fails)."""
        response = self.response  # the worker may drop it meanwhile
        # Finished already, its connection back in the pool: nothing to unblock.
        with contextlib.suppress(RuntimeError, OSError):
            if response is not None:
                response.shutdown()

    def close(self) -> None:
        if self.response is None:
            return
        if self.offset == self.blob.size:
            self.response.release_conn()
        else:
            self.response.close()  # bytes left unread: this connection cannot be reused
        self.response = None


def _media_type_of(data: bytes) -> str:
    """The media type of a document a registry served without a usable Content-Type."""
    if is_index("", data):
        return Index.parse(data, "index").media_type
    return Manifest.parse(data, "manifest").media_type


__all__ = ["JOBS", "pull"]
