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
with ``raise ... from``. An error that crosses a process boundary (the
monitor's control socket, later the Docker API) travels as its ``code`` and
message and is rebuilt as the same class by :func:`from_code`. Exit statuses
(CLI) and HTTP statuses (API faces) come from one table, ``STATUS``.
"""

from __future__ import annotations


class CocoonError(Exception):
    """Root of every error cocoon raises on purpose."""

    code = "error"
    # Set when the error is the container command's own failure to start:
    # Docker exits 127 (not found) or 126 (not executable) then, not 125.
    exit_status: int | None = None


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


_BY_CODE: dict[str, type[CocoonError]] = {
    cls.code: cls
    for cls in (CocoonError, InvalidArgument, NotFound, AlreadyExists, InvalidState, Corrupt,
                Unsupported, Timeout, ExternalError)
}  # fmt: skip

# Each code's exit status for the CLI (Docker: 125 when the tool itself fails,
# whatever the cause) and HTTP status for the API faces (dockerd's choices).
STATUS: dict[str, tuple[int, int]] = {
    InvalidArgument.code: (125, 400),
    NotFound.code: (125, 404),
    AlreadyExists.code: (125, 409),
    InvalidState.code: (125, 409),
    Corrupt.code: (125, 500),
    Unsupported.code: (125, 501),
    Timeout.code: (125, 504),
    ExternalError.code: (125, 500),
    CocoonError.code: (125, 500),
}


def exit_code(error: CocoonError) -> int:
    if error.exit_status is not None:
        return error.exit_status
    return STATUS.get(error.code, STATUS[CocoonError.code])[0]


def http_status(error: CocoonError) -> int:
    return STATUS.get(error.code, STATUS[CocoonError.code])[1]


def from_code(code: str | None, message: str) -> CocoonError:
    """The error ``code`` names, carrying ``message``; an unknown code gives the root class."""
    return _BY_CODE.get(code or "", CocoonError)(message)


def to_wire(error: CocoonError) -> dict[str, str]:
    """What crosses a process boundary: rebuilt on the other side by :func:`from_code`."""
    return {"error": str(error), "code": error.code}


__all__ = [
    "STATUS",
    "AlreadyExists",
    "CocoonError",
    "Corrupt",
    "ExternalError",
    "InvalidArgument",
    "InvalidState",
    "NotFound",
    "Timeout",
    "Unsupported",
    "exit_code",
    "from_code",
    "http_status",
    "to_wire",
]
