"""A container's processes, from the image's own ``ps`` run inside its VM.

The host cannot list them (they live in the guest's kernel), so ``cocoon
top``, the client's ``top`` and the Docker API's ``top`` all run ``ps``
there, and need one in the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cocoon.container import manager
from cocoon.errors import ExternalError


def ps(ref: str, ps_args: Sequence[str] = ()) -> bytes:
    """``ps ARGS`` in the running container: its output."""
    status, out, err = manager.exec_run(ref, ["ps", *ps_args])
    if status.code != 0:
        why = status.error or err.decode(errors="replace").strip() or f"exit {status.code}"
        raise ExternalError(f"top runs ps inside the container, which failed: {why}")
    return out


def table(output: bytes) -> dict[str, list[Any]]:
    """``ps`` output as Docker's ``{"Titles": [...], "Processes": [[...]]}``: the
    last column (the command) keeps its spaces."""
    lines = output.decode(errors="replace").splitlines()
    titles = lines[0].split() if lines else []
    rows = [line.split(None, max(len(titles) - 1, 0)) for line in lines[1:] if line.strip()]
    return {"Titles": titles, "Processes": rows}


__all__ = ["ps", "table"]
