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
# web on front, db on back, app on both: compose creates app on one network
# and connects it to the other before it starts.
TWO_NETWORKS = """\
version: "3"
services:
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
    networks: [front]
  db:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
    networks: [back]
  app:
    image: {image}
    command: ["sh", "-c", "for i in $$(seq 30); do wget -qO- http://web/hostname &&
              wget -qO- http://db/hostname && break; sleep 1; done; echo app-done; sleep 600"]
    networks: [front, back]
networks:
  front: {{}}
  back: {{}}
"""


def composer(svc: Service, folder, project: str):
    """docker-compose on ``folder``'s project, through the test's service; its output."""

    def compose(*args: str) -> str:
        argv = [COMPOSE, "-p", project, *args]
        got = subprocess.run(
            argv, cwd=folder, env=svc.docker_env(), capture_output=True, timeout=300
        )
        assert got.returncode == 0, (got.stdout + got.stderr).decode()
        return got.stdout.decode()

    return compose


def wait_logs(compose, service: str, done: str) -> str:
    deadline = time.monotonic() + 120
    while done not in (logs := compose("logs", "--no-color", service)):
        assert time.monotonic() < deadline, logs
        time.sleep(0.5)
    return logs


def test_two_services_reach_each_other_by_name_and_down_leaves_nothing(
    cocoon, netns, busybox, tmp_path
):
    (tmp_path / "docker-compose.yml").write_text(PROJECT.format(image=busybox))
    with Service(cocoon, netns=netns) as svc:
        compose = composer(svc, tmp_path, "demo")
        try:
            compose("up", "-d")
            listed = compose("ps")
            assert "demo_web_1" in listed and "demo_client_1" in listed and " Up " in listed
            web_id = svc.docker("inspect", "-f", "{{.Id}}", "demo_web_1").stdout.decode()
            logs = wait_logs(compose, "client", "client-done")
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


def test_a_service_on_two_networks_reaches_a_peer_on_each(cocoon, netns, busybox, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(TWO_NETWORKS.format(image=busybox))
    with Service(cocoon, netns=netns) as svc:
        compose = composer(svc, tmp_path, "duo")
        try:
            compose("up", "-d")
            ids = {
                name: svc.docker("inspect", "-f", "{{.Id}}", f"duo_{name}_1").stdout.decode()
                for name in ("web", "db")
            }
            logs = wait_logs(compose, "app", "app-done")
            # app found web on front and db on back by their service names.
            assert ids["web"][:12] in logs and ids["db"][:12] in logs, logs
            got = svc.docker("inspect", "duo_app_1")
            cards = json.loads(got.stdout)[0]["NetworkSettings"]["Networks"]
            assert set(cards) == {"duo_front", "duo_back"}
            assert all(card["IPAddress"] and card["MacAddress"] for card in cards.values())
            assert "app" in cards["duo_back"]["Aliases"]
        finally:
            compose("down")
        assert svc.docker("ps", "-aq").stdout == b""
    assert json.loads(cocoon("ls", "-a", "--format", "json").stdout or b"[]") == []
    assert "duo_" not in (cocoon.state / "networks" / "networks.json").read_text()
