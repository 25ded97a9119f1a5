"""docker-compose 1.29 (Debian's) drives a two-service project through the service, real VMs.

The service runs inside the test's network namespace, so the project's
network (a cocoon bridge) and its containers' addresses live there.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from engine import Service

pytestmark = pytest.mark.vm

COMPOSE = "/usr/bin/docker-compose"
PROJECT = """\
version: "3"
services:
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
  client:
    image: {image}
    command: ["sh", "-c", "for i in $$(seq 30); do wget -qO- http://web/hostname && break;
              sleep 1; done; echo client-done; sleep 600"]
"""


def test_two_services_reach_each_other_by_name_and_down_leaves_nothing(
    cocoon, netns, busybox, tmp_path
):
    (tmp_path / "docker-compose.yml").write_text(PROJECT.format(image=busybox))
    with Service(cocoon, netns=netns) as svc:

        def compose(*args: str) -> str:
            argv = [COMPOSE, "-p", "demo", *args]
            got = subprocess.run(
                argv, cwd=tmp_path, env=svc.docker_env(), capture_output=True, timeout=300
            )
            assert got.returncode == 0, (got.stdout + got.stderr).decode()
            return got.stdout.decode()

        try:
            compose("up", "-d")
            listed = compose("ps")
            assert "demo_web_1" in listed and "demo_client_1" in listed and " Up " in listed
            web_id = svc.docker("inspect", "-f", "{{.Id}}", "demo_web_1").stdout.decode()
            deadline = time.monotonic() + 120
            while "client-done" not in (logs := compose("logs", "--no-color", "client")):
                assert time.monotonic() < deadline, logs
                time.sleep(0.5)
            # The client found the web server by its service name: it printed its hostname.
            assert web_id[:12] in logs, logs
            networks = svc.docker("network", "ls", "--format", "{{.Name}}").stdout.decode()
            assert "demo_default" in networks.split()
        finally:
            compose("down")
        assert svc.docker("ps", "-aq").stdout == b""
        networks = svc.docker("network", "ls", "--format", "{{.Name}}").stdout.decode()
        assert "demo_default" not in networks.split()
    assert json.loads(cocoon("ls", "-a", "--format", "json").stdout or b"[]") == []
    assert "demo_default" not in (cocoon.state / "networks" / "networks.json").read_text()
