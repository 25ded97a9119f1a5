"""``cocoon build``: Dockerfiles built into OCI images inside microVMs.

A face-level package, like ``cli/``: it may use image/, rootfs/, vm/, agent/
and container/; nothing below it imports it. The parser side is pure:

    dockerfile  the Dockerfile's text -> stages of instructions (Docker's syntax)
    expand      Docker's variable substitution and key=value words
    stage       one stage's non-filesystem semantics: its image config, ARG
                scoping, RUN's argv and environment, COPY/ADD operations
    ignore      .dockerignore patterns (moby's patternmatcher rules)
    context     the build context on the host: content hashes and COPY tars

The rest runs a build: executor (stages, steps), cache, vm (the build VM),
layers, sources (COPY --from trees), assemble (the image), progress, api
(the one entry of every face).

:func:`build` is the library's ``cocoon.build(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any


def build(
    path: str | Path | IO[bytes] = ".",
    *,
    tag: str | Sequence[str] = (),
    dockerfile: str | Path | None = None,
    buildargs: Mapping[str, str] | None = None,
    target: str | None = None,
    nocache: bool = False,
    pull: bool = False,
    labels: Mapping[str, str] | None = None,
    platform: str | None = None,
    network: str | None = None,
    progress: Any = None,
) -> Any:
    """Build the image of ``path`` (a context folder, or a tar stream of one).

    Returns the stored :class:`cocoon.image.model.Image`, tagged with ``tag``
    (one reference or several). ``progress`` is a ``build.progress.Plain``
    to see each step; by default nothing is shown.
    """
    from cocoon.builder.api import build as build_context
    from cocoon.builder.executor import BuildOptions

    opts = BuildOptions(
        tags=(tag,) if isinstance(tag, str) else tuple(tag),
        build_args=dict(buildargs or {}),
        target=target,
        no_cache=nocache,
        pull=pull,
        labels=dict(labels or {}),
        platform=platform,
        network=network,
    )
    return build_context(path, opts, dockerfile=dockerfile, progress=progress)


__all__ = ["build"]
