"""Images to and from registries that speak the OCI distribution spec (v2).

client       one registry: HTTP(S), authentication, retries, error messages
auth         WWW-Authenticate challenges, basic auth, bearer tokens (cached)
fetch        pull: manifests, index platform selection, verified parallel blobs
upload       push: missing blobs (monolithic or chunked), then manifests
credentials  saved logins (auth.json, 0600) and insecure registries
progress     per-blob progress bars on a terminal

The HTTP stack is imported on first use, so that ``cocoon run`` of an image
already stored does not pay for it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from cocoon import reference as references
from cocoon.errors import CocoonError, InvalidArgument, NotFound
from cocoon.image.model import Image, Platform
from cocoon.image.store import ImageStore

if TYPE_CHECKING:
    from cocoon.image.registry.client import RegistryClient
    from cocoon.image.registry.fetch import pull
    from cocoon.image.registry.upload import push

_LAZY = {
    "RegistryClient": "cocoon.image.registry.client",
    "pull": "cocoon.image.registry.fetch",
    "push": "cocoon.image.registry.upload",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


PULL_POLICIES = ("always", "missing", "never")


def resolve_or_pull(text: str, store: ImageStore | None = None, policy: str = "missing") -> Image:
    """The stored image ``text`` names, pulled first if it is a reference not yet stored.

    ``policy`` is ``docker run --pull``'s: pull ``always``, only if ``missing``,
    or ``never``. The pull shows progress bars when stderr is a terminal. A
    missing image whose pull fails (registry unreachable, no such name) is
    NotFound, the message saying first that it is not stored here.
    """
    if policy not in PULL_POLICIES:
        raise InvalidArgument(f"--pull {policy!r}: use always, missing or never")
    store = store or ImageStore()
    if policy == "always":
        ref = references.parse(text)
    else:
        try:
            return store.resolve(text)
        except NotFound as missing:
            if policy == "never":
                raise
            try:
                ref = references.parse(text)
            except InvalidArgument:
                raise missing from None  # an id, not a name: nothing to pull
    from cocoon.image.registry.fetch import pull
    from cocoon.image.registry.progress import for_stderr

    bars = for_stderr()
    try:
        with bars if bars is not None else contextlib.nullcontext():
            return pull(ref, store=store, progress=bars)
    except CocoonError as e:
        if policy == "always":
            raise type(e)(f"pulling image {text} failed: {e}") from e
        # Not stored here, and not to be had: whatever the registry did, the
        # image was not found (a caller catches NotFound, not Timeout).
        raise NotFound(f"image {text} not found locally, and pulling it failed: {e}") from e


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]``, as ``--platform`` takes it."""
    parts = text.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise InvalidArgument(f"--platform {text!r}: expected os/arch or os/arch/variant")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


__all__ = ["RegistryClient", "parse_platform", "pull", "push", "resolve_or_pull"]
