"""Containers as objects: ``client.containers`` and :class:`Container`.

A face over ``cocoon.container`` (manager, run, logs, inspect, filters), in
docker-py's terms: it keeps no state of its own beyond a container's last
``attrs``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from cocoon.container import inspect as details
from cocoon.container import manager
from cocoon.container.options import RunOptions, command_list
from cocoon.errors import CocoonError, InvalidArgument, NotFound, Timeout

Ports = Mapping[str | int, int | str | tuple[str, int] | Sequence[int] | None]


class ContainerError(CocoonError):
    """A container run in the foreground (``containers.run(detach=False)``) exited non-zero."""

    def __init__(self, container: Container, exit_status: int, stderr: bytes) -> None:
        self.container = container
        self.exit_status = exit_status
        self.stderr = stderr
        text = stderr.decode(errors="replace").strip().splitlines()
        why = f": {text[-1]}" if text else ""
        super().__init__(f"container {container.name} exited with {exit_status}{why}")


class ExecResult(NamedTuple):
    """What ``exec_run`` returns: the exit code, and the output (a pair with ``demux``)."""

    exit_code: int | None
    output: bytes | tuple[bytes, bytes] | None


class Container:
    """One container; ``attrs`` is ``docker inspect``'s view as of the last ``reload``."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs

    def __repr__(self) -> str:
        return f"<Container {self.short_id} {self.name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Container) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def id(self) -> str:
        return str(self.attrs["Id"])

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return str(self.attrs["Name"]).lstrip("/")

    @property
    def status(self) -> str:
        """``created``, ``running`` or ``exited``."""
        return str(self.attrs["State"]["Status"])

    @property
    def image(self) -> str:
        """The image as it was named when the container was made."""
        return str(self.attrs["Config"]["Image"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.attrs["Config"]["Labels"])

    @property
    def ports(self) -> dict[str, list[dict[str, str]]]:
        return dict(self.attrs["NetworkSettings"]["Ports"])

    def reload(self) -> None:
        self.attrs = manager.inspect(self.id)

    def start(self) -> None:
        manager.start(self.id)
        self.reload()

    def stop(self, timeout: float = 10) -> None:
        """Signal the main process (the stop signal), wait ``timeout`` s, then power off."""
        manager.stop(self.id, timeout)
        self._reload_if_kept()

    def kill(self, signal: str | int = "SIGKILL") -> None:
        manager.kill(self.id, str(signal))

    def remove(self, force: bool = False) -> None:
        manager.remove(self.id, force)

    def restart(self, timeout: float | None = None) -> None:
        manager.restart(self.id, timeout)
        self.reload()

    def pause(self) -> None:
        """Freeze the VM: its CPUs stop, memory and connections stay."""
        manager.pause(self.id)
        self.reload()

    def unpause(self) -> None:
        manager.unpause(self.id)
        self.reload()

    def rename(self, name: str) -> None:
        manager.rename(self.id, name)
        self.reload()

    def update(
        self,
        mem_limit: str | int | None = None,
        cpus: float | None = None,
        restart_policy: Mapping[str, Any] | None = None,
    ) -> None:
        """New memory (``"512m"``) and CPUs: for the next start, and live where the VM
        allows (memory down through the balloon, a CPU quota up to its vCPUs); a new
        ``restart_policy`` (``{"Name": "on-failure", "MaximumRetryCount": 3}``) from the
        next exit."""
        from cocoon.container.restart import from_docker
        from cocoon.container.update import update

        policy = None if restart_policy is None else from_docker(restart_policy) or "no"
        update(self.id, memory=None if mem_limit is None else str(mem_limit), cpus=cpus,
               policy=policy)  # fmt: skip
        self.reload()

    def top(self, ps_args: Sequence[str] = ()) -> dict[str, list[Any]]:
        """The processes, from the image's ``ps``: ``{"Titles": [...], "Processes": [[...]]}``."""
        from cocoon.container import top

        return top.table(top.ps(self.id, ps_args))

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the container stops: ``{"StatusCode": code, "Error": ...}`` as docker-py.

        Raises Timeout if it is still running after ``timeout`` seconds.
        """
        done: list[Any] = []
        waiter = threading.Thread(target=lambda: done.append(manager.wait(self.id)), daemon=True)
        waiter.start()
        waiter.join(timeout)
        if waiter.is_alive():
            raise Timeout(f"container {self.name} still runs after {timeout:g}s")
        if not done:
            raise NotFound(f"container {self.name} is gone")
        rec = done[0]
        self._reload_if_kept()
        error = {"Message": rec.error} if rec.error and rec.exit_code is None else None
        return {"StatusCode": -1 if rec.exit_code is None else rec.exit_code, "Error": error}

    def logs(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        stream: bool = False,
        follow: bool | None = None,
        tail: int | str = "all",
        timestamps: bool = False,
    ) -> bytes | Iterator[bytes]:
        """The container's output: all of it as bytes, or chunks as they come with ``stream``.

        ``follow`` (default: ``stream``) keeps reading until the container stops.
        """
        from cocoon.container import logs

        if tail != "all" and (not isinstance(tail, int) or tail < 0):
            raise InvalidArgument(f"tail must be 'all' or a count, not {tail!r}")
        count = None if tail == "all" else int(tail)
        follow = stream if follow is None else follow
        wanted = {name for name, on in (("stdout", stdout), ("stderr", stderr)) if on}
        entries = logs.shown(self.id, tail=count, keep_following=follow, streams=wanted)

        def chunks() -> Iterator[bytes]:
            for entry in entries:
                yield (logs.stamp(entry.time) if timestamps else b"") + entry.data

        return chunks() if stream else b"".join(chunks())

    def exec_run(
        self,
        cmd: str | Sequence[str],
        *,
        environment: Mapping[str, str] | Sequence[str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        stdin: bytes | None = None,
        demux: bool = False,
    ) -> ExecResult:
        """Run ``cmd`` (a list, or one string split as the shell would) in the running container.

        ``output`` is stdout and stderr interleaved as they came, or the pair
        ``(stdout, stderr)`` with ``demux``. A command that cannot start
        gives 126 or 127 and the reason in the output, as with Docker.
        """
        from cocoon.container.options import env_list

        args = command_list(cmd, "command") or []
        status, out, err = manager.exec_run(self.id, args, stdin=stdin, merge=not demux,
                                            env=env_list(environment), workdir=workdir,
                                            user=user)  # fmt: skip
        if status.error:
            why = f"{status.error}\n".encode()
            out, err = (out, err + why) if demux else (out + why, err)
        return ExecResult(status.code, (out, err) if demux else out)

    def _reload_if_kept(self) -> None:
        try:
            self.reload()
        except NotFound:  # made with remove=True: gone once stopped
            self.attrs["State"] = {**self.attrs["State"], "Status": "removed", "Running": False}


class ContainerCollection:
    """``client.containers``: make, find and list containers."""

    def run(
        self,
        image: str,
        command: str | Sequence[str] | None = None,
        *,
        detach: bool = False,
        stdout: bool = True,
        stderr: bool = False,
        remove: bool = False,
        **options: Any,
    ) -> Container | bytes:
        """Run ``command`` in a new container of ``image``, as docker-py's ``containers.run``.

        With ``detach`` the container runs in the background and is returned.
        Without, the call waits and returns its output (stdout, and stderr
        if asked); an exit code other than 0 raises :class:`ContainerError`.
        ``options`` are those of :meth:`create`.
        """
        opts = _options(command, remove=remove, **options)
        if detach:
            return Container(details.view(manager.run_detached(image, opts)))
        from cocoon.container.run import run

        out, err = bytearray(), bytearray()

        def on_stderr(data: bytes) -> None:
            err.extend(data)
            if stderr:
                out.extend(data)

        result = run(image, opts, stdout=out.extend if stdout else _drop, stderr=on_stderr)
        if result.error:  # why the command could not start (126, 127)
            on_stderr(f"{result.error}\n".encode())
        if result.exit_code != 0:
            try:
                container = self.get(result.container_id)
            except NotFound:  # made with remove=True
                container = Container({"Id": result.container_id, "Name": f"/{result.name}"})
            raise ContainerError(container, result.exit_code, bytes(err))
        return bytes(out)

    def create(
        self, image: str, command: str | Sequence[str] | None = None, **options: Any
    ) -> Container:
        """A new container, not started.

        Options (docker-py's names): ``name``, ``environment`` (mapping or
        ``K=V`` list), ``ports`` (``{"80/tcp": 8080}``; ``None`` picks a free
        host port, ``(ip, port)`` binds an address), ``publish_all_ports``,
        ``entrypoint``, ``working_dir``, ``user``, ``hostname``, ``network``,
        ``labels``, ``dns``, ``extra_hosts`` (``{name: ip}``), ``cpus``,
        ``mem_limit`` (``"512m"``), ``tty``, ``stdin_open``, ``stop_signal``,
        ``remove``, ``pull`` (``always``/``missing``/``never``), ``restart_policy``
        (``{"Name": "on-failure", "MaximumRetryCount": 3}``), ``stop_timeout``,
        ``dns_search``, ``dns_opt``, ``shm_size`` (``"64m"`` or bytes), ``platform``.
        A fractional ``cpus`` is rounded up to vCPUs and kept as a CPU quota.
        """
        return Container(details.view(manager.create(image, _options(command, **options))))

    def get(self, container_id: str) -> Container:
        """By id, name or unique id prefix; NotFound if there is none."""
        return Container(manager.inspect(container_id))

    def list(
        self, all: bool = False, filters: Mapping[str, str | Sequence[str]] | None = None
    ) -> list[Container]:
        """Running containers (all with ``all``), newest first; ``filters`` as ``ls --filter``."""
        return [Container(details.view(r)) for r in manager.containers(all, filters)]

    def prune(self) -> dict[str, list[str]]:
        return {"ContainersDeleted": [rec.id for rec in manager.prune()]}


def _drop(data: bytes) -> None:
    pass


def _options(
    command: str | Sequence[str] | None,
    *,
    environment: Mapping[str, str | None] | Sequence[str] | None = None,
    ports: Ports | None = None,
    publish_all_ports: bool = False,
    entrypoint: str | Sequence[str] | None = None,
    working_dir: str | None = None,
    extra_hosts: Mapping[str, str] | None = None,
    mem_limit: str | int = "512m",
    stdin_open: bool = False,
    tty: bool = False,
    labels: Mapping[str, str] | Sequence[str] | None = None,
    restart_policy: Mapping[str, Any] | None = None,
    dns_opt: Sequence[str] = (),
    shm_size: str | int | None = None,
    **rest: Any,
) -> RunOptions:
    """docker-py's keyword arguments as RunOptions; unknown ones are refused, not dropped."""
    args = command_list(command, "command")
    if entrypoint is not None and not isinstance(entrypoint, str):
        # Docker runs the entrypoint list's head with the rest before the command.
        head = command_list(entrypoint, "entrypoint") or [""]
        entrypoint, args = head[0], head[1:] + (args or [])
    if isinstance(labels, Sequence) and not isinstance(labels, str):
        labels = dict.fromkeys(labels, "")
    if restart_policy:  # docker-py: {"Name": "on-failure", "MaximumRetryCount": 3}
        from cocoon.container.restart import from_docker

        rest["restart"] = from_docker(restart_policy) or "no"
    try:
        return RunOptions(
            command=args,
            entrypoint=entrypoint,
            env=environment or (),
            publish=_publish(ports or {}),
            publish_all=publish_all_ports,
            workdir=working_dir,
            add_hosts=[f"{name}:{ip}" for name, ip in (extra_hosts or {}).items()],
            memory=str(mem_limit),
            interactive=stdin_open,
            tty=(24, 80) if tty else None,
            labels=labels or {},
            dns_options=dns_opt,
            shm_size=None if shm_size is None else str(shm_size),
            **rest,
        )
    except TypeError as e:  # an option RunOptions does not have
        raise InvalidArgument(f"unknown container option: {e}") from None


def _publish(ports: Ports) -> list[str]:
    """``{"80/tcp": 8080, "53/udp": ("127.0.0.1", 53), 81: None}`` as ``-p`` specs."""
    specs = []
    for key, value in ports.items():
        port, _, proto = str(key).partition("/")
        suffix = f"/{proto}" if proto else ""
        targets = value if isinstance(value, list) else [value]
        for target in targets:
            if target is None:
                specs.append(f"{port}{suffix}")
            elif isinstance(target, tuple):
                host_ip, host_port = target
                specs.append(f"{host_ip}:{host_port or ''}:{port}{suffix}")
            else:
                specs.append(f"{target}:{port}{suffix}")
    return specs


__all__ = ["Container", "ContainerCollection", "ContainerError", "ExecResult"]
