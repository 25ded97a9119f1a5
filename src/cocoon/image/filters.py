"""Which images ``image ls --filter`` (and ``client.images.list(filters=...)``) keeps."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence

from cocoon import reference as references
from cocoon.errors import InvalidArgument
from cocoon.filters import check, labels_match
from cocoon.image.model import Image

KEYS = ("dangling", "id", "label", "reference")


def checked(filters: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    found = check(filters, KEYS)
    for value in found.get("dangling", ()):
        if value not in ("true", "false"):
            raise InvalidArgument(f"invalid dangling filter {value!r} (use true or false)")
    return found


def matches(image: Image, filters: Mapping[str, Sequence[str]]) -> bool:
    """``filters`` as :func:`checked` returns them."""
    for key, values in filters.items():
        if key == "label":
            if not labels_match(image.config.labels, values):
                return False
        elif not any(_test(image, key, v) for v in values):
            return False
    return True


def select(images: Iterable[Image], filters: Mapping[str, str | Sequence[str]]) -> list[Image]:
    """The ``images`` that ``filters`` (as a caller gives them: checked here) keep."""
    wanted = checked(filters)
    return [image for image in images if matches(image, wanted)]


def _test(image: Image, key: str, value: str) -> bool:
    if key == "dangling":
        return (value == "true") == (not image.references)
    if key == "id":
        return image.id.removeprefix("sha256:").startswith(value.removeprefix("sha256:"))
    return any(reference_matches(name, value) for name in image.references)


def reference_matches(name: str, pattern: str) -> bool:
    """A glob over one of an image's names, as Docker matches them (busybox, busybox:*, */app).

    Docker lists an image once per name, and filters those rows by name.
    """
    ref = references.parse(name)
    shown = (ref.familiar_name, f"{ref.familiar_name}:{ref.tag}", name)
    return any(fnmatch.fnmatchcase(text, pattern) for text in shown)


__all__ = ["KEYS", "checked", "matches", "reference_matches", "select"]
