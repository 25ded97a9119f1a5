"""From an image's config and the user's flags to the process the agent starts.

Docker's rules: ``--entrypoint`` replaces the image's Entrypoint and drops its
Cmd; a command on the line replaces Cmd; environment is image Env, then env
files, then ``-e``; ``-e NAME`` without a value copies the caller's variable
when it is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cocoon.errors import InvalidArgument, NotFound

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_entry(item: str, host_env: Mapping[str, str]) -> str | None:
    name, sep, _ = item.partition("=")
    if not name or any(c.isspace() for c in name):
        raise InvalidArgument(f"invalid environment variable {item!r}")
    if sep:
        return item
    value = host_env.get(name)
    return None if value is None else f"{name}={value}"


def read_env_file(path: str | Path) -> list[str]:
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError as e:
        raise NotFound(f"env file {path} not found") from e
    except OSError as e:
        raise InvalidArgument(f"cannot read env file {path}: {e.strerror}") from e
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def merge_env(*layers: Iterable[str]) -> list[str]:
    """Later entries win; the first position of a name is kept, like Docker."""
    merged: dict[str, str] = {}
    for layer in layers:
        for entry in layer:
            name, _, _ = entry.partition("=")
            merged[name] = entry
    return list(merged.values())


def argv(
    image_entrypoint: Sequence[str] | None,
    image_cmd: Sequence[str] | None,
    command: Sequence[str] | None,
    entrypoint: str | None,
) -> list[str]:
    if entrypoint is not None:
        head = [entrypoint] if entrypoint else []
        return head + list(command or [])
    return list(image_entrypoint or []) + list(command or image_cmd or [])


def process_spec(
    *,
    image_entrypoint: Sequence[str] | None,
    image_cmd: Sequence[str] | None,
    image_env: Sequence[str] | None,
    image_workdir: str | None,
    image_user: str | None,
    command: Sequence[str] | None = None,
    entrypoint: str | None = None,
    env: Sequence[str] = (),
    env_files: Sequence[str | Path] = (),
    workdir: str | None = None,
    user: str | None = None,
    hostname: str,
    tty: tuple[int, int] | None = None,
    stdin: bool = False,
    host_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The container's main process, as its record keeps it (``config["process"]``).

    These are the fields of ``agent.protocol.ProcessSpec``, made into one
    only once the VM runs (``boot.process_of``): the protocol is not needed
    before.
    """
    host_env = os.environ if host_env is None else host_env
    args = argv(image_entrypoint, image_cmd, command, entrypoint)
    if not args:
        raise InvalidArgument("no command specified: the image has no Cmd or Entrypoint")
    from_files = [e for f in env_files for e in read_env_file(f)]
    extra = [e for item in [*from_files, *env] if (e := env_entry(item, host_env))]
    defaults = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if tty is not None:
        defaults.append("TERM=xterm")
    merged = merge_env(defaults, image_env or [], extra)
    cwd = workdir or image_workdir or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"working directory {cwd!r} must be an absolute path")
    return {
        "args": args,
        "env": merged,
        "cwd": cwd,
        "user": user or image_user or "0:0",
        "tty": tty,
        "stdin": stdin,
    }
