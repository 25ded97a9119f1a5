"""Docker-style image references, parsed and normalised (pure, no I/O).

    busybox                      -> docker.io/library/busybox:latest
    library/busybox:1.36         -> docker.io/library/busybox:1.36
    registry:5000/ns/repo@sha256:<hex>
    localhost/foo                -> localhost/foo:latest

The grammar is Docker's (distribution/reference): the first path component is
a registry when it contains ``.`` or ``:``, is ``localhost``, or has capitals
(a repository may not); otherwise the registry is Docker Hub, whose
single-component names live under ``library/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cocoon.errors import InvalidArgument

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io"}
_OFFICIAL = "library/"
_MAX_NAME = 255

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Reference:
    """A fully qualified image reference; ``tag`` or ``digest`` may be None, not both."""

    registry: str
    repository: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        return parse(text)

    @property
    def name(self) -> str:
        """Registry and repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        return self.name + _suffix(self.tag, self.digest)

    @property
    def familiar_name(self) -> str:
        """The name as Docker displays it: ``busybox``, ``ns/app``, ``quay.io/x/y``."""
        if self.registry == DEFAULT_REGISTRY:
            return self.repository.removeprefix(_OFFICIAL)
        return self.name

    def familiar(self) -> str:
        """The short form Docker displays: ``busybox:latest``, ``ns/app:1``."""
        return self.familiar_name + _suffix(self.tag, self.digest)


def _suffix(tag: str | None, digest: str | None) -> str:
    return (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def parse(text: str) -> Reference:
    """Parse and normalise ``text``; raise InvalidArgument when it is malformed."""
    if not text or text != text.strip():
        raise InvalidArgument(f"invalid image reference {text!r}: empty or has spaces")
    remainder, digest = _split_digest(text)
    remainder, tag = _split_tag(text, remainder)
    registry, repository = _split_registry(remainder)
    _check_repository(text, repository)
    if len(f"{registry}/{repository}") > _MAX_NAME:
        raise InvalidArgument(f"invalid image reference {text!r}: name longer than 255 characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)


def _split_digest(text: str) -> tuple[str, str | None]:
    remainder, at, digest = text.partition("@")
    if not at:
        return text, None
    if not _DIGEST.fullmatch(digest):
        raise InvalidArgument(
            f"invalid image reference {text!r}: digest must be sha256: and 64 lowercase hex digits"
        )
    return remainder, digest


def _split_tag(text: str, remainder: str) -> tuple[str, str | None]:
    # A colon after the last slash starts a tag; one before it is a registry port.
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon <= slash:
        return remainder, None
    tag = remainder[colon + 1 :]
    if not _TAG.fullmatch(tag):
        raise InvalidArgument(
            f"invalid image reference {text!r}: tag {tag!r} must be up to 128 letters, "
            "digits, '_', '.' or '-', not starting with '.' or '-'"
        )
    return remainder[:colon], tag


def _split_registry(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    is_registry = slash and (
        "." in first or ":" in first or first == "localhost" or first != first.lower()
    )
    if not is_registry:
        registry, repository = DEFAULT_REGISTRY, name
    elif not _REGISTRY.fullmatch(first):
        raise InvalidArgument(f"invalid image reference {name!r}: bad registry host {first!r}")
    else:
        registry, repository = first, rest
    if registry in _HUB_ALIASES:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = _OFFICIAL + repository
    return registry, repository


def _check_repository(text: str, repository: str) -> None:
    for component in repository.split("/"):
        if _COMPONENT.fullmatch(component):
            continue
        if component.lower() != component and _COMPONENT.fullmatch(component.lower()):
            raise InvalidArgument(
                f"invalid image reference {text!r}: repository name must be lowercase"
            )
        raise InvalidArgument(
            f"invalid image reference {text!r}: {component!r} is not a valid name component "
            "(lowercase letters, digits and single separators '.', '_', '__' or '-')"
        )


__all__ = ["DEFAULT_REGISTRY", "DEFAULT_TAG", "Reference", "parse"]
