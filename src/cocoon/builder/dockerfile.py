"""A Dockerfile's text -> stages of instructions, by Docker's syntax rules.

What this step does, as Docker's parser does it:

- parser directives (``# escape=``, ``# syntax=``, ``# check=``) count only
  in the comment lines at the very top; the first other line ends them;
- a line ending in the escape character (then optional blanks) continues on
  the next one; comment lines and blank lines inside a continuation are
  dropped; a ``#`` is a comment only at the start of a line;
- ``RUN``, ``CMD``, ``ENTRYPOINT``, ``SHELL`` and ``HEALTHCHECK CMD`` take a
  JSON array of strings (exec form) or, when the text is not valid JSON, the
  raw text (shell form); ``COPY``, ``ADD`` and ``VOLUME`` a JSON array or
  words; ``ENV``, ``LABEL`` and ``ARG`` quote-aware words;
- leading ``--flag[=value]`` words are checked against each instruction's
  known flags; ``RUN``, ``COPY`` and ``ADD`` may carry here-documents
  (``<<EOF``, ``<<-EOF`` strips leading tabs, a quoted name turns off
  expansion), read from the lines after the instruction.

Nothing is expanded here; :mod:`cocoon.builder.stage` does that per stage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cocoon.builder import expand
from cocoon.errors import InvalidArgument, NotFound


@dataclass(frozen=True)
class Heredoc:
    name: str
    body: str  # each line ends with "\n"
    expand: bool  # False when the name was quoted: <<"EOF" or <<'EOF'


@dataclass(frozen=True)
class Instruction:
    """One instruction. ``args`` by keyword:

    - RUN, CMD, ENTRYPOINT, SHELL: exec form the JSON strings; shell form
      one element, the raw rest of the line;
    - HEALTHCHECK: ``("NONE",)``, or ``("CMD", *strings)`` exec form, or
      ``("CMD", raw)`` shell form;
    - ENV, LABEL: words with their quotes (``a="b c"``); the legacy ``ENV k
      v w`` is two elements, the key and the raw rest;
    - ARG: words, ``name`` or ``name=default``;
    - WORKDIR, USER, STOPSIGNAL, MAINTAINER, ONBUILD: one element, the raw rest;
    - the others: the words, not yet expanded.

    ``flags``: ``--from=x`` -> ``{"from": ("x",)}``; a bare boolean flag
    (``--link``) has the value ``"true"``.
    """

    keyword: str
    line: int
    text: str
    args: tuple[str, ...]
    flags: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    json_form: bool = False
    heredocs: tuple[Heredoc, ...] = ()

    def error(self, message: str) -> InvalidArgument:
        """An error naming this instruction's line."""
        return InvalidArgument(f"Dockerfile:{self.line}: {message}")

    def flag(self, name: str) -> str | None:
        """The value of a single-valued flag, or None."""
        values = self.flags.get(name)
        return values[-1] if values else None


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None  # lower case, as Docker keeps it
    base: str  # the FROM word, not expanded
    platform: str | None  # the FROM --platform value, not expanded
    line: int
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True)
class Dockerfile:
    meta_args: tuple[Instruction, ...]  # the ARGs before the first FROM
    stages: tuple[Stage, ...]
    escape: str


KEYWORDS = frozenset((
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
))  # fmt: skip

# Each instruction's flags: "str" takes one value, "bool" true/false or none,
# "list" may repeat. Flags Docker knows but cocoon cannot honour are listed
# so that the executor refuses them by name instead of a parse error.
_FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "str"},
    "RUN": {"mount": "list", "network": "str", "security": "str"},
    "COPY": {
        "from": "str",
        "chown": "str",
        "chmod": "str",
        "link": "bool",
        "parents": "bool",
        "exclude": "list",
    },
    "ADD": {
        "chown": "str",
        "chmod": "str",
        "link": "bool",
        "checksum": "str",
        "keep-git-dir": "bool",
        "exclude": "list",
    },
    "HEALTHCHECK": {
        "interval": "str",
        "timeout": "str",
        "start-period": "str",
        "start-interval": "str",
        "retries": "str",
    },
}

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = ("escape", "syntax", "check")
_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_HEREDOC_KEYWORDS = ("RUN", "COPY", "ADD")
_ONBUILD_REFUSED = {
    "ONBUILD": "ONBUILD ONBUILD isn't allowed",
    "FROM": "FROM isn't allowed as an ONBUILD trigger",
    "MAINTAINER": "MAINTAINER isn't allowed as an ONBUILD trigger",
}


# -- lines ---------------------------------------------------------------------


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _directives(lines: list[str], filename: str) -> str:
    """The escape character the top comment lines choose (default backslash)."""
    seen: dict[str, str] = {}
    for line in lines:
        found = _DIRECTIVE.match(line.lstrip())
        if not found or found.group(1).lower() not in _KNOWN_DIRECTIVES:
            break  # an unknown directive is a comment, and ends the directives
        name, value = found.group(1).lower(), found.group(2)
        if name in seen:
            raise InvalidArgument(f"{filename}: only one {name} parser directive can be used")
        seen[name] = value
    escape = seen.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise InvalidArgument(f"{filename}: invalid escape character {escape!r}: use \\ or `")
    return escape


class _Reader:
    """Logical lines (continuations joined) and the here-documents after them."""

    def __init__(self, text: str, escape: str, filename: str, first_line: int = 1) -> None:
        text = text.removeprefix("\ufeff")
        self.lines = [line.removesuffix("\r") for line in text.split("\n")]
        self.escape = escape
        self.filename = filename
        self.first_line = first_line
        self.pos = 0
        # An escape ending the line continues it, unless itself escaped.
        mark = re.escape(escape)
        self.continuation = re.compile(f"(?<!{mark}){mark}[ \t]*$")

    def where(self, index: int) -> str:
        return f"{self.filename}:{index + self.first_line}"

    def _trim(self, line: str) -> tuple[str, bool]:
        """(line without its continuation mark, whether it continues)."""
        found = self.continuation.search(line)
        if found is None:
            return line, False
        return line[: found.start()], True

    def logical(self) -> Iterator[tuple[int, str]]:
        """(0-based index of the first line, the joined line) for each instruction."""
        while self.pos < len(self.lines):
            start = self.pos
            raw = self.lines[self.pos]
            self.pos += 1
            if _is_comment(raw):
                continue
            line, more = self._trim(raw.lstrip())
            if not more and not line.strip():
                continue
            while more and self.pos < len(self.lines):
                raw = self.lines[self.pos]
                self.pos += 1
                if _is_comment(raw) or not raw.strip():
                    continue
                part, more = self._trim(raw)
                line += part
            yield start, line.strip()

    def heredoc(self, name: str, chomp: bool, start: int) -> str:
        """The body of one here-document, read up to its terminating line."""
        body: list[str] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            self.pos += 1
            if chomp:
                line = line.lstrip("\t")
            if line == name:
                return "".join(part + "\n" for part in body)
            body.append(line)
        raise InvalidArgument(f"{self.where(start)}: unterminated heredoc {name!r}")


# -- one instruction -------------------------------------------------------------


def _split_flags(rest: str) -> tuple[list[str], str]:
    """Leading ``--flag`` words (quotes and backslashes processed) and the rest."""
    words: list[str] = []
    pos = 0
    while True:
        while pos < len(rest) and rest[pos].isspace():
            pos += 1
        if not rest.startswith("--", pos):
            return words, rest[pos:]
        word: list[str] = []
        quote = ""
        while pos < len(rest) and (quote or not rest[pos].isspace()):
            ch = rest[pos]
            pos += 1
            if quote and ch == quote:
                quote = ""
            elif not quote and ch in "'\"":
                quote = ch
            elif ch == "\\" and pos < len(rest):
                word.append(rest[pos])
                pos += 1
            elif ch != "\\":
                word.append(ch)
        text = "".join(word)
        if text == "--":
            return words, rest[pos:].lstrip()
        words.append(text)


def _flags(keyword: str, words: list[str], where: str) -> dict[str, tuple[str, ...]]:
    known = _FLAGS.get(keyword, {})
    flags: dict[str, tuple[str, ...]] = {}
    for word in words:
        name, eq, value = word[2:].partition("=")
        kind = known.get(name)
        if kind is None:
            raise InvalidArgument(f"{where}: unknown flag --{name} on {keyword}")
        if kind == "bool":
            if eq and value.lower() not in ("true", "false"):
                raise InvalidArgument(f"{where}: --{name} takes true or false, not {value!r}")
            value = value.lower() if eq else "true"
        elif not eq:
            raise InvalidArgument(f"{where}: --{name} on {keyword} needs a value: --{name}=VALUE")
        if name in flags and kind != "list":
            raise InvalidArgument(f"{where}: --{name} given twice on {keyword}")
        flags[name] = (*flags.get(name, ()), value)
    return flags


def _reject_constant(name: str) -> object:
    raise ValueError(name)  # NaN and Infinity are not JSON to Docker


def _json_array(rest: str, where: str) -> tuple[str, ...] | None:
    """The strings of a JSON array, or None when the text is no JSON (shell form)."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise InvalidArgument(
            f"{where}: when using JSON array syntax, arrays must be comprised of strings only"
        )
    return tuple(value)


def heredoc_word(word: str) -> tuple[str, bool, bool] | None:
    """(name, chomp, expand) when a word opens a here-document (``<<EOF``,
    ``<<-"EOF"``), else None. Quoting any part of the name turns expansion off."""
    match = _HEREDOC.match(word)
    if not match or not match.group(3):
        return None
    raw = match.group(3)
    try:
        names = expand.expand_fields(raw, {})
    except InvalidArgument:
        return None  # an unbalanced quote: no here-document, the shell's business
    if len(names) != 1:
        return None
    name = names[0]
    quoted = name.count("'") + name.count('"') != raw.count("'") + raw.count('"')
    return name, match.group(2) == "-", not quoted


def _heredoc_words(line: str) -> list[tuple[str, bool, bool]]:
    return [found for w in expand.split_words(line) if (found := heredoc_word(w))]


class _Parser:
    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.escape = reader.escape

    def instructions(self) -> Iterator[Instruction]:
        for start, line in self.reader.logical():
            yield self.instruction(start, line)

    def instruction(self, start: int, line: str) -> Instruction:
        where = self.reader.where(start)
        word, *more = line.split(None, 1)
        rest = more[0] if more else ""
        keyword = word.upper()
        if keyword not in KEYWORDS:
            raise InvalidArgument(f'{where}: unknown instruction "{word}"')
        flag_words, rest = _split_flags(rest.strip())
        flags = _flags(keyword, flag_words, where)
        args, json_form = self.arguments(keyword, rest.strip(), where, start)
        heredocs: tuple[Heredoc, ...] = ()
        if keyword in _HEREDOC_KEYWORDS and not json_form and "<<" in rest:
            heredocs = tuple(
                Heredoc(name, self.reader.heredoc(name, chomp, start), expands)
                for name, chomp, expands in _heredoc_words(rest)
            )
        return Instruction(
            keyword=keyword,
            line=start + self.reader.first_line,
            text=line,
            args=args,
            flags=MappingProxyType(flags),
            json_form=json_form,
            heredocs=heredocs,
        )

    def arguments(
        self, keyword: str, rest: str, where: str, start: int
    ) -> tuple[tuple[str, ...], bool]:
        if not rest:
            raise InvalidArgument(f"{where}: {keyword} requires at least one argument")
        if keyword in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
            array = _json_array(rest, where)
            if keyword == "SHELL" and not array:
                raise InvalidArgument(f"{where}: SHELL requires the arguments to be in JSON form")
            return (array, True) if array is not None else ((rest,), False)
        if keyword == "HEALTHCHECK":
            return self.healthcheck(rest, where)
        if keyword in ("COPY", "ADD", "VOLUME"):
            array = _json_array(rest, where)
            if array is not None:
                return array, True
            words = tuple(rest.split())
        elif keyword in ("FROM", "EXPOSE"):
            words = tuple(rest.split())
        elif keyword in ("ENV", "LABEL"):
            words = self.name_values(keyword, rest, where)
        elif keyword == "ARG":
            words = tuple(expand.split_words(rest, escape=self.escape))
        else:  # WORKDIR USER STOPSIGNAL MAINTAINER ONBUILD: the whole rest
            words = (rest,)
        if keyword == "ONBUILD":
            self.check_trigger(rest, start)
        elif keyword in ("COPY", "ADD") and len(words) < 2:
            raise InvalidArgument(f"{where}: {keyword} requires at least two arguments")
        elif keyword == "FROM" and not (
            len(words) == 1 or (len(words) == 3 and words[1].upper() == "AS")
        ):
            raise InvalidArgument(f"{where}: FROM requires either one or three arguments")
        if keyword not in ("MAINTAINER", "ONBUILD"):
            self.check_words(words, where)
        return words, False

    def name_values(self, keyword: str, rest: str, where: str) -> tuple[str, ...]:
        words = expand.split_words(rest, escape=self.escape)
        if "=" in words[0]:
            for word in words:
                if "=" not in word:
                    raise InvalidArgument(
                        f"{where}: syntax error - can't find = in {word!r}. "
                        "Must be of the form: name=value"
                    )
            return tuple(words)
        key = rest.split(None, 1)[0]
        value = rest[len(key) :].strip()
        if not value:
            raise InvalidArgument(f"{where}: {keyword} must have two arguments")
        return key, value

    def healthcheck(self, rest: str, where: str) -> tuple[tuple[str, ...], bool]:
        kind, *more = rest.split(None, 1)
        kind, command = kind.upper(), more[0].strip() if more else ""
        if kind == "NONE":
            if command:
                raise InvalidArgument(f"{where}: HEALTHCHECK NONE takes no arguments")
            return ("NONE",), False
        if kind != "CMD":
            raise InvalidArgument(f"{where}: unknown type {kind!r} in HEALTHCHECK (try CMD)")
        if not command:
            raise InvalidArgument(f"{where}: missing command after HEALTHCHECK CMD")
        array = _json_array(command, where)
        if array is not None:
            return ("CMD", *array), True
        return ("CMD", command), False

    def check_words(self, words: tuple[str, ...], where: str) -> None:
        for word in words:
            if heredoc_word(word):
                continue
            try:
                expand.check(word, escape=self.escape)
            except InvalidArgument as e:
                raise InvalidArgument(f"{where}: {e}") from None

    def check_trigger(self, rest: str, start: int) -> None:
        trigger = parse_line(rest, escape=self.escape, line=start + self.reader.first_line)
        refused = _ONBUILD_REFUSED.get(trigger.keyword)
        if refused:
            raise InvalidArgument(f"{self.reader.where(start)}: {refused}")


# -- the file --------------------------------------------------------------------


def parse(text: str, *, filename: str = "Dockerfile") -> Dockerfile:
    """A Dockerfile's text as its meta ARGs and stages (InvalidArgument naming the line)."""
    lines = text.removeprefix("\ufeff").split("\n")
    escape = _directives(lines, filename)
    meta: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    head: Instruction | None = None

    def close() -> None:
        if head is not None and current is not None:
            stages.append(_stage(len(stages), head, tuple(current), stages, filename))

    for instr in _Parser(_Reader(text, escape, filename)).instructions():
        if instr.keyword == "FROM":
            close()
            head, current = instr, []
        elif current is not None:
            current.append(instr)
        elif instr.keyword == "ARG":
            meta.append(instr)
        else:
            raise InvalidArgument(
                f"{filename}:{instr.line}: {instr.keyword} before the first FROM "
                "(only ARG may come before it)"
            )
    close()
    if not stages:
        raise InvalidArgument(
            f"{filename}: no FROM instruction: a Dockerfile starts a stage with FROM"
        )
    return Dockerfile(tuple(meta), tuple(stages), escape)


def _stage(
    index: int, head: Instruction, body: tuple[Instruction, ...], before: list[Stage], filename: str
) -> Stage:
    name = None
    if len(head.args) == 3:
        name = head.args[2].lower()
        where = f"{filename}:{head.line}"
        if not _STAGE_NAME.match(name):
            raise InvalidArgument(
                f"{where}: invalid stage name {head.args[2]!r}: start with a letter, "
                "then letters, digits, '-', '_' or '.'"
            )
        if any(stage.name == name for stage in before):
            raise InvalidArgument(f"{where}: duplicate stage name {name!r}")
    return Stage(index, name, head.args[0], head.flag("platform"), head.line, body)


def parse_line(text: str, *, escape: str = "\\", line: int = 1) -> Instruction:
    """One instruction (an ONBUILD trigger), its errors naming ``line``."""
    parser = _Parser(_Reader(text, escape, "Dockerfile", first_line=line))
    found = list(parser.instructions())
    if len(found) != 1:
        raise InvalidArgument(f"Dockerfile:{line}: expected one instruction in {text!r}")
    return found[0]


def select(df: Dockerfile, target: str | None) -> tuple[Stage, ...]:
    """The stages up to and including ``target`` (all without one)."""
    if target is None:
        return df.stages
    for stage in df.stages:
        if stage.name == target.lower():
            return df.stages[: stage.index + 1]
    raise NotFound(f"target stage {target!r} could not be found in the Dockerfile")


__all__ = [
    "KEYWORDS",
    "Dockerfile",
    "Heredoc",
    "Instruction",
    "Stage",
    "heredoc_word",
    "parse",
    "parse_line",
    "select",
]
