"""cocoon: OCI containers, each in its own lightweight virtual machine.

The library is the product as much as the CLI. In docker-py's terms::

    import cocoon
    client = cocoon.Client()
    client.containers.run("busybox", ["echo", "hi"])     # b"hi\\n"

or, for one command and its result::

    result = cocoon.run("busybox", ["echo", "hi"])
    result.exit_code, result.stdout     # 0, b"hi\\n"
    cocoon.build("app/", tag="app:1")   # a Dockerfile built into an image

A command may be a list of arguments or one string, which is split as a
POSIX shell would split it (``"echo hi"`` is ``["echo", "hi"]``). Every
error is a :class:`CocoonError`; see README's "Python" section for the tree.
Submodules are imported on first use so that ``cocoon`` starts fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cocoon.errors import (
    AlreadyExists,
    CocoonError,
    Corrupt,
    ExternalError,
    InvalidArgument,
    InvalidState,
    NotFound,
    Timeout,
    Unsupported,
)

# typing.TYPE_CHECKING without importing typing (~2.5 ms): the OCI
# runtime's light calls (start, delete, state), a process each, and what
# they import need nothing else from it. Type checkers take any
# TYPE_CHECKING as typing's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cocoon.client import (
        Client,
        Container,
        ContainerError,
        ExecResult,
        Image,
        Network,
        Volume,
        from_env,
    )
    from cocoon.container.run import RunResult

__version__ = "0.1.0"

# docker-py's name for a clash (a name in use, a removal refused).
Conflict = AlreadyExists

_FROM_CLIENT = ("Client", "Container", "ContainerError", "ExecResult", "Image", "Network",
                "Volume", "from_env")  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _FROM_CLIENT:
        import cocoon.client

        return getattr(cocoon.client, name)
    if name == "build":  # cocoon.build(path, tag=...), imported on first use
        from cocoon.builder import build

        return build
    raise AttributeError(f"module 'cocoon' has no attribute {name!r}")


def run(
    image: str,
    command: str | Sequence[str] | None = None,
    *,
    stdin: bytes | int | None = None,
    remove: bool = True,
    env: Mapping[str, str] | Sequence[str] = (),
    **options: Any,
) -> RunResult:
    """Run ``command`` in a new container of ``image`` and wait for it.

    ``command`` is a list, or one string split as the shell would. ``env`` is
    a mapping or ``K=V`` entries. ``options`` are the fields of
    :class:`cocoon.container.options.RunOptions` (workdir, user, entrypoint,
    cpus, memory, tty, ...); an unknown one raises InvalidArgument. Output is
    collected into the result unless ``stdout``/``stderr`` callables are given.
    """
    from cocoon.container.options import RunOptions
    from cocoon.container.run import run as run_container

    sinks = {k: options.pop(k) for k in ("stdout", "stderr", "on_start") if k in options}
    try:
        opts = RunOptions(command=command, remove=remove, env=env, **options)
    except TypeError as e:
        raise InvalidArgument(f"unknown run option: {e}") from None
    return run_container(image, opts, stdin=stdin, **sinks)


__all__ = [
    "AlreadyExists",
    "Client",
    "CocoonError",
    "Conflict",
    "Container",
    "ContainerError",
    "Corrupt",
    "ExecResult",
    "ExternalError",
    "Image",
    "InvalidArgument",
    "InvalidState",
    "Network",
    "NotFound",
    "Timeout",
    "Unsupported",
    "Volume",
    "__version__",
    "build",
    "from_env",
    "run",
]
