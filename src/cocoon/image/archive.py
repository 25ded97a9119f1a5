"""Images in and out of files: OCI layouts (directory or tar), docker-archives, dir layouts.

``load`` reads an archive in place: tar members are streamed straight into
the store and verified there; nothing else from the archive touches the disk
(an archive read from a pipe is first spooled to an unnamed file, since tar
members are found by name). ``save`` writes an OCI layout tar that is also a
docker-archive (an index.json and a manifest.json over the same blobs, as
Docker 25 does): ``docker load``, ``podman load`` (which reads only one image
from an OCI archive, but any number from a docker-archive) and ``skopeo``
read it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import re
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol

from cocoon import reference as references
from cocoon.errors import Corrupt, InvalidArgument, NotFound
from cocoon.image import digest as digests
from cocoon.image.model import (
    CONTAINERD_NAME,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    REF_NAME,
    Descriptor,
    Image,
    ImageConfig,
    Index,
    Manifest,
    dumps,
    is_index,
)
from cocoon.image.store import MAX_DOCUMENT, MAX_NESTING, ImageStore

if TYPE_CHECKING:
    from cocoon.image.registry.progress import Reporter

# What a load does to each image before it is tagged: check it, or build its disk.
_Check = Callable[[ImageStore, Image], None]

_BLOB_NAME = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_MAGIC = {b"\x1f\x8b": OCI_LAYER_GZIP, b"\x28\xb5\x2f\xfd": OCI_LAYER_ZSTD}


# Links followed to reach one archive member before giving up on a loop.
_MAX_LINKS = 16


class _Source(Protocol):
    label: str

    def has(self, name: str) -> bool: ...

    def open(self, name: str) -> BinaryIO: ...


class _DirSource:
    """Files of a folder by relative name: none may lead outside it, nor be other than a file.

    The archive is hostile, and it names the files to read: a manifest.json
    naming ``/etc/shadow``, or a link pointing there, must not copy a host
    file into the store. Links within the folder are fine (``docker save``
    folders use them).
    """

    def __init__(self, root: Path) -> None:
        self.label = str(root)
        self.real = os.path.realpath(root)

    def has(self, name: str) -> bool:
        return os.path.lexists(os.path.join(self.real, name))

    def open(self, name: str) -> BinaryIO:
        path = os.path.join(self.real, name)
        # Checked before opening, so no host file is even opened, and after,
        # on what was opened, so a link swapped in between changes nothing.
        if not self._inside(os.path.realpath(path)):
            raise Corrupt(f"{self.label}: {name} leads outside the folder")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Corrupt(f"{self.label}: {name} is missing") from None
        except OSError as e:
            raise Corrupt(f"{self.label}: cannot read {name}: {e.strerror}") from None
        try:
            if not self._inside(os.readlink(f"/proc/self/fd/{fd}")):
                raise Corrupt(f"{self.label}: {name} leads outside the folder")
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Corrupt(f"{self.label}: {name} is not a regular file")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def _inside(self, real: str) -> bool:
        return real.startswith(self.real.rstrip("/") + "/")


class _TarSource:
    """Members of a tar by normalised name; links resolve inside the archive only."""

    def __init__(self, tar: tarfile.TarFile, label: str) -> None:
        self.tar = tar
        self.label = label
        self.members = {_normalise(m.name): m for m in tar.getmembers()}

    def has(self, name: str) -> bool:
        return _normalise(name) in self.members

    def open(self, name: str) -> BinaryIO:
        stream = self.tar.extractfile(self._file(name))
        assert stream is not None  # a regular member always has content
        return stream

    def _file(self, name: str) -> tarfile.TarInfo:
        """The regular member ``name`` is or links to, links followed by hand.

        tarfile's own link following recurses without end on a loop and
        raises KeyError on a dangling link; here both are one clear error,
        and an absolute or ``..`` target stays inside the archive.
        """
        key = _normalise(name)
        for _ in range(_MAX_LINKS):
            member = self.members.get(key)
            if member is None:
                via = "" if key == _normalise(name) else f" (it links to {key})"
                raise Corrupt(f"{self.label}: {name} is missing{via}")
            if member.isreg():
                return member
            if member.issym():
                key = _normalise(posixpath.join(posixpath.dirname(key), member.linkname))
            elif member.islnk():
                key = _normalise(member.linkname)
            else:
                raise Corrupt(f"{self.label}: {name} is not a file")
        raise Corrupt(f"{self.label}: {name} is a loop of links")


def _normalise(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def load(
    store: ImageStore,
    path: Path | str | IO[bytes],
    *,
    prepare: bool = True,
    progress: Reporter | None = None,
) -> list[Image]:
    """Import every image of an OCI layout (directory or tar), a docker-archive or a dir layout.

    ``path`` may also be an open stream (a pipe: ``cocoon image load -``).
    An image whose layers would be refused when it runs is refused now, and a
    load that fails leaves no blob and no tag behind. With ``prepare``, each
    image's root disk is built as it is checked (one pass over its layers),
    so its first run starts at once.
    """
    check = _preparer(progress) if prepare else _checker
    if not isinstance(path, (str, Path)):
        return _load_stream(store, path, check)
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file or directory") from None
    except OSError as e:
        raise InvalidArgument(f"{path}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        return _load_source(store, _DirSource(path), check)
    if not stat.S_ISREG(mode):
        raise InvalidArgument(f"{path}: not an OCI layout or a docker-archive (not a file)")
    with open(path, "rb") as f:
        return _load_tar(store, f, str(path), check)


def _load_stream(store: ImageStore, stream: IO[bytes], check: _Check) -> list[Image]:
    """Spool a pipe to an unnamed file beside the store (images are large for /tmp)."""
    store.root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=store.root.parent, prefix=".load-") as spool:
        try:
            while chunk := stream.read(1 << 20):
                spool.write(chunk)
        except OSError as e:
            raise InvalidArgument(f"cannot read the archive from standard input: {e}") from e
        spool.seek(0)
        return _load_tar(store, spool, "standard input", check)


def _load_tar(store: ImageStore, f: IO[bytes], label: str, check: _Check) -> list[Image]:
    with _open_tar(f, label) as tar:
        try:
            return _load_source(store, _TarSource(tar, label), check)
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise Corrupt(f"{label}: damaged archive ({e})") from e


def _open_tar(f: IO[bytes], label: str) -> tarfile.TarFile:
    head = f.read(tarfile.BLOCKSIZE)
    f.seek(0)
    # A plain tar or a gzip-compressed one (`docker save | gzip`); told from a
    # header, so that no other format gets decompressed on the off chance.
    gzipped = head.startswith(b"\x1f\x8b")
    if not gzipped and head[257:262] != b"ustar":
        raise InvalidArgument(f"{label}: not an OCI layout or a docker-archive (not a tar file)")
    try:
        return tarfile.open(fileobj=f, mode="r:gz" if gzipped else "r:")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise InvalidArgument(f"{label}: not an OCI layout or a docker-archive ({e})") from e


def _checker(store: ImageStore, image: Image) -> None:
    from cocoon.rootfs.layers import check_image  # the rules of unpacking live there

    check_image(store, image)


def _preparer(progress: Reporter | None) -> _Check:
    def prepare(store: ImageStore, image: Image) -> None:
        from cocoon.image.registry.progress import Quiet
        from cocoon.rootfs.disks import prepare  # builds on this module

        prepare(store, image, progress or Quiet())

    return prepare


def _load_source(store: ImageStore, source: _Source, check: _Check) -> list[Image]:
    with store.transaction():
        if source.has("index.json"):
            digests_loaded = _load_layout(store, source, check)
        elif _is_dir_layout(source):
            digests_loaded = _load_dir_layout(store, source, check)
        elif source.has("manifest.json"):
            digests_loaded = _load_docker_archive(store, source, check)
        else:
            raise InvalidArgument(
                f"{source.label}: not an OCI layout (no index.json) "
                "nor a docker-archive (no manifest.json)"
            )
    return [store.image(d) for d in dict.fromkeys(digests_loaded)]


def _read_document(source: _Source, name: str) -> bytes:
    with source.open(name) as f:
        data = f.read(MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT:
        raise Corrupt(f"{source.label}: {name} is larger than {MAX_DOCUMENT >> 20} MiB")
    return data


# -- OCI image layout ---------------------------------------------------------


def _load_layout(store: ImageStore, source: _Source, check: _Check) -> list[str]:
    what = f"{source.label}: index.json"
    index = Index.parse(_read_document(source, "index.json"), what)
    loaded = []
    for entry in index.manifests:
        stored = _copy_manifest(store, source, entry, 0)
        loaded.append(_register(store, stored, _names(entry, source.label), check))
    return loaded


def _copy_manifest(store: ImageStore, source: _Source, entry: Descriptor, depth: int) -> Descriptor:
    """Copy a manifest and what it needs (for an index: the host's manifest)."""
    _copy_blob(store, source, entry)
    data = store.read_blob(entry.digest, "manifest")
    what = f"{source.label}: manifest {entry.digest}"
    if is_index(entry.media_type, data):
        if depth >= MAX_NESTING:
            raise Corrupt(f"{what}: indexes nested too deep")
        index = Index.parse(data, what)
        _copy_manifest(store, source, index.select(store.platform, what), depth + 1)
        return _with_media_type(entry, index.media_type)
    manifest = Manifest.parse(data, what)
    for blob in (manifest.config, *manifest.layers):
        _copy_blob(store, source, blob)
    return _with_media_type(entry, manifest.media_type)


def _with_media_type(entry: Descriptor, media_type: str) -> Descriptor:
    return Descriptor(media_type, entry.digest, entry.size, platform=entry.platform)


def _copy_blob(
    store: ImageStore, source: _Source, blob: Descriptor, folder: str = "blobs/sha256/"
) -> None:
    if store.has_blob(blob.digest):
        return  # verified when it was stored
    with source.open(folder + digests.hex_of(blob.digest)) as f:
        store.put_blob(f, blob.digest, size=blob.size, media_type=blob.media_type)


def _names(entry: Descriptor, label: str) -> list[str]:
    """The references an index.json entry carries.

    containerd and Docker put the full name in ``io.containerd.image.name``
    and only the tag in ``ref.name``; skopeo's ``oci:dir:tag`` writes just a
    tag. A bare tag names no repository, so such an image loads untagged,
    reachable by id, as ``docker load`` does.
    """
    name = entry.annotations.get(CONTAINERD_NAME) or entry.annotations.get(REF_NAME)
    if not name or not any(c in name for c in "/:@"):
        return []
    try:
        return [str(references.parse(name))]
    except InvalidArgument as e:
        raise InvalidArgument(f"{label}: index.json names an image badly: {e}") from e


# -- dir layout (skopeo and podman's `dir:`, `docker-dir`) ---------------------

_DIR_VERSION = b"Directory Transport Version:"


def _is_dir_layout(source: _Source) -> bool:
    if not (source.has("version") and source.has("manifest.json")):
        return False
    with source.open("version") as f:
        return f.read(len(_DIR_VERSION)) == _DIR_VERSION


def _load_dir_layout(store: ImageStore, source: _Source, check: _Check) -> list[str]:
    """One image: manifest.json and its blobs as files named by bare hex digest; no name."""
    data = _read_document(source, "manifest.json")
    manifest = Manifest.parse(data, f"{source.label}: manifest.json")
    for blob in (manifest.config, *manifest.layers):
        _copy_blob(store, source, blob, folder="")
    return [_register(store, store.put_bytes(data, manifest.media_type), [], check)]


# -- docker-archive (docker save, podman save) --------------------------------


def _load_docker_archive(store: ImageStore, source: _Source, check: _Check) -> list[str]:
    what = f"{source.label}: manifest.json"
    try:
        items = _parse_docker_manifest(_read_document(source, "manifest.json"), what)
    except (KeyError, TypeError) as e:
        raise Corrupt(f"{what}: malformed ({e})") from e
    layers: dict[str, Descriptor] = {}  # one archive member can serve several images
    loaded = []
    for config_name, layer_names, tags in items:
        manifest = _docker_image(store, source, config_name, layer_names, layers)
        stored = store.put_bytes(dumps(manifest.to_json()), OCI_MANIFEST)
        loaded.append(_register(store, stored, tags, check))
    return loaded


def _register(store: ImageStore, stored: Descriptor, names: Iterable[str], check: _Check) -> str:
    """Check a loaded image's layers, then tag it with its names, or keep it untagged."""
    check(store, store.image(stored.digest))
    names = list(names)
    for name in names:
        store.tag(name, stored)
    if not names:
        store.keep(stored)
    return stored.digest


def _parse_docker_manifest(data: bytes, what: str) -> list[tuple[str, list[str], list[str]]]:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise Corrupt(f"{what} is not valid JSON: {e}") from e
    if not isinstance(doc, list):
        raise Corrupt(f"{what} is not a list of images")
    return [
        (str(item["Config"]), [str(n) for n in item["Layers"]], _tags(item, what)) for item in doc
    ]


def _tags(item: dict[str, Any], what: str) -> list[str]:
    try:
        return [str(references.parse(t)) for t in item.get("RepoTags") or ()]
    except InvalidArgument as e:
        raise Corrupt(f"{what}: {e}") from e


def _docker_image(
    store: ImageStore,
    source: _Source,
    config_name: str,
    layer_names: list[str],
    done: dict[str, Descriptor],
) -> Manifest:
    """Store one docker-archive image's blobs; return an OCI manifest for them."""
    data = _read_document(source, config_name)
    expected = _named_digest(config_name)
    if expected is not None:
        digests.verify_bytes(data, expected, f"{source.label}: config")
    config_desc = store.put_bytes(data, OCI_CONFIG)
    config = ImageConfig.parse(data, f"{source.label}: {config_name}")
    if len(config.diff_ids) != len(layer_names):
        raise Corrupt(
            f"{source.label}: {config_name} lists {len(config.diff_ids)} layers, "
            f"manifest.json {len(layer_names)}"
        )
    layers = []
    for name, diff_id in zip(layer_names, config.diff_ids, strict=True):
        if name not in done:
            done[name] = _docker_layer(store, source, name, diff_id)
        layers.append(done[name])
    return Manifest(OCI_MANIFEST, config_desc, tuple(layers))


def _docker_layer(store: ImageStore, source: _Source, name: str, diff_id: str) -> Descriptor:
    with source.open(name) as f:
        stored = store.put_blob(f, _named_digest(name))
    with store.open_blob(stored.digest) as f:
        media_type = _layer_media_type(f.read(4))
    if media_type == OCI_LAYER and stored.digest != diff_id:
        raise Corrupt(f"{name}: layer digest {stored.digest} does not match its diff_id {diff_id}")
    return Descriptor(media_type, stored.digest, stored.size)


def _layer_media_type(head: bytes) -> str:
    """Docker-archive layers are plain tars, but some writers compress them."""
    for magic, media_type in _MAGIC.items():
        if head.startswith(magic):
            return media_type
    return OCI_LAYER


def _named_digest(name: str) -> str | None:
    """The digest a member's name promises (``blobs/sha256/<hex>``, ``<hex>.json``)."""
    normal = _normalise(name)
    if match := _BLOB_NAME.fullmatch(normal):
        return f"sha256:{match.group(1)}"
    stem = normal.removesuffix(".json")
    if normal.endswith(".json") and re.fullmatch(r"[0-9a-f]{64}", stem):
        return f"sha256:{stem}"
    return None


# -- save ---------------------------------------------------------------------


def save(store: ImageStore, refs: Sequence[str], out: Path | str | IO[bytes]) -> None:
    """Write the named images (references or ids) as one archive, to a file or a stream."""
    if not refs:
        raise InvalidArgument("nothing to save: name at least one image")
    entries, blobs = [], {}
    docker: dict[str, dict[str, Any]] = {}  # manifest.json's items, one per manifest
    for text in refs:
        image = store.resolve(text)
        entry = _save_entry(store, text, image)
        entries.append(entry)
        item = docker.setdefault(image.manifest_digest, _docker_item(image))
        if name := entry.get("annotations", {}).get(REF_NAME):
            item["RepoTags"].append(name)
        for digest in (image.manifest_digest, image.id, *(layer.digest for layer in image.layers)):
            blobs[digest] = store.blob_path(digest)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    members = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": dumps(index),
               "manifest.json": json.dumps(list(docker.values())).encode()}  # fmt: skip
    if isinstance(out, (str, Path)):
        _write_file(Path(out), members, blobs.values())
    else:
        _write_tar(out, members, blobs.values(), stream=True)


def _save_entry(store: ImageStore, text: str, image: Image) -> dict[str, Any]:
    size = store.blob_path(image.manifest_digest).stat().st_size
    entry = Descriptor(image.manifest.media_type, image.manifest_digest, size).to_json()
    with contextlib.suppress(InvalidArgument):
        name = str(references.parse(text))
        if name in image.references:
            entry["annotations"] = {REF_NAME: name, CONTAINERD_NAME: name}
    return entry


def _docker_item(image: Image) -> dict[str, Any]:
    """A docker-archive manifest.json item over the OCI layout's own blobs."""
    return {
        "Config": f"blobs/sha256/{digests.hex_of(image.id)}",
        "RepoTags": [],
        "Layers": [f"blobs/sha256/{digests.hex_of(layer.digest)}" for layer in image.layers],
    }


def _write_file(path: Path, members: dict[str, bytes], blobs: Iterable[Path]) -> None:
    """Build the tar next to ``path`` and rename it, so no half archive is left."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            _write_tar(out, members, blobs, stream=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_tar(
    out: IO[bytes], members: dict[str, bytes], blobs: Iterable[Path], *, stream: bool
) -> None:
    # "w|" never seeks: a pipe (`save -o - | ssh host load`) works too.
    with tarfile.open(fileobj=out, mode="w|" if stream else "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            _add_bytes(tar, name, data)
        for blob in blobs:
            with open(blob, "rb") as f:
                tar.addfile(_info(f"blobs/sha256/{blob.name}", os.fstat(f.fileno()).st_size), f)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


__all__ = ["load", "save"]
