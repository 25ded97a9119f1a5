"""``--format`` with Go-template syntax, as Docker scripts use it: a small, safe renderer.

Supported: fields (``{{.State.Status}}``, ``{{.}}``), pipelines
(``{{.Names | upper}}``), parentheses, string and number literals, the
functions ``json``, ``upper``, ``lower``, ``title``, ``join``, ``index``,
``len``, ``split``, ``truncate``, ``println``, and ``if``/``else``,
``range`` and ``with`` blocks closed by ``end``. ``table`` in front prints a
header row and aligns the columns that ``\\t`` separates, as Docker does.
Nothing in a template is evaluated as Python: it names data and functions
from a fixed table, no more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cocoon.errors import InvalidArgument

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<num>-?\d+)|(?P<field>(?:\.[A-Za-z_]\w*)+|\.)"""
    r"""|(?P<name>[A-Za-z_]\w*)|(?P<punct>[()|]))"""
)


def _go_text(value: Any) -> str:
    """A value as Go's text/template prints it."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_go_text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_go_text(v) for v in value) + "]"
    return str(value)


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _truncate(value: Any, length: int) -> str:
    return _go_text(value)[:length]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # Go sorts a map's keys when it writes JSON; the rows here are maps.
    "json": lambda v: json.dumps(v, default=str, separators=(",", ":"), sort_keys=True),
    "upper": lambda v: _go_text(v).upper(),
    "lower": lambda v: _go_text(v).lower(),
    "title": lambda v: _go_text(v).title(),
    "join": lambda items, sep: sep.join(_go_text(i) for i in items or ()),
    "split": lambda text, sep: _go_text(text).split(sep),
    "index": _index,
    "len": lambda v: len(v) if v is not None else 0,
    "truncate": _truncate,
    "println": lambda *v: " ".join(_go_text(i) for i in v) + "\n",
}


_CONSTANTS = {"true": True, "false": False, "nil": None}


def _truthy(value: Any) -> bool:
    return bool(value) and value != "<no value>"


# -- parsing -------------------------------------------------------------------


@dataclass
class _Node:
    kind: str  # text | expr | if | range | with
    text: str = ""
    expr: list[Any] = field(default_factory=list)  # a pipeline: commands of tokens
    body: list[_Node] = field(default_factory=list)
    orelse: list[_Node] = field(default_factory=list)


def _tokens(source: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    source = source.strip()
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise InvalidArgument(f"template: cannot read {source[pos:]!r}")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(source) and source[pos].isspace():
            pos += 1
    return found


def _pipeline(tokens: list[tuple[str, str]]) -> list[Any]:
    """Tokens as commands separated by ``|``; a parenthesised group is a nested pipeline."""
    commands: list[list[Any]] = [[]]
    stack: list[list[list[Any]]] = []
    for kind, text in tokens:
        if (kind, text) == ("punct", "("):
            stack.append(commands)
            commands = [[]]
        elif (kind, text) == ("punct", ")"):
            if not stack:
                raise InvalidArgument("template: unbalanced ')'")
            inner, commands = commands, stack.pop()
            commands[-1].append(("pipe", inner))
        elif (kind, text) == ("punct", "|"):
            commands.append([])
        else:
            commands[-1].append((kind, text))
    if stack:
        raise InvalidArgument("template: unbalanced '('")
    if any(not c for c in commands):
        raise InvalidArgument("template: empty command in a pipeline")
    for kind, head in (c[0] for c in commands):
        # Checked while parsing, as Go does: a bad --format fails before anything runs.
        if kind == "name" and head not in _CONSTANTS and head not in FUNCTIONS:
            raise InvalidArgument(f"template: function {head!r} not defined")
    return commands


def parse(template: str) -> list[_Node]:
    root: list[_Node] = []
    stack: list[tuple[_Node | None, list[_Node]]] = [(None, root)]
    pos = 0
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if match.group(1):
            text = text.rstrip()
        stack[-1][1].append(_Node("text", text))
        pos = match.end()
        if match.group(3):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
        body = match.group(2).strip()
        word, _, rest = body.partition(" ")
        if word in ("if", "range", "with"):
            node = _Node(word, expr=_pipeline(_tokens(rest)))
            stack[-1][1].append(node)
            stack.append((node, node.body))
        elif word == "else":
            owner = stack[-1][0]
            if owner is None or stack[-1][1] is owner.orelse:
                raise InvalidArgument("template: {{else}} outside a block")
            stack[-1] = (owner, owner.orelse)
        elif word == "end":
            if len(stack) == 1:
                raise InvalidArgument("template: {{end}} without a block")
            stack.pop()
        elif body.startswith("/*"):
            continue  # a comment
        else:
            stack[-1][1].append(_Node("expr", expr=_pipeline(_tokens(body))))
    if len(stack) > 1:
        raise InvalidArgument("template: a block is missing its {{end}}")
    if "{{" in template[pos:]:
        raise InvalidArgument("template: unclosed action (a '{{' without '}}')")
    root.append(_Node("text", template[pos:]))
    return root


# -- rendering -----------------------------------------------------------------


def _field(dot: Any, path: str) -> Any:
    if isinstance(dot, _Headings) and path != ".":
        return dot.get(path.split(".")[1])  # a header names the column by its first field
    value = dot
    for name in path.split(".")[1:]:
        if not name:
            continue
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _operand(token: tuple[str, Any], dot: Any) -> Any:
    kind, text = token
    if kind == "field":
        return _field(dot, text)
    if kind == "str":
        return json.loads(text) if text.startswith('"') else text[1:-1]
    if kind == "num":
        return int(text)
    if kind == "pipe":
        return _evaluate(text, dot)
    if kind == "name" and text in _CONSTANTS:
        return _CONSTANTS[text]
    raise InvalidArgument(f"template: {text!r} is not a value")


def _evaluate(commands: Sequence[list[Any]], dot: Any) -> Any:
    value: Any = None
    for i, command in enumerate(commands):
        head_kind, head = command[0]
        args = [_operand(t, dot) for t in command[1:]]
        if i > 0:
            args.append(value)  # a pipeline passes the value as the last argument
        if head_kind == "name" and head not in _CONSTANTS:
            try:
                value = FUNCTIONS[head](*args)
            except TypeError as e:
                raise InvalidArgument(f"template: wrong arguments for {head}") from e
        elif args:
            raise InvalidArgument(f"template: {head} is not a function")
        else:
            value = _operand(command[0], dot)
    return value


def _render(nodes: Sequence[_Node], dot: Any, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "expr":
            out.append(_go_text(_evaluate(node.expr, dot)))
        else:
            value = _evaluate(node.expr, dot)
            if not _truthy(value):
                _render(node.orelse, dot, out)
            elif node.kind == "if":
                _render(node.body, dot, out)
            elif node.kind == "with":
                _render(node.body, value, out)
            else:
                items = value.values() if isinstance(value, Mapping) else value
                for item in items:
                    _render(node.body, item, out)


class Template:
    """A parsed ``--format``; ``headings`` names the columns of ``table`` formats."""

    def __init__(self, text: str, headings: Mapping[str, str] | None = None) -> None:
        self.table = text.startswith("table")
        body = text[len("table") :].strip() if self.table else text
        # Docker lets `\t` and `\n`, typed literally, stand for tab and newline.
        body = body.replace("\\t", "\t").replace("\\n", "\n")
        self.nodes = parse(body)
        self.headings = headings or {}

    def render(self, item: Any) -> str:
        out: list[str] = []
        _render(self.nodes, item, out)
        return "".join(out)

    def header(self) -> str:
        """The row of headings: each field named by its column heading."""
        names = {key: self.headings.get(key, key.upper()) for key in self.headings}
        return self.render(_Headings(names))

    def lines(self, items: Sequence[Any]) -> list[str]:
        rows = [self.render(item) for item in items]
        if not self.table:
            return rows
        return _aligned([self.header(), *rows])


class _Headings(dict):
    """Stands in for a row when rendering the header: every field is its own heading."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key, key.upper())


def _aligned(rows: list[str]) -> list[str]:
    cells = [row.split("\t") for row in rows]
    width = max(len(c) for c in cells)
    widths = [max((len(r[i]) for r in cells if i < len(r)), default=0) for i in range(width)]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]


def render_all(text: str, items: Sequence[Any], headings: Mapping[str, str] | None = None) -> str:
    """Every item through the template, one line each (``table``: aligned, with a header)."""
    lines = Template(text, headings).lines(items)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


__all__ = ["FUNCTIONS", "Template", "parse", "render_all"]
