"""Registry credentials and settings kept under the cocoon config dir.

    <config>/auth.json        {"auths": {"HOST": {"auth": base64("user:password")}}}
    <config>/registries.json  {"insecure-registries": ["HOST[:PORT]", ...]}
    <config>/certs.d/HOST[:PORT]/ca.crt   the CA a registry's TLS certificate is
                              checked against (Docker's layout, so files copy over)

auth.json has the shape of ``~/.docker/config.json``'s ``auths`` so people
and tools already know it; it is written with mode 0600 because it holds
passwords, atomically so a crash never leaves half a file.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from cocoon import paths
from cocoon.errors import Corrupt
from cocoon.files import write_atomic

AUTH_FILE = "auth.json"
REGISTRIES_FILE = "registries.json"
# Docker keeps Hub credentials under this key; accept it so a copied config works.
_HUB_KEYS = ("docker.io", "https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io")


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError) as e:
        raise Corrupt(f"{path} is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise Corrupt(f"{path} is not a JSON object")
    return doc


def _keys(registry: str) -> tuple[str, ...]:
    return _HUB_KEYS if registry in _HUB_KEYS else (registry,)


def lookup(registry: str) -> tuple[str, str] | None:
    """The (user, password) saved for ``registry``, if any."""
    auths = _read(paths.config_dir() / AUTH_FILE).get("auths") or {}
    for key in _keys(registry):
        entry = auths.get(key)
        if not isinstance(entry, dict) or not entry.get("auth"):
            continue
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, TypeError) as e:
            raise Corrupt(f"{AUTH_FILE}: the entry for {key} is not base64 user:password") from e
        return user, password
    return None


def save(registry: str, user: str, password: str) -> Path:
    path = paths.config_dir() / AUTH_FILE
    doc = _read(path)
    auths = doc.setdefault("auths", {})
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    auths[_keys(registry)[0]] = {"auth": token}
    _write_private(path, doc)
    return path


def remove(registry: str) -> bool:
    """Forget ``registry``'s credentials; False when there were none."""
    path = paths.config_dir() / AUTH_FILE
    doc = _read(path)
    auths = doc.get("auths") or {}
    found = [k for k in _keys(registry) if k in auths]
    if not found:
        return False
    for key in found:
        del auths[key]
    _write_private(path, doc)
    return True


def insecure_registries() -> frozenset[str]:
    """Registries configured to be reached over plain HTTP."""
    doc = _read(paths.config_dir() / REGISTRIES_FILE)
    return frozenset(str(r) for r in doc.get("insecure-registries") or ())


def ca_path(registry: str) -> Path:
    """Where the CA that ``registry``'s certificate must chain to is kept."""
    return paths.config_dir() / "certs.d" / registry / "ca.crt"


def ca_file(registry: str) -> Path | None:
    """``ca_path`` if the user put a CA there."""
    path = ca_path(registry)
    return path if path.is_file() else None


def _write_private(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps(doc, indent=2).encode() + b"\n", mode=0o600)


__all__ = ["ca_file", "ca_path", "insecure_registries", "lookup", "remove", "save"]
