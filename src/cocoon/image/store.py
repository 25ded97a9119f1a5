"""The local image store: content-addressed blobs in an OCI image layout.

    <root>/oci-layout, index.json, blobs/sha256/<hex>
    <root>/.ingest/      blobs being written (same filesystem, so rename is atomic)
    <root>/.index.lock   held while index.json is rewritten
    <root>/.gc.lock      shared by writers, exclusive for garbage collection

The store folder is 0700 and blobs 0400: they hold whatever archives and
registries sent, secrets included.

A tag is an index.json entry whose ``org.opencontainers.image.ref.name`` is
the full normalised reference; an entry without one keeps an untagged image.
Blobs are verified when written, and manifests and configs again when read.
Readers take no lock: index.json is only ever replaced by rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cocoon import paths
from cocoon import reference as references
from cocoon.errors import CocoonError, Corrupt, InvalidArgument, InvalidState, NotFound
from cocoon.files import write_atomic
from cocoon.image import digest as digests
from cocoon.image.model import (
    OCI_INDEX,
    REF_NAME,
    Descriptor,
    Image,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    is_index,
    loads,
)
from cocoon.locks import flock

OCTET_STREAM = "application/octet-stream"
MAX_DOCUMENT = 64 << 20  # manifests and configs are read whole; refuse absurd ones
MAX_NESTING = 4  # indexes within indexes, before a manifest must come
# Blobs are what images and archives hold, secrets included: only the store's
# owner reads them (no store is shared between users).
BLOB_MODE = 0o400
_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})")


@dataclass(frozen=True, slots=True)
class Removed:
    """What a removal did: the names it untagged and the image it deleted."""

    untagged: tuple[str, ...]
    deleted: str | None  # the id (config digest) of the image that is gone, if it is


def default_root() -> Path:
    return paths.state_dir() / "images"


class ImageStore:
    def __init__(self, root: Path | str | None = None, platform: Platform | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.platform = platform or Platform.host()
        self._written = 0  # blobs this instance stored: has a transaction anything to undo?

    # -- blobs ---------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digests.hex_of(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the image store") from None

    def read_blob(self, digest: str, what: str = "blob") -> bytes:
        """The whole blob, checked against its digest (for manifests and configs)."""
        with self.open_blob(digest) as f:
            data = f.read(MAX_DOCUMENT + 1)
        if len(data) > MAX_DOCUMENT:
            raise Corrupt(f"{what} {digest} is larger than {MAX_DOCUMENT >> 20} MiB")
        return digests.verify_bytes(data, digest, what)

    def put_blob(
        self,
        source: digests.Readable | Path,
        digest: str | None = None,
        *,
        size: int | None = None,
        media_type: str = OCTET_STREAM,
    ) -> Descriptor:
        """Store a blob; if ``digest``/``size`` are given the content must match them."""
        if isinstance(source, Path):
            with open(source, "rb") as f:
                return self.put_blob(f, digest, size=size, media_type=media_type)
        if digest is not None:
            digests.check(digest)
        with self.ingest():
            if digest is not None and self.has_blob(digest):
                return self._existing(digest, size, media_type)
            return self._write_blob(source, digest, size, media_type)

    def put_bytes(self, data: bytes, media_type: str = OCTET_STREAM) -> Descriptor:
        with self.ingest():
            digest = digests.of_bytes(data)
            if self.has_blob(digest):
                return self._existing(digest, len(data), media_type)
            return self._write_blob(io.BytesIO(data), digest, len(data), media_type)

    @contextlib.contextmanager
    def ingest(self) -> Iterator[None]:
        """Hold off garbage collection while blobs are written but not yet tagged.

        Between a pull's or load's first blob and its tag, nothing reaches
        those blobs from index.json.
        """
        self._init_layout()
        with flock(self.root / ".gc.lock", fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``ingest`` for a whole pull or load: if it fails, what it stored goes.

        The collection waits for other writers, whose blobs are then tagged
        (reachable, kept) or garbage too; a failure that stored nothing does
        not wait. Not for use inside ``ingest``: that would wait for itself.
        """
        written = self._written
        try:
            with self.ingest():
                yield
        except BaseException:
            if self._written != written:
                self.gc(wait=True)
            raise

    def _existing(self, digest: str, size: int | None, media_type: str) -> Descriptor:
        actual = self.blob_path(digest).stat().st_size
        if size is not None and size != actual:
            raise Corrupt(f"blob {digest}: expected {size} bytes, the stored copy has {actual}")
        return Descriptor(media_type, digest, actual)

    def _write_blob(
        self, source: digests.Readable, digest: str | None, size: int | None, media_type: str
    ) -> Descriptor:
        import tempfile  # here: a pull or load writes blobs, a run only reads them

        reader = digests.HashingReader(source)
        fd, tmp = tempfile.mkstemp(dir=self.root / ".ingest", prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                _copy(reader, out, size)
                out.flush()
                os.fsync(out.fileno())
            _check_content(reader, digest, size)
            os.chmod(tmp, BLOB_MODE)
            self._written += 1  # counted before it lands: an interruption just after is undone too
            os.replace(tmp, self.blob_path(reader.digest))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return Descriptor(media_type, reader.digest, reader.size)

    # -- tags ----------------------------------------------------------------

    def tag(self, reference: str | references.Reference, manifest: Descriptor) -> str:
        """Point ``reference`` at a stored manifest or index; return the normalised name."""
        name = str(_as_reference(reference))
        entry = Descriptor(
            manifest.media_type, manifest.digest, manifest.size, {REF_NAME: name}, manifest.platform
        )
        with self.ingest():
            if not self.has_blob(manifest.digest):
                raise NotFound(f"cannot tag {name}: manifest {manifest.digest} is not stored")
            self._update_index(lambda entries: _retag(entries, entry))
        return name

    def tag_image(self, source: str, target: str | references.Reference) -> str:
        """Name the image ``source`` resolves to (a name or an id) ``target`` too, as
        ``docker tag``: the name points at what the image's own names point at (its
        manifest, or the index it came in). The normalised new name."""
        image = self.resolve(source)
        entry = next((e for e in self.entries() if e.digest == image.digest), None)
        media_type = entry.media_type if entry is not None else image.manifest.media_type
        size = self.blob_path(image.digest).stat().st_size
        return self.tag(target, Descriptor(media_type, image.digest, size))

    def keep(self, manifest: Descriptor) -> None:
        """Hold an image that has no tag, so it stays reachable by its id."""
        entry = Descriptor(manifest.media_type, manifest.digest, manifest.size)
        with self.ingest():
            if not self.has_blob(manifest.digest):
                raise NotFound(f"manifest {manifest.digest} is not stored")
            self._update_index(
                lambda entries: (
                    entries if any(e.digest == entry.digest for e in entries) else [*entries, entry]
                )
            )

    def untag(self, reference: str | references.Reference) -> str:
        """Remove a tag; return the digest it pointed at (the image may become garbage)."""
        name = str(_as_reference(reference))
        found: list[str] = []

        def drop(entries: list[Descriptor]) -> list[Descriptor]:
            found.extend(e.digest for e in entries if _name(e) == name)
            return [e for e in entries if _name(e) != name]

        self._update_index(drop)
        if not found:
            raise NotFound(f"no such image tag: {name}")
        return found[0]

    def entries(self) -> list[Descriptor]:
        """index.json's entries as they are now."""
        try:
            data = (self.root / "index.json").read_bytes()
        except FileNotFoundError:
            return []
        return list(Index.parse(data, f"image store index {self.root}/index.json").manifests)

    # -- images --------------------------------------------------------------

    def image(self, digest: str) -> Image:
        """The image whose manifest or index has ``digest``, with all its tags."""
        names = tuple(sorted(n for e in self.entries() if e.digest == digest and (n := _name(e))))
        return self._load(digest, names)

    def images(self) -> list[Image]:
        """Every stored image, one per tagged or kept manifest, oldest entry first."""
        order: dict[str, list[str]] = {}
        for entry in self.entries():
            names = order.setdefault(entry.digest, [])
            if name := _name(entry):
                names.append(name)
        return [self._load(d, tuple(sorted(names))) for d, names in order.items()]

    def resolve(self, text: str) -> Image:
        """Find an image by reference, or by id or unique id prefix, like Docker."""
        match = _ID_PREFIX.fullmatch(text)
        if match and len(match.group(1)) == 64:
            return self._by_id(text, match.group(1))
        try:
            ref = references.parse(text)
        except InvalidArgument:
            if match is None:
                raise
            ref = None
        if ref is not None and (image := self._by_reference(ref)) is not None:
            return image
        if match is not None:
            return self._by_id(text, match.group(1))
        raise NotFound(_not_found(text))

    def remove(self, text: str, *, force: bool = False) -> Removed:
        """Docker's ``rmi``: untag a reference, or delete an image given by id.

        The image is deleted when its last tag goes; an id that several tags
        share needs ``force``. Unreachable blobs are then collected.
        """
        name = self._tag_named(text)
        if name is not None:
            digest = self.untag(name)
            remaining = any(e.digest == digest for e in self.entries())
            # Its id read while its blobs are still there: only when it goes.
            image_id = None if remaining else self.image(digest).id
            self._collect_all()
            return Removed((name,), image_id)
        image = self.resolve(text)
        if len(image.references) > 1 and not force:
            raise InvalidState(
                f"image {image.short_id} is tagged {len(image.references)} times "
                f"({', '.join(image.references)}): remove the tags by name, or force"
            )
        self._update_index(lambda now: [e for e in now if e.digest != image.digest])
        self._collect_all()
        return Removed(image.references, image.id)

    def prune(self) -> tuple[list[str], list[str]]:
        """Drop untagged images, then collect; return (image digests, blob digests) gone."""
        dropped: list[str] = []

        def untagged(entries: list[Descriptor]) -> list[Descriptor]:
            dropped.extend(e.digest for e in entries if _name(e) is None)
            return [e for e in entries if _name(e) is not None]

        self._update_index(untagged)
        return dropped, self._collect_all()

    def _collect_all(self) -> list[str]:
        """``gc``, and the root filesystem disks built for images now gone."""
        from cocoon.image.disk_files import remove_unused  # only when images go

        collected = self.gc()
        remove_unused(self)
        return collected

    def gc(self, *, wait: bool = False) -> list[str]:
        """Delete blobs no index entry reaches; return their digests.

        While another process is writing blobs (see ``ingest``) it does
        nothing, leaving them to the next collection, or with ``wait`` waits
        for the writers to finish.
        """
        if not (self.root / "blobs" / "sha256").is_dir():
            return []  # never written to; nothing to collect
        try:
            with flock(self.root / ".gc.lock", fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)):
                return self._collect()
        except BlockingIOError:
            return []

    def _collect(self) -> list[str]:
        keep: set[str] = set()
        for entry in self.entries():
            self._mark(entry.digest, keep)
        deleted = []
        for blob in (self.root / "blobs" / "sha256").iterdir():
            digest = f"sha256:{blob.name}"
            if digest not in keep:
                blob.unlink()
                deleted.append(digest)
        for stale in (self.root / ".ingest").iterdir():
            stale.unlink()
        return deleted

    def _mark(self, digest: str, keep: set[str]) -> None:
        """Add ``digest`` and everything it references to ``keep``."""
        keep.add(digest)
        try:
            doc = loads(self.read_blob(digest, "manifest"), f"manifest {digest}")
        except (NotFound, Corrupt):
            return  # a layer or config, or a damaged document: it references nothing
        for child in _referenced(doc):
            if child not in keep and self.has_blob(child):
                self._mark(child, keep)

    def _tag_named(self, text: str) -> str | None:
        """The normalised tag ``text`` names, if it is a reference that is tagged."""
        try:
            name = str(references.parse(text))
        except InvalidArgument:
            return None
        return name if any(_name(e) == name for e in self.entries()) else None

    def _by_reference(self, ref: references.Reference) -> Image | None:
        entries = self.entries()
        if ref.digest is None:
            if any(_name(e) == str(ref) for e in entries):
                return self.image(next(e.digest for e in entries if _name(e) == str(ref)))
            return None
        for entry in entries:
            name = _name(entry)
            if name and references.parse(name).name == ref.name:
                image = self.image(entry.digest)
                if ref.digest in (image.digest, image.manifest_digest):
                    return image
        return None

    def _by_id(self, text: str, prefix: str) -> Image:
        """By config id (Docker's image id) or, given in full, by manifest digest.

        One config can be stored under several manifests (the same layers
        gzip-, zstd- or un-compressed): an id that names more than one of
        them is refused rather than one picked silently.
        """
        images = self.images()
        if len(prefix) == 64:
            by_digest = [i for i in images if f"sha256:{prefix}" in (i.digest, i.manifest_digest)]
            if by_digest:
                return by_digest[0]
        found = {i.id for i in images if i.id.startswith(f"sha256:{prefix}")}
        if not found:
            raise NotFound(_not_found(text))
        if len(found) > 1:
            raise InvalidArgument(
                f"image id prefix {text!r} is ambiguous: it matches {len(found)} images"
            )
        variants = [i for i in images if i.id in found]
        if len(variants) > 1:
            names = ", ".join(", ".join(i.references) or i.digest for i in variants)
            raise InvalidArgument(
                f"image id {text!r} is stored as {len(variants)} variants ({names}): "
                "name one by reference or manifest digest"
            )
        return variants[0]

    def _load(self, digest: str, names: tuple[str, ...]) -> Image:
        manifest_digest = digest
        data = self.read_blob(digest, "manifest")
        for _ in range(MAX_NESTING):
            if not is_index("", data):
                break
            index = Index.parse(data, f"index {manifest_digest}")
            manifest_digest = index.select(self.platform, f"image {digest}").digest
            data = self.read_blob(manifest_digest, "manifest")
        manifest = Manifest.parse(data, f"manifest {manifest_digest}")
        config_data = self.read_blob(manifest.config.digest, "image config")
        config = ImageConfig.parse(config_data, f"image config {manifest.config.digest}")
        return Image(names, digest, manifest_digest, manifest, config)

    # -- index.json ----------------------------------------------------------

    def _init_layout(self) -> None:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(mode=0o700, exist_ok=True)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / ".ingest").mkdir(exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            _atomic_write(layout, b'{"imageLayoutVersion":"1.0.0"}')

    def _update_index(self, change: Callable[[list[Descriptor]], list[Descriptor]]) -> None:
        self._init_layout()
        with flock(self.root / ".index.lock", fcntl.LOCK_EX):
            entries = change(self.entries())
            doc = {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [e.to_json() for e in entries],
            }
            _atomic_write(self.root / "index.json", json.dumps(doc, indent=2).encode())


def _copy(reader: digests.HashingReader, out: BinaryIO, size: int | None) -> None:
    """Copy to ``out``, stopping just past ``size`` so an endless stream cannot fill the disk."""
    while True:
        want = digests.CHUNK if size is None else min(digests.CHUNK, size + 1 - reader.size)
        chunk = reader.read(want) if want > 0 else b""
        if not chunk:
            return
        out.write(chunk)


def _referenced(doc: dict[str, Any]) -> list[str]:
    """Digests a manifest or index refers to, tolerating malformed entries."""
    manifests, layers = doc.get("manifests"), doc.get("layers")
    children = [doc.get("config")]
    children += manifests if isinstance(manifests, list) else []
    children += layers if isinstance(layers, list) else []
    found = []
    for child in children:
        value = child.get("digest") if isinstance(child, dict) else None
        with contextlib.suppress(CocoonError):
            found.append(digests.check(value) if isinstance(value, str) else "")
    return [d for d in found if d]


def _check_content(reader: digests.HashingReader, digest: str | None, size: int | None) -> None:
    if size is not None and reader.size != size:
        got = "more" if reader.size > size else str(reader.size)
        raise Corrupt(f"blob {digest or ''}: expected {size} bytes, got {got}")
    if digest is not None and reader.digest != digest:
        raise Corrupt(f"blob {digest}: content does not match its digest (got {reader.digest})")


def _retag(entries: list[Descriptor], entry: Descriptor) -> list[Descriptor]:
    """Move the tag to ``entry``; an image that loses its last tag stays, untagged."""
    name = _name(entry)

    def superseded(e: Descriptor) -> bool:
        return _name(e) == name or (e.digest == entry.digest and _name(e) is None)

    kept = [e for e in entries if not superseded(e)]
    held = {e.digest for e in kept} | {entry.digest}
    for old in entries:
        if _name(old) == name and old.digest not in held:
            kept.append(Descriptor(old.media_type, old.digest, old.size, platform=old.platform))
            held.add(old.digest)
    return [*kept, entry]


def _name(entry: Descriptor) -> str | None:
    return entry.annotations.get(REF_NAME)


def _as_reference(reference: str | references.Reference) -> references.Reference:
    if isinstance(reference, references.Reference):
        return reference
    return references.parse(reference)


def _not_found(text: str) -> str:
    return f"image {text!r} not found: pull it or load it with 'cocoon image load'"


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` so that readers and crashes see the old or the new content."""
    write_atomic(path, data, durable=True)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


__all__ = ["ImageStore", "Removed", "default_root"]
