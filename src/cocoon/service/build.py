"""``POST /build``: the body is a tar of the context; dockerd's JSON lines back.

Each step and each piece of RUN output is a ``{"stream": ...}`` line, the
image id an ``{"aux": {"ID": ...}}`` line followed by docker's "Successfully
built/tagged" lines (which the classic docker CLI reads), and a failure once
the stream has started an ``{"errorDetail": ..., "error": ...}`` line.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from cocoon.builder.progress import Quiet
from cocoon.errors import CocoonError, InvalidArgument, Unsupported
from cocoon.service.http import Request
from cocoon.service.images import Progress


class _Lines(Quiet):
    """Build progress as ``stream`` lines of the response."""

    def __init__(self, lines: Progress, quiet: bool) -> None:
        super().__init__()
        self.lines = lines
        self.quiet = quiet

    def step(self, label: str, text: str, *, cached: bool = False) -> None:
        super().step(label, text)
        if not self.quiet:
            self.lines.line(stream=f"{label} {text}\n" + (" ---> Using cache\n" if cached else ""))

    def output(self, data: bytes) -> None:
        super().output(data)
        if not self.quiet:
            self.lines.line(stream=data.decode(errors="replace"))

    def note(self, text: str) -> None:
        self.lines.line(stream=f"{text}\n")


def _mapping(req: Request, name: str) -> dict[str, str]:
    text = req.arg(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"{name}: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{name}: a JSON object of strings")
    # docker sends an argument given without a value as null: it is not set.
    return {str(k): str(v) for k, v in value.items() if v is not None}


def build(req: Request) -> None:
    from cocoon.builder.api import build as run_build
    from cocoon.builder.executor import BuildOptions
    from cocoon.builder.vm import work_dir

    if req.arg("remote"):
        raise Unsupported("builds from a remote context: send the context as the body")
    opts = BuildOptions(
        tags=tuple(req.params.get("t", [])),
        build_args=_mapping(req, "buildargs"),
        target=req.arg("target") or None,
        no_cache=req.flag("nocache"),
        pull=bool(req.arg("pull")),
        labels=_mapping(req, "labels"),
        platform=req.arg("platform") or None,
        network=req.arg("networkmode") or None,
    )
    lines = Progress(req)
    progress = _Lines(lines, req.flag("q"))
    work_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=work_dir()) as spool:
        for piece in req.handler.body_chunks():
            spool.write(piece)
        spool.seek(0)
        try:
            image = run_build(
                spool, opts, dockerfile=req.arg("dockerfile") or None, progress=progress
            )
        except CocoonError as e:
            lines.fail(e)
            req.handler.end_stream()
            return
    _done(lines, image.id, opts.tags)
    req.handler.end_stream()


def _done(lines: Progress, image_id: str, tags: Any) -> None:
    lines.line(aux={"ID": image_id})
    lines.line(stream=f"Successfully built {image_id.partition(':')[2][:12]}\n")
    for tag in tags:
        lines.line(stream=f"Successfully tagged {tag}\n")


__all__ = ["build"]
