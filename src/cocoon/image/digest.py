"""Content digests: validation and hashing while streaming."""

from __future__ import annotations

import re
from typing import Protocol

from cocoon import sha256
from cocoon.errors import Corrupt, InvalidArgument, Unsupported

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_ANY = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
CHUNK = 1 << 20


def check(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256 digest, else raise."""
    if _SHA256.fullmatch(digest):
        return digest
    if _ANY.fullmatch(digest):
        algorithm = digest.partition(":")[0]
        if algorithm != "sha256":
            raise Unsupported(f"digest {digest[:20]}…: only sha256 digests are supported")
    raise InvalidArgument(f"malformed digest {digest!r}: expected sha256: and 64 hex digits")


def hex_of(digest: str) -> str:
    return check(digest).partition(":")[2]


def of_bytes(data: bytes) -> str:
    return "sha256:" + sha256.hexdigest(data)


def verify_bytes(data: bytes, digest: str, what: str) -> bytes:
    if of_bytes(data) != digest:
        raise Corrupt(f"{what} {digest}: content does not match its digest")
    return data


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class HashingReader:
    """A read-only stream that hashes and counts what passes through it."""

    def __init__(self, stream: Readable) -> None:
        import hashlib  # OpenSSL's SHA-256: worth loading for a layer's megabytes

        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()
