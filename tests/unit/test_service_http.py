"""The service's HTTP layer on a real unix socket, with calls that need no VM."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from cocoon.service.api import routes
from cocoon.service.http import Handler, Server


@pytest.fixture
def sock(tmp_path, monkeypatch):
    monkeypatch.setenv("COCOON_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "d.sock"
    server = Server(str(path), type("H", (Handler,), {"routes": routes()}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def exchange(path, raw: bytes) -> bytes:
    """Send ``raw`` and read until the server closes or a reply is complete."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def split(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_ping_head_and_get_carry_the_api_version(sock):
    status, headers, body = split(exchange(sock, b"HEAD /_ping HTTP/1.1\r\nHost: d\r\n\r\n"))
    assert status == 200 and headers["api-version"] == "1.41" and body == b""
    status, _, body = split(exchange(sock, b"GET /v1.41/_ping HTTP/1.1\r\nHost: d\r\n\r\n"))
    assert (status, body) == (200, b"OK")


def test_unknown_calls_are_501_naming_them(sock):
    status, _, body = split(exchange(sock, b"POST /v1.41/swarm/init HTTP/1.1\r\nHost: d\r\n\r\n"))
    assert status == 501 and json.loads(body)["message"] == "cocoon does not serve POST /swarm/init"


def test_keep_alive_serves_several_requests_on_one_connection(sock):
    one = b"GET /containers/json HTTP/1.1\r\nHost: d\r\n\r\n"
    reply = exchange(sock, one + one + b"GET /images/json HTTP/1.1\r\nHost: d\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200") == 3


def test_a_chunked_body_is_read(sock):
    body = json.dumps({"Image": "localhost/absent:1"}).encode()
    raw = (b"POST /containers/create HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Type: application/json\r\n\r\n"
           + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")  # fmt: skip
    status, _, reply = split(exchange(sock, raw))
    assert status == 404 and json.loads(reply)["message"] == "No such image: localhost/absent:1"


@pytest.mark.parametrize(
    "raw",
    [b"POST /containers/create HTTP/1.1\r\nContent-Length: x\r\n\r\n",
     b"POST /containers/create HTTP/1.1\r\nContent-Length: 5\r\n\r\n[1,2]",
     b"POST /containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     b"POST /containers/create HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
     b"GET /containers/json?all=maybe HTTP/1.1\r\n\r\n",
     b"GET /containers/json?filters=%7Bnot HTTP/1.1\r\n\r\n"],
)  # fmt: skip
def test_malformed_requests_are_400(sock, raw):
    status, _, body = split(exchange(sock, raw))
    assert status == 400, body
    assert json.loads(body)["message"]


def test_missing_things_are_404_with_dockerds_words(sock):
    status, _, body = split(exchange(sock, b"GET /containers/abc/json HTTP/1.1\r\n\r\n"))
    assert (status, json.loads(body)) == (404, {"message": "No such container: abc"})
    status, _, body = split(exchange(sock, b"GET /images/x/y:1/json HTTP/1.1\r\n\r\n"))
    assert (status, json.loads(body)) == (404, {"message": "No such image: x/y:1"})
    status, _, body = split(exchange(sock, b"DELETE /networks/nope HTTP/1.1\r\n\r\n"))
    assert status == 404
