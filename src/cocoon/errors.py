"""cocoon's errors: one root, a small closed set of codes.

    CocoonError                 anything cocoon itself could not do
     ├── InvalidArgument        the caller asked for something malformed
     ├── NotFound               an image, container or artifact is missing
     ├── AlreadyExists          a name or tag is taken
     ├── InvalidState           the operation does not fit the current state
     ├── Corrupt                content failed verification (digest, tar, frame)
     ├── Unsupported            the host or input lacks a needed feature
     ├── Timeout                something did not happen in time
     └── ExternalError          a program cocoon runs (qemu, mkfs.ext4) failed

Messages are one line a user can act on; the CLI prints them without a
traceback and exits 125. Foreign exceptions are translated at the boundary
with ``raise ... from``.
"""

from __future__ import annotations


class CocoonError(Exception):
    """Root of every error cocoon raises on purpose."""

    code = "error"


class InvalidArgument(CocoonError):
    code = "invalid-argument"


class NotFound(CocoonError):
    code = "not-found"


class AlreadyExists(CocoonError):
    code = "exists"


class InvalidState(CocoonError):
    code = "invalid-state"


class Corrupt(CocoonError):
    code = "corrupt"


class Unsupported(CocoonError):
    code = "unsupported"


class Timeout(CocoonError):
    code = "timeout"


class ExternalError(CocoonError):
    code = "external"


__all__ = [
    "AlreadyExists",
    "CocoonError",
    "Corrupt",
    "ExternalError",
    "InvalidArgument",
    "InvalidState",
    "NotFound",
    "Timeout",
    "Unsupported",
]
