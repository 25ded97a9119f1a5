"""Images as objects: ``client.images`` and :class:`Image`, over the image store and registries."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from cocoon.errors import InvalidArgument
from cocoon.image import inspect as details
from cocoon.image.model import Image as StoredImage
from cocoon.image.store import ImageStore


class Image:
    """One stored image; ``attrs`` is ``docker image inspect``'s view."""

    def __init__(self, stored: StoredImage, store: ImageStore) -> None:
        self._store = store
        self.attrs: dict[str, Any] = details.view(stored)

    def __repr__(self) -> str:
        return f"<Image {self.short_id} {', '.join(self.tags)}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Image)
            and other.attrs["ManifestDigest"] == self.attrs["ManifestDigest"]
        )

    def __hash__(self) -> int:
        return hash(self.attrs["ManifestDigest"])

    @property
    def id(self) -> str:
        return str(self.attrs["Id"])

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def tags(self) -> list[str]:
        return list(self.attrs["RepoTags"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.attrs["Config"]["Labels"])

    def reload(self) -> None:
        self.attrs = details.view(self._store.resolve(self.attrs["ManifestDigest"]))

    def tag(self, repository: str, tag: str | None = None) -> bool:
        """Name this image ``repository[:tag]`` too."""
        target = f"{repository}:{tag}" if tag else repository
        self._store.tag_image(self.attrs["ManifestDigest"], target)
        self.reload()
        return True

    def save(self, out: Path | str | IO[bytes] | None = None) -> bytes | None:
        """This image as an archive ``docker load`` reads: written to ``out``, or returned."""
        return _save(self._store, [self.tags[0] if self.tags else self.attrs["Digest"]], out)


class ImageCollection:
    """``client.images``: the local image store, and pulling and pushing."""

    def __init__(self, store: ImageStore | None = None) -> None:
        self._store = store

    @property
    def store(self) -> ImageStore:
        # Made on first use: the state folder is read when the caller acts.
        if self._store is None:
            self._store = ImageStore()
        return self._store

    def _wrap(self, stored: StoredImage) -> Image:
        return Image(stored, self.store)

    def get(self, name: str) -> Image:
        """By reference, id, unique id prefix or manifest digest; NotFound if not stored."""
        return self._wrap(self.store.resolve(name))

    def list(
        self, name: str | None = None, filters: Mapping[str, str | Sequence[str]] | None = None
    ) -> list[Image]:
        """Stored images; ``name`` keeps those of one repository; ``filters`` as ``image ls``."""
        from cocoon.image import filters as image_filters

        wanted = {**(filters or {}), **({"reference": name} if name else {})}
        return [self._wrap(i) for i in image_filters.select(self.store.images(), wanted)]

    def pull(
        self,
        repository: str,
        tag: str | None = None,
        *,
        platform: str | None = None,
        insecure: bool = False,
    ) -> Image:
        from cocoon.image.registry import parse_platform, pull

        ref = f"{repository}:{tag}" if tag else repository
        wanted = parse_platform(platform) if platform else None
        return self._wrap(pull(ref, store=self.store, platform=wanted, insecure=insecure))

    def push(self, repository: str, tag: str | None = None, *, insecure: bool = False) -> str:
        """Push a stored image to the registry its name says; the digest pushed."""
        from cocoon.image.registry import push

        ref = f"{repository}:{tag}" if tag else repository
        return push(ref, store=self.store, insecure=insecure)

    def build(
        self,
        path: str | Path | None = None,
        *,
        fileobj: IO[bytes] | None = None,
        tag: str | None = None,
        dockerfile: str | None = None,
        buildargs: Mapping[str, str] | None = None,
        target: str | None = None,
        nocache: bool = False,
        pull: bool = False,
        labels: Mapping[str, str] | None = None,
        platform: str | None = None,
        network_mode: str | None = None,
        **_ignored: Any,  # docker-py's rm, forcerm, quiet...: nothing to do here
    ) -> tuple[Image, Iterator[dict[str, str]]]:
        """docker-py's build: (the image, its log as ``{"stream": line}`` entries).

        ``path`` is the context folder; ``fileobj`` a tar of the context instead.
        """
        import cocoon.builder
        from cocoon.builder.progress import Plain

        if (path is None) == (fileobj is None):
            raise InvalidArgument("build needs a path or a fileobj (a tar of the context)")
        log = io.StringIO()
        stored = cocoon.builder.build(
            path if fileobj is None else fileobj,
            tag=tag or (),
            dockerfile=dockerfile,
            buildargs=buildargs,
            target=target,
            nocache=nocache,
            pull=pull,
            labels=labels,
            platform=platform,
            network=network_mode,
            progress=Plain(log),
        )
        lines = [{"stream": line} for line in log.getvalue().splitlines(keepends=True)]
        return self._wrap(stored), iter(lines)

    def remove(self, image: str, force: bool = False) -> None:
        """Untag a reference, or delete an image given by id (``force``: one with many tags)."""
        self.store.remove(image, force=force)

    def load(self, data: bytes | IO[bytes] | Path | str) -> list[Image]:
        """Images from an archive given as bytes, an open file or a path."""
        from cocoon.image.archive import load

        source = io.BytesIO(data) if isinstance(data, bytes) else data
        return [self._wrap(i) for i in load(self.store, source)]

    def save(
        self, images: Sequence[str], out: Path | str | IO[bytes] | None = None
    ) -> bytes | None:
        """Several images in one archive: written to ``out``, or returned as bytes."""
        return _save(self.store, images, out)

    def prune(self) -> dict[str, Any]:
        deleted, _ = self.store.prune()
        return {"ImagesDeleted": [{"Deleted": d} for d in deleted]}


def _save(
    store: ImageStore, images: Sequence[str], out: Path | str | IO[bytes] | None
) -> bytes | None:
    from cocoon.image.archive import save

    if isinstance(images, str):
        raise InvalidArgument("images must be a list of names, not one string")
    if out is not None:
        save(store, images, out)
        return None
    buffer = io.BytesIO()
    save(store, images, buffer)
    return buffer.getvalue()


__all__ = ["Image", "ImageCollection"]
