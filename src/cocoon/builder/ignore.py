""".dockerignore by Docker's rules (moby's patternmatcher and ignorefile).

- a line starting with ``#`` (in its first column) is a comment; blank lines
  are skipped; each pattern is trimmed, cleaned like a path (``a//b/`` ->
  ``a/b``, ``./a`` -> ``a``) and loses a leading ``/``;
- ``*`` matches within one path element, ``?`` one character, ``[...]`` a
  class, ``\\`` escapes; ``**`` matches any number of elements;
- a pattern matching a folder excludes everything under it;
- ``!pattern`` re-includes; the last matching pattern wins;
- an excluded folder is looked into only when an exception may bring
  something back inside it (BuildKit's rule, see :meth:`Ignore.walks`).

:func:`component_regex` (Go's ``filepath.Match`` for one path element) is
shared with COPY's source globs.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cocoon.errors import InvalidArgument


def clean(path: str) -> str:
    """Go's ``path.Clean``: no ``.``/``..``/double slashes; ``""`` -> ``"."``."""
    if path.startswith("//"):
        path = "/" + path.lstrip("/")  # POSIX keeps a leading "//"; Go does not
    return posixpath.normpath(path) if path else "."


def relative(path: str) -> str:
    """A context path cleaned, without a leading ``/`` (``.`` for the root)."""
    return clean("/" + path).lstrip("/") or "."


def component_regex(pattern: str) -> re.Pattern[str]:
    """Go's ``filepath.Match`` pattern (one path element) as a regex; a
    malformed class is InvalidArgument."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i == len(pattern):
                raise InvalidArgument(f"bad pattern {pattern!r}: it ends in \\")
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            body, i = _class(pattern, i)
            out.append(body)
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _class(pattern: str, i: int) -> tuple[str, int]:
    """A ``[...]`` class from just after its ``[``: (regex, index after ``]``)."""
    out = ["["]
    if i < len(pattern) and pattern[i] == "^":
        out.append("^")
        i += 1
    first = True
    while True:
        if i >= len(pattern):
            raise InvalidArgument(f"bad pattern {pattern!r}: unterminated [")
        ch = pattern[i]
        if ch == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        first = False
        if ch == "\\":
            i += 1
            if i >= len(pattern):
                raise InvalidArgument(f"bad pattern {pattern!r}: unterminated [")
            ch = pattern[i]
        out.append(re.escape(ch) if ch != "-" else "-")
        i += 1


@dataclass(frozen=True)
class _Pattern:
    text: str  # cleaned, without the "!"
    exclusion: bool
    kind: str  # "exact", "prefix", "suffix" or "regex", as moby decides
    regex: re.Pattern[str] | None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        assert self.regex is not None
        return bool(self.regex.match(path))


# Special to regular expressions but not to Go's path patterns: literal here.
_REGEX_ONLY = ".+()|{}$"


def _compile(text: str, exclusion: bool) -> _Pattern:
    """moby's translation: literal runs stay exact, a trailing ``**`` is a prefix
    test, a leading ``**`` a suffix test, anything else a regex."""
    out = ["^"]
    kind = "exact"
    i = 0
    while i < len(text):
        start, ch = i, text[i]
        i += 1
        if ch == "*":
            if text[i : i + 1] == "*":
                i += 1
                if text[i : i + 1] == "/":
                    i += 1
                if i == len(text):
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regex"
                else:
                    out.append("(.*/)?")
                    kind = "regex"
                if start == 0:  # "**" opens the pattern
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch == "\\":
            if i < len(text):
                out.append(re.escape(text[i]))
                i += 1
                kind = "regex"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regex"
        elif ch in _REGEX_ONLY:
            out.append("\\" + ch)
        else:
            out.append(ch)  # as moby does: ^ and - keep their meaning in a class
    regex = None
    if kind == "regex":
        try:
            regex = re.compile("".join(out) + "$", re.DOTALL)
        except re.error as e:
            raise InvalidArgument(f".dockerignore: bad pattern {text!r}: {e}") from None
    return _Pattern(text, exclusion, kind, regex)


class Ignore:
    """The patterns of one .dockerignore, in order."""

    def __init__(self, patterns: Sequence[_Pattern] = ()) -> None:
        self.patterns = tuple(patterns)

    @classmethod
    def parse(cls, text: str) -> Ignore:
        patterns = []
        for line in text.removeprefix("\ufeff").splitlines():
            if line.startswith("#"):
                continue
            line = line.strip()
            if not line:
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
                if not line:
                    raise InvalidArgument('.dockerignore: illegal exclusion pattern: "!"')
            line = clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
            _check_syntax(line)
            patterns.append(_compile(line, exclusion))
        return cls(patterns)

    def excluded(self, relpath: str) -> bool:
        """Whether the context path, or a folder above it, is excluded."""
        path = relative(relpath)
        if path == ".":
            return False
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # only an exception can undo a match, only a pattern make one
            hit = pattern.match(path) or any(
                pattern.match("/".join(parents[: i + 1])) for i in range(len(parents))
            )
            if hit:
                matched = not pattern.exclusion
        return matched

    def walks(self, relpath: str) -> bool:
        """Whether an excluded folder must still be looked into, as BuildKit
        decides: always when an exception has a wildcard (past a trailing
        ``/*`` or ``/**``), else when an exception starts with its path."""
        exceptions = [p.text for p in self.patterns if p.exclusion]
        if any(_WILDCARD.search(_without_trailing_glob(text)) for text in exceptions):
            return True
        prefix = relative(relpath) + "/"
        return any((text + "/").startswith(prefix) for text in exceptions)


_WILDCARD = re.compile(r"[*\[\]?^\\]")


def _without_trailing_glob(text: str) -> str:
    return text.removesuffix("/**").removesuffix("/*")


def _check_syntax(text: str) -> None:
    """Refuse what Go's filepath.Match would call a bad pattern (an unterminated class)."""
    for part in text.split("/"):
        if part and part != "**":
            component_regex(part.replace("**", "*"))


__all__ = ["Ignore", "clean", "component_regex", "relative"]
