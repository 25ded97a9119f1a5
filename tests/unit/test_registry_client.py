"""Registry client pieces without a real registry: challenges, credentials, retries, resume."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import random
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from oci import Layer

from cocoon.errors import ExternalError, InvalidArgument, NotFound
from cocoon.image.model import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from cocoon.image.registry import client as clients
from cocoon.image.registry import credentials, parse_platform, pull, resolve_or_pull
from cocoon.image.registry.auth import Authenticator, parse_challenges
from cocoon.image.store import ImageStore


@pytest.fixture(autouse=True)
def _own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCOON_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COCOON_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr(clients, "BACKOFF", 0.01)


def test_challenges():
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull", Basic realm="x\\"y"'
    )
    bearer, basic = parse_challenges(header)
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull",
    }
    assert (basic.scheme, basic.params) == ("basic", {"realm": 'x"y'})
    assert parse_challenges("") == []


def test_token_is_cached_per_scope_and_dropped_on_401():
    asked: list[str] = []

    def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        asked.append(url)
        return 200, json.dumps({"token": f"t{len(asked)}", "expires_in": 300}).encode()

    auth = Authenticator("r.example", None, fetch)
    assert auth.headers("repository:a:pull") == {}
    auth.challenged('Bearer realm="https://r.example/token",service="svc"', "repository:a:pull")
    assert auth.headers("repository:a:pull") == {"Authorization": "Bearer t1"}
    assert auth.headers("repository:a:pull") == {"Authorization": "Bearer t1"}
    assert asked == ["https://r.example/token?service=svc&scope=repository%3Aa%3Apull"]
    auth.challenged('Bearer realm="https://r.example/token",service="svc"', "repository:a:pull")
    assert auth.headers("repository:a:pull") == {"Authorization": "Bearer t2"}


def test_basic_challenge_without_credentials_says_log_in():
    auth = Authenticator("r.example", None, lambda url, headers: (500, b""))
    with pytest.raises(InvalidArgument, match=r"cocoon registry login r\.example"):
        auth.challenged('Basic realm="r"', "")


def test_credentials_file_is_private(tmp_path: Path):
    path = credentials.save("127.0.0.1:5000", "alice", "pa:ss")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials.lookup("127.0.0.1:5000") == ("alice", "pa:ss")
    assert json.loads(path.read_text())["auths"]["127.0.0.1:5000"]["auth"] == "YWxpY2U6cGE6c3M="
    assert credentials.remove("127.0.0.1:5000") is True
    assert credentials.lookup("127.0.0.1:5000") is None
    assert credentials.remove("127.0.0.1:5000") is False


def test_http_only_for_loopback_and_configured(tmp_path: Path):
    assert clients.is_insecure("localhost:5000") and clients.is_insecure("127.0.0.1")
    assert clients.is_insecure("[::1]:5000")
    assert not clients.is_insecure("registry.example")
    assert clients.is_insecure("registry.example", insecure=True)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/registries.json").write_text('{"insecure-registries": ["reg.lan:5000"]}')
    assert clients.is_insecure("reg.lan:5000")
    # A CA of its own means its certificate is checked, loopback or not.
    credentials.ca_path("localhost:5000").parent.mkdir(parents=True)
    credentials.ca_path("localhost:5000").write_text("-----BEGIN CERTIFICATE-----\n")
    assert not clients.is_insecure("localhost:5000")
    assert clients.is_insecure("localhost:5000", insecure=True)


def test_missing_image_and_refused_connection_is_one_try_and_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def no_retry(*args: object) -> None:
        raise AssertionError("a refused connection was retried")

    monkeypatch.setattr(clients.RegistryClient, "_pause", no_retry)
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(NotFound) as caught:
            resolve_or_pull(f"{host}/nosuchimage", ImageStore(tmp_path / "store"))
    assert str(caught.value) == (
        f"image {host}/nosuchimage not found locally, and pulling it failed: "
        f"cannot connect to {host} (connection refused)"
    )


def test_platform_flag():
    assert str(parse_platform("linux/arm64/v8")) == "linux/arm64/v8"
    with pytest.raises(InvalidArgument):
        parse_platform("linux")


class FlakyRegistry(http.server.BaseHTTPRequestHandler):
    """Serves one image; the first manifest GET is a 503, the layer breaks halfway once."""

    blobs: dict[str, bytes] = {}
    manifest = b""
    ranges = True
    log: list[str] = []

    def do_GET(self) -> None:
        self.log.append(f"{self.path} {self.headers.get('Range')}")
        if self.path.endswith("/manifests/latest"):
            if sum("/manifests/" in line for line in self.log) == 1:
                return self._send(503, b"")
            return self._send(200, self.manifest, OCI_MANIFEST)
        data = self.blobs[self.path.rpartition("/")[2]]
        wanted = self.headers.get("Range")
        if wanted and self.ranges:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:])
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if len(data) > 1000:
            self.wfile.write(data[: len(data) // 2])  # then the connection drops
            self.close_connection = True
            return
        self.wfile.write(data)

    def _send(self, status: int, body: bytes, media_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    tar = Layer().file("noise", random.Random(0).randbytes(100_000)).tar()
    layer = gzip.compress(tar, mtime=0)
    diff_ids = ["sha256:" + hashlib.sha256(tar).hexdigest()]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": diff_ids}})

    def desc(media_type: str, data: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        FlakyRegistry.blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    FlakyRegistry.blobs, FlakyRegistry.log, FlakyRegistry.ranges = {}, [], True
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": desc(OCI_CONFIG, config.encode()),
                "layers": [desc(OCI_LAYER_GZIP, layer)]}  # fmt: skip
    FlakyRegistry.manifest = json.dumps(manifest).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_retry_on_503_and_resume_a_broken_layer(flaky: str, tmp_path: Path):
    store = ImageStore(tmp_path / "store")
    image = pull(f"{flaky}/app", store=store)
    assert image.references == (f"{flaky}/app:latest",)
    layer = image.layers[0].digest
    assert any(line.startswith(f"/v2/app/blobs/{layer} bytes=") for line in FlakyRegistry.log)


def test_no_range_support_means_the_blob_is_dropped(flaky: str, tmp_path: Path):
    FlakyRegistry.ranges = False
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ExternalError, match="cannot resume"):
        pull(f"{flaky}/app", store=store)
    assert not list((store.root / "blobs/sha256").iterdir())
    assert not list((store.root / ".ingest").iterdir())
