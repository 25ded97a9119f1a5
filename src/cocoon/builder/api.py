"""One entry point for every face of ``build``: CLI, library, client, Docker API.

It finds the context (a folder, or a tar stream unpacked into a temporary
folder that goes when the build ends), the Dockerfile (in the context, a
host path, or text) and the context's ``.dockerignore``, then runs the
executor.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from cocoon.builder.executor import BuildOptions
from cocoon.builder.executor import build as run_build
from cocoon.builder.progress import Quiet
from cocoon.builder.vm import session, work_dir
from cocoon.errors import InvalidArgument, NotFound
from cocoon.image.model import Image
from cocoon.image.store import ImageStore

if TYPE_CHECKING:
    from cocoon.builder.context import Context

DOCKERFILE = "Dockerfile"
DOCKERFILE_MAX = 16 << 20


@contextlib.contextmanager
def _context(source: str | Path | IO[bytes], dockerfile: str | Path | None) -> Iterator[Context]:
    """The build context of a folder (its ``.dockerignore``, or the Dockerfile's own
    ``NAME.dockerignore``), or of a tar stream (unpacked, removed after)."""
    from cocoon.builder.context import Context

    if not isinstance(source, str | Path):
        work_dir().mkdir(parents=True, exist_ok=True)
        into = Path(tempfile.mkdtemp(prefix="context-", dir=work_dir()))
        try:
            context = Context.from_tar(source, into)
            yield context
        finally:
            shutil.rmtree(into, ignore_errors=True)
        return
    yield Context.at(Path(source), None if dockerfile is None else Path(dockerfile))


def _dockerfile(
    root: Path, dockerfile: str | Path | None, text: str | None, *, inside: bool
) -> tuple[str, str]:
    """(text, name for messages) of the Dockerfile: ``dockerfile`` is a host
    path (the CLI's -f) or, if no such file or with ``inside`` (a tar context,
    the Docker API), a path in the context, which it may not leave."""
    if text is not None:
        return text, DOCKERFILE
    path = root / DOCKERFILE if dockerfile is None else Path(dockerfile)
    if dockerfile is not None and (inside or (not path.is_absolute() and not path.exists())):
        path = (root / str(dockerfile).lstrip("/")).resolve()
        if not path.is_relative_to(root):
            raise InvalidArgument(f"{dockerfile}: the Dockerfile is outside the build context")
    try:
        with open(path, "rb") as f:
            data = f.read(DOCKERFILE_MAX + 1)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such Dockerfile") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{path}: is a folder, not a Dockerfile") from None
    if len(data) > DOCKERFILE_MAX:
        raise InvalidArgument(f"{path}: a Dockerfile larger than 16 MiB")
    return data.decode(errors="replace"), path.name


def build(
    context: str | Path | IO[bytes],
    opts: BuildOptions,
    *,
    dockerfile: str | Path | None = None,
    dockerfile_text: str | None = None,
    progress: Quiet | None = None,
    store: ImageStore | None = None,
) -> Image:
    """Build an image from ``context`` (a folder, or a tar stream of one)."""
    folder = None if not isinstance(context, str | Path) else dockerfile
    with session(), _context(context, folder) as ctx:
        inside = not isinstance(context, str | Path)
        text, name = _dockerfile(Path(ctx.root), dockerfile, dockerfile_text, inside=inside)
        return run_build(ctx, text, opts, store=store, progress=progress, filename=name)


__all__ = ["BuildOptions", "build"]
