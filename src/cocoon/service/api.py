"""The Engine API's route table, and the service's main loop."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

from cocoon.errors import AlreadyExists, InvalidArgument, Unsupported
from cocoon.service import archive, build, events, images, networks, stats, system, usage, volumes
from cocoon.service.containers import Containers
from cocoon.service.execs import Execs
from cocoon.service.exits import Exits
from cocoon.service.http import Handler, Request, Route, RouteEntry, Server, route

log = logging.getLogger("cocoon.service")


def _not_served(why: str) -> Route:
    """A call cocoon knows and cannot answer: 501, saying why."""

    def answer(req: Request) -> None:
        raise Unsupported(f"cocoon does not serve {req.method} {req.path}: {why}")

    return answer


_NO_SEARCH = _not_served("cocoon does not search registries; pull an image by its name")


def routes() -> tuple[RouteEntry, ...]:
    c = Containers(Exits())
    x = Execs()
    return (
        route("GET", "/_ping", system.ping),
        route("GET", "/version", system.version),
        route("GET", "/info", system.info),
        route("GET", "/system/df", usage.df),
        route("GET", "/events", events.stream),
        route("POST", "/containers/create", c.create, 201),
        route("GET", "/containers/json", c.list),
        route("POST", "/containers/prune", c.prune),
        route("GET", "/containers/{id}/json", c.inspect),
        route("POST", "/containers/{id}/start", c.start),
        route("POST", "/containers/{id}/stop", c.stop),
        route("POST", "/containers/{id}/restart", c.restart),
        route("POST", "/containers/{id}/kill", c.kill),
        route("POST", "/containers/{id}/wait", c.wait),
        route("POST", "/containers/{id}/attach", c.attach),
        route("GET", "/containers/{id}/logs", c.logs),
        route("POST", "/containers/{id}/resize", c.resize),
        route("POST", "/containers/{id}/update", c.update),
        route("POST", "/containers/{id}/pause", c.pause),
        route("POST", "/containers/{id}/unpause", c.unpause),
        route("POST", "/containers/{id}/rename", c.rename),
        route("GET", "/containers/{id}/export", c.export),
        route("GET", "/containers/{id}/top", c.top),
        route("GET", "/containers/{id}/stats", stats.get),
        route("GET", "/containers/{id}/archive", archive.get),
        route("PUT", "/containers/{id}/archive", archive.put),
        route("DELETE", "/containers/{id}", c.delete),
        route("POST", "/containers/{id}/exec", x.create, 201),
        route("POST", "/exec/{id}/start", x.start),
        route("POST", "/exec/{id}/resize", x.resize),
        route("GET", "/exec/{id}/json", x.inspect),
        route("POST", "/build", build.build),
        route("POST", "/images/create", images.pull),
        route("GET", "/images/json", images.list_images),
        route("GET", "/images/get", images.save),
        route("POST", "/images/prune", images.prune),
        route("GET", "/images/search", _NO_SEARCH),
        route("POST", "/build/prune", usage.build_prune),
        route("POST", "/images/load", images.load),
        route("GET", "/images/{name*}/get", images.save),
        route("GET", "/images/{name*}/json", images.inspect),
        route("POST", "/images/{name*}/tag", images.tag),
        route("POST", "/images/{name*}/push", images.push),
        route("DELETE", "/images/{name*}", images.remove),
        route("GET", "/networks", networks.list_networks),
        route("POST", "/networks/create", networks.create, 201),
        route("POST", "/networks/prune", networks.prune),
        route("GET", "/networks/{id}", networks.inspect),
        route("DELETE", "/networks/{id}", networks.delete),
        route("POST", "/networks/{id}/connect", networks.connect),
        route("POST", "/networks/{id}/disconnect", networks.disconnect),
        route("GET", "/volumes", volumes.list_volumes),
        route("POST", "/volumes/create", volumes.create, 201),
        route("POST", "/volumes/prune", volumes.prune),
        route("GET", "/volumes/{name}", volumes.inspect),
        route("DELETE", "/volumes/{name}", volumes.delete),
    )


def default_socket() -> Path:
    """``/run/cocoon/docker.sock`` as root, ``$XDG_RUNTIME_DIR/cocoon/docker.sock`` otherwise."""
    if os.geteuid() == 0:
        return Path("/run/cocoon/docker.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/cocoon-{os.getuid()}"
    return Path(runtime) / "cocoon" / "docker.sock"


def _claim(path: Path) -> None:
    """Remove a socket left by a service that died; refuse one a live service answers."""
    import socket

    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise InvalidArgument(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
            return
    raise AlreadyExists(f"a service already listens on {path}")


def serve(path: Path) -> None:
    """Serve the Engine API on the unix socket ``path`` until SIGTERM or SIGINT.

    Containers outlive the service: it only asks their monitors.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _claim(path)
    handler = type("EngineHandler", (Handler,), {"routes": routes()})
    old_mask = os.umask(0o177)  # the socket is as powerful as its owner: 0600
    try:
        server = Server(str(path), handler)
    finally:
        os.umask(old_mask)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    log.info("serving the Docker Engine API on unix://%s", path)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    finally:
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        log.info("stopped")


__all__ = ["default_socket", "routes", "serve"]
