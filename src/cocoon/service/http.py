"""The HTTP side of the service: one thread per connection over a unix socket.

The standard library's ``http.server`` parses requests; this module adds
what the Engine API needs on top: paths with an optional ``/v1.NN`` prefix,
a route table, JSON bodies in and out, errors as dockerd sends them
(``{"message": ...}`` with the status ``cocoon.errors.http_status`` gives),
chunked streams (logs, pull progress, wait) and the connection hijack that
attach and exec use (``101 UPGRADED``, then raw bytes both ways).
"""

from __future__ import annotations

import json
import logging
import re
import socketserver
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cocoon import __version__
from cocoon.errors import CocoonError, InvalidArgument, Unsupported, http_status

log = logging.getLogger("cocoon.service")

API_VERSION = "1.41"
MIN_API_VERSION = "1.12"
MAX_BODY = 16 << 20  # JSON requests; archives (load, build) are not read whole
_VERSION_PREFIX = re.compile(r"^/v1\.\d+(?=/)")
RAW_STREAM = "application/vnd.docker.raw-stream"


@dataclass(slots=True)
class Request:
    method: str
    path: str
    params: dict[str, list[str]]
    match: dict[str, str]
    handler: Handler

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter as Go's strconv.ParseBool and dockerd read it."""
        value = self.arg(name)
        if value is None or value == "":
            return default
        if value.lower() in ("1", "t", "true"):
            return True
        if value.lower() in ("0", "f", "false"):
            return False
        raise InvalidArgument(f"invalid boolean value {value!r} for {name}")

    def number(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidArgument(f"invalid value {value!r} for {name}: not a number") from None

    def json(self) -> Any:
        """The request's JSON body; None when there is none."""
        data = self.handler.body()
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError as e:
            raise InvalidArgument(f"invalid JSON body: {e}") from None

    def json_object(self) -> dict[str, Any]:
        body = self.json()
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise InvalidArgument("the request body must be a JSON object")
        return body


# A route's function answers with a value (sent as JSON), or None when it
# wrote its answer itself (streams, hijacks, empty replies).
Route = Callable[[Request], Any]


@dataclass(frozen=True, slots=True)
class RouteEntry:
    method: str
    pattern: re.Pattern[str]
    call: Route
    status: int = 200


def route(method: str, pattern: str, call: Route, status: int = 200) -> RouteEntry:
    """``pattern``: the path with ``{name}`` parts; ``{name*}`` may hold slashes (image names)."""
    regex = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
    return RouteEntry(method, re.compile(f"^{regex}$"), call, status)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"cocoon/{__version__}"
    sys_version = ""
    routes: tuple[RouteEntry, ...] = ()

    # -- request side ------------------------------------------------------------

    def body(self) -> bytes:
        """The whole body (JSON requests: at most MAX_BODY bytes)."""
        if getattr(self, "_body", None) is not None:
            return self._body
        length = self._length()
        if length > MAX_BODY:
            raise InvalidArgument(f"request body of {length} bytes is too large")
        data = bytearray()
        for piece in self.body_chunks():
            data += piece
            if len(data) > MAX_BODY:
                raise InvalidArgument("request body is too large")
        self._body: bytes | None = bytes(data)
        return self._body

    def body_chunks(self) -> Iterator[bytes]:
        """The body piece by piece, of any size: archives (``images/load``)."""
        self._body = b""  # consumed here, whatever happens
        # Until the last byte is read, the connection cannot carry another request.
        keep, self.close_connection = self.close_connection, True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise InvalidArgument("malformed chunked request body") from None
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    break
                yield from _read_exactly(self.rfile, size)
                self.rfile.readline(8)
        else:
            yield from _read_exactly(self.rfile, self._length())
        self.close_connection = keep

    def _length(self) -> int:
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit():
            raise InvalidArgument(f"invalid Content-Length {text!r}")
        return int(text)

    def _dispatch(self) -> None:
        self._body = None
        self.answered = False
        url = urlsplit(self.path)
        path = _VERSION_PREFIX.sub("", url.path)
        method = "GET" if self.command == "HEAD" else self.command
        try:
            for entry in self.routes:
                m = entry.pattern.match(path)
                if m is None or entry.method != method:
                    continue
                req = Request(self.command, path, parse_qs(url.query, keep_blank_values=True),
                              m.groupdict(), self)  # fmt: skip
                result = entry.call(req)
                if not self.answered:
                    if result is None:
                        self.reply_empty(204 if entry.status == 200 else entry.status)
                    else:
                        self.reply_json(result, entry.status)
                return
            # Never a silent wrong answer: 501, naming what is missing.
            raise Unsupported(f"cocoon does not serve {self.command} {path}")
        except CocoonError as e:
            self._fail(http_status(e), str(e))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug must still answer, and be logged whole
            log.exception("%s %s failed", self.command, path)
            self._fail(500, f"internal error: {e}")
        finally:
            # Whatever the route did not read must not be taken as the next request.
            if not self.close_connection:
                try:
                    self.body()
                except CocoonError:
                    self.close_connection = True

    def _fail(self, status: int, message: str) -> None:
        if self.answered:  # headers are out: all that is left is to hang up
            self.close_connection = True
            return
        log.info("%s %s: %d %s", self.command, self.path, status, message)
        self.reply_json({"message": message}, status)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    # -- response side -----------------------------------------------------------

    def _headers(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self.answered = True
        self.send_response(status)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()

    def reply_bytes(self, status: int, data: bytes, content_type: str) -> None:
        self._headers(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
        if self.command != "HEAD":
            self.wfile.write(data)

    def reply_json(self, value: Any, status: int = 200) -> None:
        self.reply_bytes(status, json.dumps(value).encode() + b"\n", "application/json")

    def reply_empty(self, status: int = 204, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._headers(status, [*([("Content-Length", "0")] if status != 204 else []), *headers])

    def start_stream(
        self, content_type: str, headers: Iterable[tuple[str, str]] = (), status: int = 200
    ) -> None:
        """Headers of a chunked answer: the body follows in :meth:`chunk` calls."""
        self._headers(status, [("Content-Type", content_type), ("Transfer-Encoding", "chunked"),
                               *headers])  # fmt: skip
        self.wfile.flush()

    def chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def hijack(self) -> None:
        """Turn the connection into a raw byte stream both ways (attach, exec start).

        Clients that ask to upgrade get ``101 UPGRADED``; older ones a 200
        whose body is the stream. Either way the connection ends with it.
        """
        self.body()
        upgrade = "upgrade" in self.headers.get("Connection", "").lower()
        extra = [("Connection", "Upgrade"), ("Upgrade", "tcp")] if upgrade else []
        self.answered = True
        self.close_connection = True
        if upgrade:
            self.send_response_only(101, "UPGRADED")
        else:
            self.send_response_only(200)
        self.send_header("Content-Type", RAW_STREAM)
        self.send_header("Api-Version", API_VERSION)
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.flush()

    # -- logging -----------------------------------------------------------------

    def address_string(self) -> str:
        return "unix"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s -> %s", self.command, self.path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.info(format, *args)


def _read_exactly(rfile: Any, size: int) -> Iterator[bytes]:
    while size > 0:
        data = rfile.read(min(size, 1 << 16))
        if not data:
            raise InvalidArgument("the request body ended early")
        size -= len(data)
        yield data


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True  # a client that never hangs up must not keep the service alive
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up is routine; anything else is a bug worth its traceback."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("a client hung up")
            return
        log.exception("error while serving a client")


__all__ = [
    "API_VERSION",
    "MIN_API_VERSION",
    "RAW_STREAM",
    "Handler",
    "Request",
    "RouteEntry",
    "Server",
    "route",
]
