"""A low-level client for one registry (OCI distribution spec v2): requests, auth, retries.

It maps 1:1 to the wire: ``fetch`` and ``push`` build pulls and pushes on it.
HTTPS always comes first, verified against the system's CAs, or against the
registry's own ``certs.d/HOST[:PORT]/ca.crt`` under the config dir. A registry
on loopback (unless it has such a CA), named insecure by the caller, or listed
in registries.json gets HTTPS without verification, and plain HTTP when it
does not speak TLS at all (as Docker does for ``localhost``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from collections.abc import Iterable
from typing import IO

import urllib3
from urllib3.exceptions import HTTPError, InsecureRequestWarning

from cocoon.errors import CocoonError, ExternalError, InvalidArgument, NotFound, Timeout
from cocoon.image.registry import credentials as creds
from cocoon.image.registry.auth import Authenticator

log = logging.getLogger(__name__)

ATTEMPTS = 5  # per request, on 5xx, 429 and broken connections
BACKOFF = 0.25  # seconds, doubled after each failed attempt
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
_HUB = "registry-1.docker.io"  # docker.io is only a name; this host serves it
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

Body = bytes | IO[bytes] | None
Response = urllib3.BaseHTTPResponse


def is_insecure(registry: str, insecure: bool = False) -> bool:
    """Whether ``registry`` may be reached without verified TLS."""
    if insecure or registry in creds.insecure_registries():
        return True
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    return host in _LOOPBACK and creds.ca_file(registry) is None


class RegistryClient:
    """Requests to ``registry`` with authentication and retries; thread-safe."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool = False,
        credentials: tuple[str, str] | None = None,
        connections: int = 8,
    ) -> None:
        self.registry = registry
        host = _HUB if registry == "docker.io" else registry
        self.base = self.secure = f"https://{host}"
        tls: dict[str, str] = {}
        if is_insecure(registry, insecure):
            self.plain: str | None = f"http://{host}"  # if it turns out not to speak TLS
            tls["cert_reqs"] = "CERT_NONE"
            warnings.filterwarnings("ignore", category=InsecureRequestWarning)
        else:
            self.plain = None
            if (ca := creds.ca_file(registry)) is not None:
                tls["ca_certs"] = str(ca)
        self.pool = urllib3.PoolManager(
            **tls,
            maxsize=connections,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
            # Redirects (blob storage on another host) are followed by urllib3,
            # which drops Authorization when the host changes.
            retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5),
        )
        if credentials is None:
            credentials = creds.lookup(registry)
        self.auth = Authenticator(registry, credentials, self._get_token)

    def close(self) -> None:
        self.pool.clear()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        """An absolute URL: registries give Locations relative or absolute."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base + path

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
        expect: Iterable[int] = (200,),
    ) -> Response:
        """Send a request; return the streaming response when its status is expected.

        A body that is a stream can be sent only once, so such requests are not
        retried; callers that upload restart the whole upload instead.
        """
        expect = tuple(expect)
        url = self.url(path)
        retryable = body is None or isinstance(body, bytes)
        authenticated = False
        for attempt in range(ATTEMPTS):
            wanted = {**(headers or {}), **self.auth.headers(scope)}
            try:
                response = self.pool.request(
                    method,
                    url,
                    headers=wanted,
                    body=body,
                    preload_content=False,
                    decode_content=False,
                )
            except HTTPError as e:
                if (plain := self._to_plain(url, e)) is not None:
                    url = plain
                    continue
                if retryable and attempt + 1 < ATTEMPTS and not _refused(e):
                    self._pause(attempt, method, url, str(e))
                    continue
                raise _transport_error(self.registry, method, url, e) from e
            if response.status in expect:
                return response
            if response.status == 401 and not authenticated:
                authenticated = True
                header = response.headers.get("WWW-Authenticate")
                discard(response)
                self.auth.challenged(header, scope)
                if retryable:
                    continue
                raise ExternalError(f"{method} {url}: registry asked to authenticate mid-upload")
            if response.status in _RETRY_STATUS and retryable and attempt + 1 < ATTEMPTS:
                discard(response)
                self._pause(attempt, method, url, f"HTTP {response.status}")
                continue
            raise self._error(method, url, response)
        raise ExternalError(f"{method} {url}: gave up after {ATTEMPTS} attempts")

    def read(self, response: Response, limit: int) -> bytes:
        """A whole (small) response body, refusing one longer than ``limit``."""
        try:
            data = response.read(limit + 1)
        except HTTPError as e:
            response.close()
            raise _transport_error(self.registry, "GET", response.url or "", e) from e
        if len(data) > limit:
            response.close()  # the rest is unread: the connection cannot be reused
            raise ExternalError(f"registry {self.registry} sent a document over {limit} bytes")
        response.release_conn()
        return data

    def ping(self) -> None:
        """Check that the registry speaks v2 and accepts our credentials."""
        discard(self.request("GET", "/v2/", scope=""))

    def _to_plain(self, url: str, error: HTTPError) -> str | None:
        """For an insecure registry that failed the TLS handshake: ``url`` over plain
        HTTP, which every later request then uses too (other threads may have
        switched already)."""
        if self.plain is None or not url.startswith(self.secure + "/"):
            return None
        if not isinstance(getattr(error, "reason", None), urllib3.exceptions.SSLError):
            return None
        log.debug("%s does not speak TLS (%s); using plain HTTP", self.registry, error)
        self.base = self.plain
        return self.plain + url.removeprefix(self.secure)

    def _pause(self, attempt: int, method: str, url: str, why: str) -> None:
        delay = BACKOFF * 2**attempt
        log.debug("%s %s: %s; retrying in %.2fs", method, url, why, delay)
        time.sleep(delay)

    def _get_token(self, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in range(ATTEMPTS):
            try:
                response = self.pool.request("GET", url, headers=headers)
            except HTTPError as e:
                if attempt + 1 < ATTEMPTS and not _refused(e):
                    self._pause(attempt, "GET", url, str(e))
                    continue
                raise _transport_error(self.registry, "GET", url, e) from e
            if response.status in _RETRY_STATUS and attempt + 1 < ATTEMPTS:
                self._pause(attempt, "GET", url, f"HTTP {response.status}")
                continue
            return response.status, response.data
        raise ExternalError(f"GET {url}: gave up after {ATTEMPTS} attempts")

    def _error(self, method: str, url: str, response: Response) -> CocoonError:
        detail = _registry_message(response)
        message = f"registry {self.registry}: {method} {url}: HTTP {response.status}{detail}"
        if response.status == 404:
            return NotFound(message)
        if response.status in (401, 403):
            return InvalidArgument(f"{self.auth.denied()}{detail}")
        return ExternalError(message)


def _registry_message(response: Response) -> str:
    """The distribution spec's ``{"errors": [{"code", "message"}]}``, as one line."""
    try:
        body = response.read(64 << 10)
        discard(response)
        errors = json.loads(body).get("errors") or []
        parts = [f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors]
    except (ValueError, AttributeError, TypeError, HTTPError):
        return ""
    return (": " + "; ".join(p for p in parts if p)).replace("\n", " ") if parts else ""


def discard(response: Response) -> None:
    """Finish with a response whose body does not matter, so its connection is reused."""
    with contextlib.suppress(HTTPError):
        response.drain_conn()
    response.release_conn()


def _refused(e: HTTPError) -> bool:
    """Nothing listens there: asking again soon will not change that."""
    reason = getattr(e, "reason", None)
    return isinstance(reason, urllib3.exceptions.NewConnectionError) and isinstance(
        reason.__cause__ or reason.__context__, ConnectionRefusedError
    )


def _transport_error(registry: str, method: str, url: str, e: Exception) -> CocoonError:
    reason = getattr(e, "reason", None) or e
    if isinstance(e, HTTPError) and _refused(e):
        where = urllib3.util.parse_url(url)
        port = where.port or (443 if where.scheme == "https" else 80)
        return ExternalError(f"cannot connect to {where.host}:{port} (connection refused)")
    if isinstance(reason, urllib3.exceptions.SSLError):
        return ExternalError(
            f"registry {registry}: {method} {url}: {reason} (trust its CA with "
            f"{creds.ca_path(registry)}, or use --insecure)"
        )
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return Timeout(f"registry {registry}: {method} {url} timed out")
    return ExternalError(f"registry {registry}: {method} {url}: {reason}")


__all__ = ["RegistryClient", "Response", "discard", "is_insecure"]
