"""From an image's config and the user's flags to the process the agent starts.

Docker's rules: ``--entrypoint`` replaces the image's Entrypoint and drops its
Cmd; a command on the line replaces Cmd; environment is image Env, then env
files, then ``-e``; ``-e NAME`` without a value copies the caller's variable
when it is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cocoon.agent.spec import ProcessSpec
from cocoon.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from cocoon.container.options import RunOptions
    from cocoon.image.model import ImageConfig

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_NAME_MAX = 64
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
# execve(2)'s limits on x86-64 with the default 8 MiB stack: ARG_MAX is a
# quarter of the stack, one string at most 32 pages.
ARG_MAX = 2 << 20
MAX_ARG_STRLEN = 32 * 4096
POINTER = 8


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


def check_hostname(name: str, *, limit: int = HOST_NAME_MAX, what: str = "hostname") -> str:
    """An RFC 1123 host name the guest kernel takes whole (at most 64 bytes), or InvalidArgument.

    Also a domain name (``limit`` 253) where the guest needs one: a --dns-search domain."""
    if len(name) > limit or not _HOSTNAME.match(name):
        raise InvalidArgument(
            f"invalid {what} {name!r}: use letters, digits and '-' in dot-separated "
            f"labels, at most {limit} characters"
        )
    return name


def check_exec_size(args: Sequence[str], env: Sequence[str]) -> None:
    """Refuse what execve(2) in the guest would refuse (E2BIG), before a VM boots for it.

    Linux's limits: each string at most MAX_ARG_STRLEN bytes with its NUL,
    and all of them with their NULs and pointers at most ARG_MAX.
    """
    total = 0
    for item in (*args, *env):
        size = len(item.encode()) + 1
        if size > MAX_ARG_STRLEN:
            raise InvalidArgument(
                f"an argument or environment entry of {size - 1} bytes is longer than "
                f"Linux allows ({MAX_ARG_STRLEN - 1})"
            )
        total += size + POINTER
    if total > ARG_MAX:
        raise InvalidArgument(
            f"arguments and environment take {total} bytes; Linux allows {ARG_MAX}"
        )


def process_spec(
    image: ImageConfig,
    opts: RunOptions,
    *,
    hostname: str,
    stdin: bool,
    host_env: Mapping[str, str] | None = None,
) -> ProcessSpec:
    """The container's main process: the image's config with the caller's options over it."""
    host_env = os.environ if host_env is None else host_env
    args = argv(image.entrypoint, image.cmd, opts.command, opts.entrypoint)
    if not args:
        raise InvalidArgument("no command specified: the image has no Cmd or Entrypoint")
    from_files = [e for f in opts.env_files for e in read_env_file(f)]
    extra = [e for item in [*from_files, *opts.env] if (e := env_entry(item, host_env))]
    defaults = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if opts.tty is not None:
        defaults.append("TERM=xterm")
    merged = merge_env(defaults, image.env, extra)
    cwd = opts.workdir or image.working_dir or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"working directory {cwd!r} must be an absolute path")
    check_exec_size(args, merged)
    return ProcessSpec(
        args=args,
        env=merged,
        cwd=cwd,
        user=opts.user or image.user or "0:0",
        tty=opts.tty,
        stdin=stdin,
        rlimits=tuple(opts.ulimits),
        groups=tuple(str(g) for g in opts.group_add),
    )
