"""Registry authentication: WWW-Authenticate challenges, basic auth, bearer tokens.

A registry answers 401 with a challenge. ``Basic`` wants the user's password
on every request; ``Bearer`` names a token service (``realm``) that trades
credentials, or nothing for anonymous access, for a short-lived token valid
for a ``scope`` such as ``repository:library/busybox:pull``. Tokens are
cached per scope until shortly before they expire; a 401 despite a token
drops it and asks again (see ``client``).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from cocoon.errors import ExternalError, InvalidArgument

TOKEN_LIFETIME = 60  # seconds, when the token service does not say (the spec's default)
EXPIRY_MARGIN = 10  # renew this long before expiry so a request never carries a stale token

_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
# Either ``name=value`` / ``name="quoted"`` (a parameter) or a bare token (a scheme).
_ITEM = re.compile(rf'[\s,]*(?:({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))|({_TOKEN}))')


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate value, which may carry several challenges."""
    challenges: list[Challenge] = []
    for item in _ITEM.finditer(header):
        name, quoted, plain, scheme = item.groups()
        if scheme is not None:
            challenges.append(Challenge(scheme.lower()))
        elif challenges:
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
            challenges[-1].params[name.lower()] = value
    return challenges


# GET (url, headers) -> (status, body): the client's transport, so tokens
# come over the same connections, TLS settings and retries as everything else.
Fetch = Callable[[str, dict[str, str]], tuple[int, bytes]]


class Authenticator:
    """What to send in ``Authorization`` for a scope; thread-safe."""

    def __init__(self, registry: str, credentials: tuple[str, str] | None, fetch: Fetch) -> None:
        self.registry = registry
        self.credentials = credentials
        self._fetch = fetch
        self._lock = threading.Lock()
        self._fetching = threading.Lock()
        self._basic = False
        self._bearer: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, expires)

    def headers(self, scope: str) -> dict[str, str]:
        found = self._cached(scope)
        if found is not None or self._bearer is None:
            return found or {}
        # One token request at a time: blobs fetched in parallel share the first.
        with self._fetching:
            if (found := self._cached(scope)) is not None:
                return found
            challenge = self._bearer
            token, expires = self._token(challenge, scope)
            with self._lock:
                self._tokens[scope] = (token, expires)
        return {"Authorization": f"Bearer {token}"}

    def _cached(self, scope: str) -> dict[str, str] | None:
        with self._lock:
            if self._basic and self.credentials:
                return {"Authorization": _basic(self.credentials)}
            cached = self._tokens.get(scope)
            if cached and cached[1] > time.monotonic():
                return {"Authorization": f"Bearer {cached[0]}"}
        return None

    def challenged(self, header: str | None, scope: str) -> None:
        """Learn from a 401: which scheme to use, and that a cached token is no good."""
        challenges = parse_challenges(header or "")
        by_scheme = {c.scheme: c for c in challenges}
        with self._lock:
            self._tokens.pop(scope, None)
            if "bearer" in by_scheme and "realm" in by_scheme["bearer"].params:
                self._bearer, self._basic = by_scheme["bearer"], False
            elif "basic" in by_scheme:
                if self.credentials is None:
                    raise InvalidArgument(self.denied())
                self._basic = True
            else:
                raise ExternalError(
                    f"registry {self.registry} asks for unsupported authentication {header!r}"
                )

    def denied(self) -> str:
        if self.credentials is None:
            return (
                f"registry {self.registry}: authentication required "
                f"(log in with 'cocoon registry login {self.registry}')"
            )
        return f"registry {self.registry}: access denied for user {self.credentials[0]!r}"

    def _token(self, challenge: Challenge, scope: str) -> tuple[str, float]:
        params = challenge.params
        query: list[tuple[str, str]] = []
        if service := params.get("service"):
            query.append(("service", service))
        for wanted in dict.fromkeys(s for s in (scope, params.get("scope")) if s):
            query.append(("scope", wanted))
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urlencode(query)
        headers = {"Authorization": _basic(self.credentials)} if self.credentials else {}
        started = time.monotonic()
        status, body = self._fetch(url, headers)
        if status in (401, 403):
            raise InvalidArgument(self.denied())
        if status != 200:
            raise ExternalError(f"token service {params['realm']} answered HTTP {status}")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = int(doc.get("expires_in") or TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError) as e:
            raise ExternalError(f"token service {params['realm']} sent a malformed answer") from e
        if not isinstance(token, str) or not token:
            raise ExternalError(f"token service {params['realm']} sent no token")
        return token, started + max(lifetime - EXPIRY_MARGIN, 1)


def _basic(credentials: tuple[str, str]) -> str:
    user, password = credentials
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


__all__ = ["Authenticator", "Challenge", "parse_challenges"]
