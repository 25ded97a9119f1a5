"""cocoon: OCI containers, each in its own lightweight virtual machine.

The library is the product as much as the CLI::

    import cocoon
    result = cocoon.run("busybox", ["echo", "hi"])
    result.exit_code, result.stdout     # 0, b"hi\\n"

Submodules are imported on first use so that ``cocoon`` starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cocoon.container.run import RunResult

__version__ = "0.1.0"


def run(
    image: str,
    command: Sequence[str] | None = None,
    *,
    stdin: bytes | int | None = None,
    remove: bool = True,
    **options: Any,
) -> RunResult:
    """Run ``command`` in a new container of ``image`` and wait for it.

    ``options`` are the fields of :class:`cocoon.container.options.RunOptions`
    (env, workdir, user, entrypoint, cpus, memory, tty, ...). Output is
    collected into the result unless ``stdout``/``stderr`` callables are given.
    """
    from cocoon.container.options import RunOptions
    from cocoon.container.run import run as run_container

    sinks = {k: options.pop(k) for k in ("stdout", "stderr", "on_start") if k in options}
    opts = RunOptions(command=command, remove=remove, **options)
    return run_container(image, opts, stdin=stdin, **sinks)


__all__ = ["__version__", "run"]
