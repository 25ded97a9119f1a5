"""SHA-256 of small inputs (documents, cache keys) without loading OpenSSL.

Importing hashlib loads OpenSSL's libcrypto, ~3 ms of every command before a
VM can start. CPython's own SHA-256 (what hashlib falls back to without
OpenSSL) is slower per byte, which only shows on the megabytes of image
layers: ``digest.HashingReader`` uses hashlib for those.
"""

from __future__ import annotations

try:
    from _sha256 import sha256 as _sha256  # CPython 3.11
except ImportError:
    try:
        from _sha2 import sha256 as _sha256  # CPython 3.12 and later
    except ImportError:
        from hashlib import sha256 as _sha256


def hexdigest(data: bytes) -> str:
    return _sha256(data).hexdigest()
