"""Disk building that runs in a child process (under fakeroot, or in a private
mount namespace): its result comes back on stdout, and its error on stderr,
whole, so the caller raises the same class with the same one-line message."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from cocoon.errors import CocoonError, InvalidState, from_code, to_wire


def run(argv: list[str], what: str) -> Any:
    """Run a child whose entry is :func:`main`; its result, or its error raised here."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return json.loads(result.stdout)
    said = (result.stderr.strip() or "no output").splitlines()[-1]
    try:
        wire = json.loads(said)
        error = from_code(wire["code"], wire["error"])
    except (ValueError, KeyError, TypeError):  # it died before it could say (a crash, fakeroot)
        raise CocoonError(f"{what}: {said}") from None
    raise error


def main(work: Callable[[], Any]) -> int:
    """The child's side: print ``work()``'s result, or its error for :func:`run`."""
    try:
        result = work()
    except OSError as e:
        if e.errno == errno.ENOSPC:
            error: CocoonError = InvalidState("no space left on the host's disk")
        else:
            error = CocoonError(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
    except CocoonError as e:
        error = e
    else:
        print(json.dumps(result))
        return 0
    print(json.dumps(to_wire(error)), file=sys.stderr)
    return 1


__all__ = ["main", "run"]
