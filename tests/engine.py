"""A cocoon Docker API service for tests: started on a private socket, stopped after.

``Service`` runs ``cocoon system service`` against the test's state folder
(optionally inside a test's network namespace), waits until it answers
``_ping``, and stops it on exit. ``docker`` calls Debian's docker CLI
(``/usr/bin/docker``: another, newer one may come first on PATH) with
``DOCKER_HOST`` pointing at it; ``request`` speaks HTTP to it directly.
"""

from __future__ import annotations

import http.client
import itertools
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

DOCKER = "/usr/bin/docker"
_serial = itertools.count()


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


class Service:
    def __init__(self, cocoon, netns: str | None = None) -> None:
        self.cocoon = cocoon
        self.socket = cocoon.run_dir / f"docker-{os.getpid()}-{next(_serial)}.sock"
        self.env = dict(cocoon.env)
        self.prefix: list[str] = []
        if netns is not None:
            # Inside the test's namespace the default network is a bridge there.
            self.env.pop("COCOON_NETWORK", None)
            self.prefix = ["ip", "netns", "exec", netns]
        self.log = cocoon.run_dir / f"{self.socket.name}.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Service:
        argv = self.cocoon.argv("system", "service", "--socket", str(self.socket))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [*self.prefix, *argv], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.request("GET", "/_ping")[0] == 200:
                    return self
            except OSError:
                pass
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the service did not answer"
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def request(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = UnixConnection(self.socket)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def docker_env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}

    def docker(
        self, *args: str, input: bytes | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, *args], env=self.docker_env(), input=input,
                              capture_output=True, timeout=timeout)  # fmt: skip
