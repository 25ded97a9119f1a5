"""Rendering for the CLI: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def add_format_flag(parser: Any) -> None:
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format (default table)"
    )


def emit(fmt: str, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Print ``rows`` as JSON, or as a table of ``columns`` (key, heading)."""
    if fmt == "json":
        json.dump(list(rows), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    cells = [[h for _, h in columns]] + [[str(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def emit_one(fmt: str, item: dict[str, Any]) -> None:
    if fmt == "json":
        json.dump(item, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    width = max(map(len, item))
    for key, value in item.items():
        print(f"{key.ljust(width)}  {value}")
