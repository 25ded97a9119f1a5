"""Real registries for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1.

``Registry`` starts one on a free port with its own storage folder, optionally
behind htpasswd (basic) auth or token auth; ``TokenServer`` is the token
service for the latter, signing RS256 JWTs with a self-signed key made by the
openssl CLI. Both stop, and their files go, when the context exits.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SERVICE = "cocoon-test-registry"
ISSUER = "cocoon-test-issuer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A distribution token service: anyone may pull, ``user``/``password`` may push."""

    def __init__(self, folder: Path, user: str, password: str) -> None:
        self.key = folder / "token.key"
        self.cert = folder / "token.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=cocoon-test-token", "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        self.x5c = base64.b64encode(der).decode()
        self.user, self.password = user, password
        self.issued: list[list[str]] = []  # scopes of every token handed out
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> TokenServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlparse(handler.path).query)
        authorization = handler.headers.get("Authorization", "")
        user = None
        if authorization.startswith("Basic "):
            name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            if (name, password) != (self.user, self.password):
                handler.send_response(401)
                handler.end_headers()
                return
            user = name
        scopes = query.get("scope", [])
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            granted = [a for a in actions.split(",") if a == "pull" or user is not None]
            access.append({"type": kind, "name": name, "actions": granted})
        self.issued.append(scopes)
        body = json.dumps({"token": self._sign(user or "", access), "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _sign(self, subject: str, access: list[dict[str, object]]) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "iat": now,
            "nbf": now - 10,
            "exp": now + 300,
            "jti": f"{now}-{len(self.issued)}",
            "access": access,
        }
        signing_input = ".".join(_b64url(json.dumps(d).encode()) for d in (header, claims))
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"


class Registry:
    """docker-registry on 127.0.0.1; ``host`` is what image references use."""

    def __init__(
        self,
        folder: Path,
        *,
        htpasswd: tuple[str, str] | None = None,
        token: TokenServer | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.folder = folder
        self.storage = folder / "storage"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: {self.host}",
        ]
        if tls is not None:  # (certificate, key): then it speaks HTTPS only
            config += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
        if htpasswd is not None:
            user, password = htpasswd
            line = subprocess.run(
                ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
            ).stdout.strip()
            (folder / "htpasswd").write_text(line + "\n")
            config += ["auth:", "  htpasswd:", "    realm: cocoon-test",
                       f"    path: {folder / 'htpasswd'}"]  # fmt: skip
        if token is not None:
            config += ["auth:", "  token:", f"    realm: {token.realm}", f"    service: {SERVICE}",
                       f"    issuer: {ISSUER}", f"    rootcertbundle: {token.cert}"]  # fmt: skip
        self.config = folder / "config.yml"
        self.config.write_text("\n".join(config) + "\n")
        self.log = folder / "registry.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Registry:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["docker-registry", "serve", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log.read_text()}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("docker-registry did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def blob_data(self, digest: str) -> Path:
        hex_ = digest.partition(":")[2]
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


@contextlib.contextmanager
def running(**kw: object) -> Iterator[Registry]:
    """A registry in its own temporary folder, removed afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="cocoon-registry-") as folder,
        Registry(Path(folder), **kw) as registry,  # type: ignore[arg-type]
    ):
        yield registry


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A test CA: (certificate, key)."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_certificate(folder: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by ``ca``: (certificate, key)."""
    cert, key, request = folder / "server.crt", folder / "server.key", folder / "server.csr"
    subprocess.run(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(request)],
        check=True, capture_output=True,
    )  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
         "-CAcreateserial", "-days", "2", "-extfile", str(folder / "san.cnf"), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class StallingRegistry:
    """Serves one image's manifest, then sends half of each blob and stalls until closed.

    ``stalled`` is set once a blob is half sent: a pull is then mid-download.
    """

    def __init__(self, manifest: bytes, blobs: dict[str, bytes]) -> None:
        self.stalled = threading.Event()
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if "/manifests/" in self.path:
                    body, media_type = manifest, "application/vnd.oci.image.manifest.v1+json"
                    self.send_response(200)
                    self.send_header("Content-Type", media_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = blobs[self.path.rpartition("/")[2]]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                server.stalled.set()
                server.release.wait(60)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StallingRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def skopeo_copy(source: str, destination: str, *extra: str) -> None:
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
         *extra, source, destination],
        check=True, capture_output=True,
    )  # fmt: skip
