"""Rendering for the CLI: aligned tables and relative times for people, JSON or Go templates
for scripts (``--format '{{.Names}}'``, see ``template.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

FIXED = ("table", "json")


def format_type(text: str) -> str:
    """``--format``'s value: table, json or a Go template, checked while parsing."""
    if text in FIXED:
        return text
    from cocoon.cli.template import Template
    from cocoon.errors import InvalidArgument

    try:
        Template(text)
    except InvalidArgument as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_format_flag(parser: Any, *short: str, default: str = "table") -> None:
    parser.add_argument(
        *short,
        "--format",
        type=format_type,
        default=default,
        metavar="table|json|TEMPLATE",
        help=f"output format: table, json or a Go template (default {default})",
    )


def is_template(fmt: str) -> bool:
    return fmt not in FIXED


def emit_template(
    fmt: str, items: Sequence[Any], headings: Mapping[str, str] | None = None
) -> None:
    from cocoon.cli.template import render_all

    sys.stdout.write(render_all(fmt, items, headings))


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def emit(fmt: str, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Print ``rows`` as JSON, through a template, or as a table of ``columns`` (key, heading)."""
    if fmt == "json":
        emit_json(list(rows))
        return
    if is_template(fmt):
        emit_template(fmt, rows, dict(columns))
        return
    cells = [[h for _, h in columns]] + [[str(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def emit_one(fmt: str, item: dict[str, Any]) -> None:
    if fmt == "json":
        emit_json(item)
        return
    if is_template(fmt):
        emit_template(fmt, [item])
        return
    width = max(map(len, item))
    for key, value in item.items():
        print(f"{key.ljust(width)}  {value}")


# Docker's wording for a span of time: the largest unit that reads well.
def size(n: float, digits: int = 3) -> str:
    """Bytes as the docker CLI writes them: 1000-based, ``digits`` significant digits
    (3 in ``images``, 4 in ``system df`` and prune's totals)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.{digits}g}{unit}"
        n /= 1000
    return f"{n:.{digits}g}TB"


def confirm(what: list[str]) -> bool:
    """Docker's prune question: what goes, then yes or no from stdin."""
    print("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what)
          + "Are you sure you want to continue? [y/N] ", end="", flush=True)  # fmt: skip
    return sys.stdin.readline().strip().lower() in ("y", "yes")
