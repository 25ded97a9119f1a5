"""Docker's variable substitution and word rules for Dockerfile arguments.

Two steps, as in Docker. At parse time a line is cut into words that keep
their quotes and escapes (:func:`split_words`). When a stage runs, each word
is expanded against the stage's environment (:func:`expand`): quotes are
removed, the escape character is honoured, and ``$V``, ``${V}``,
``${V:-w}``, ``${V-w}``, ``${V:+w}``, ``${V+w}``, ``${V:?m}``, ``${V#p}``,
``${V##p}``, ``${V%p}``, ``${V%%p}``, ``${V/p/r}`` and ``${V//p/r}`` are
substituted. Unset variables are empty. Errors are :class:`InvalidArgument`
without a line; the caller names the Dockerfile line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from cocoon.errors import InvalidArgument

_SPECIAL_PARAMS = "@*#?-$!0"


class _Lexer:
    """One pass over a text: the expanded string, and its words.

    Words split at unquoted whitespace, also inside the value of a
    substitution; quoted text never splits, and an empty quoted string
    makes no word (as Docker's lexer has it). ``quotes`` False leaves quote
    characters as plain text (a here-document's body)."""

    def __init__(
        self, text: str, env: Mapping[str, str], escape: str, *, quotes: bool = True
    ) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.quotes = quotes
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += len(ch)
        return ch

    def process(self) -> tuple[str, list[str]]:
        result: list[str] = []
        words: list[str] = []
        word: list[str] = []

        def split(text: str) -> None:
            for ch in text:
                if not ch.isspace():
                    word.append(ch)
                elif any(word):
                    words.append("".join(word))
                    word.clear()

        while self.pos < len(self.text):
            ch = self.peek()
            if ch == "$":
                value = self.dollar()
                split(value)
            elif ch in "'\"" and self.quotes:
                value = self.single() if ch == "'" else self.double()
                word.append(value)
            else:
                value = self.next()
                if value == self.escape:
                    value = self.next()
                    if not value:
                        break  # an escape at the very end is dropped
                    word.append(value)
                else:
                    split(value)
            result.append(value)
        if any(word):
            words.append("".join(word))
        return "".join(result), words

    def single(self) -> str:
        self.next()
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidArgument(
                "unexpected end of statement while looking for matching single-quote"
            )
        value = self.text[self.pos : end]
        self.pos = end + 1
        return value

    def double(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise InvalidArgument(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                if not self.peek():
                    continue
                if self.peek() in ('"', "$", self.escape):
                    ch = self.next()  # other escapes stay as written inside double quotes
            out.append(ch)

    def stop_on(self, stop: str, *, raw: bool = False, missing: str = "'}'") -> str:
        """Text up to ``stop`` (consumed), quotes and $ processed. ``raw``
        keeps escapes (a pattern needs them to tell ``\\*`` from ``*``)."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise InvalidArgument(f"syntax error: missing {missing}")
            if ch == stop:
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
            elif ch in "'\"" and self.quotes:
                out.append(self.single() if ch == "'" else self.double())
            elif ch == self.escape:
                self.next()
                if raw:
                    out.append(ch)
                out.append(self.next())
            else:
                out.append(self.next())

    # -- substitution --------------------------------------------------------

    def name(self) -> str:
        start = self.pos
        if self.peek().isdigit():
            while self.peek().isdigit():
                self.next()
            return self.text[start : self.pos]
        if self.peek() and self.peek() in _SPECIAL_PARAMS:
            return self.next()
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.text[start : self.pos]

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            return "$" if not name else self.env.get(name) or ""
        self.next()
        if not self.peek():
            raise InvalidArgument("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise InvalidArgument("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        value = self.env.get(name)
        if op == "}":
            return value or ""
        if op == ":":
            op = self.next()
            if op not in ("-", "+", "?"):
                raise InvalidArgument(f"unsupported modifier (:{op}) in substitution")
            return self.modifier(name, value, op, null_is_unset=True)
        if op in ("-", "+", "?"):
            return self.modifier(name, value, op, null_is_unset=False)
        if op in ("#", "%"):
            pattern = self.stop_on("}", raw=True)
            longest = pattern.startswith(op)
            if longest:
                pattern = pattern[1:]
            return _trim(value or "", pattern, suffix=op == "%", longest=longest)
        if op == "/":
            every = self.peek() == "/"
            if every:
                self.next()
            pattern = self.stop_on("/", raw=True, missing="'/' in ${}")
            replacement = self.stop_on("}", raw=True)
            regex = _pattern_regex(pattern)
            return regex.sub(lambda _: replacement, value or "", count=0 if every else 1)
        if not op:
            raise InvalidArgument("syntax error: missing '}'")
        raise InvalidArgument(f"unsupported modifier ({op}) in substitution")

    def modifier(self, name: str, value: str | None, op: str, *, null_is_unset: bool) -> str:
        word = self.stop_on("}")
        is_set = value is not None and not (null_is_unset and value == "")
        if op == "-":
            return value if is_set and value is not None else word
        if op == "+":
            return word if is_set else ""
        if value is None:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        if not is_set:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be empty'}")
        return value


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A substitution pattern as a regex: ``*`` and ``?`` are wild, ``\\*``,
    ``\\?`` and ``\\\\`` literal; no bracket classes (Docker has none there)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "\\" and i < len(pattern):
            nxt = pattern[i]
            i += 1
            if nxt not in "*?\\}/":
                raise InvalidArgument(f"invalid pattern ({pattern}) in substitution: \\{nxt}")
            out.append(re.escape(nxt))
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _trim(value: str, pattern: str, *, suffix: bool, longest: bool) -> str:
    """``${V#p}`` and friends: remove the shortest or longest matching prefix/suffix."""
    regex = _pattern_regex(pattern)
    cuts = range(len(value) + 1)
    order = reversed(cuts) if longest != suffix else cuts
    for cut in order:
        part = value[cut:] if suffix else value[:cut]
        if regex.fullmatch(part):
            return value[:cut] if suffix else value[cut:]
    return value


# -- public --------------------------------------------------------------------


def expand(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """One word expanded as Docker does: quotes removed, variables substituted,
    whitespace kept."""
    return _Lexer(word, env, escape).process()[0]


def expand_fields(text: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """Text expanded into words: unquoted whitespace, also from a substitution, separates them."""
    return _Lexer(text, env, escape).process()[1]


def expand_heredoc(body: str, env: Mapping[str, str]) -> str:
    """A here-document's body with variables substituted. Quotes are plain
    text there; a backslash escapes the next character (BuildKit's rule,
    whatever the Dockerfile's escape character)."""
    return _Lexer(body, env, "\\", quotes=False).process()[0]


def check(word: str, *, escape: str = "\\") -> None:
    """Raise InvalidArgument for a word that cannot expand (an unterminated quote,
    a bad ``${...}``), so a parse error names it before any build step runs."""
    _Lexer(word, _EVERY_NAME_SET, escape).process()


class _EverySet(dict[str, str]):
    """Every name set and not empty: a ``${V:?}`` is no parse error."""

    def get(self, key: str, default: object = None) -> str:  # type: ignore[override]
        return "set"


_EVERY_NAME_SET = _EverySet()


def split_words(text: str, *, escape: str = "\\") -> list[str]:
    """A line cut at unquoted whitespace, quotes and escapes kept (Docker's parse step).

    An unterminated quote runs to the end of the line here; :func:`expand`
    reports it.
    """
    words: list[str] = []
    word: list[str] = []
    quote = ""
    started = False
    i = 0
    while i < len(text):
        ch = text[i]
        if not quote and ch.isspace():
            if word or started:
                words.append("".join(word))
            word, started = [], False
            i += 1
            continue
        started = True
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        elif ch == escape and quote != "'":
            if i + 1 == len(text):
                break  # an escape at the very end is dropped
            word.append(ch)
            i += 1
            ch = text[i]
        word.append(ch)
        i += 1
    if word or started:
        words.append("".join(word))
    return words


def pairs(
    words: Sequence[str],
    env: Mapping[str, str],
    *,
    escape: str = "\\",
    value_optional: bool = False,
) -> list[tuple[str, str | None]]:
    """ENV/LABEL/ARG words -> expanded (key, value) pairs.

    ``words`` are as :func:`split_words` leaves them. The legacy form ``ENV k
    v w`` arrives as two words, a key without ``=`` and the raw rest of the
    line. Every value is expanded against ``env`` as it was before the
    instruction, as Docker does (``ENV a=1 b=$a`` sees the old ``a``). With
    ``value_optional`` (ARG) a word without ``=`` is a name whose value is None.
    """
    if not words:
        raise InvalidArgument("requires at least one argument")
    if not value_optional and "=" not in words[0]:
        if len(words) != 2 or not words[1]:
            raise InvalidArgument(f"{words[0]!r} needs a value: use {words[0]}=VALUE")
        return [(expand(words[0], env, escape=escape), expand(words[1], env, escape=escape))]
    out: list[tuple[str, str | None]] = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq and not value_optional:
            raise InvalidArgument(f"syntax error - can't find = in {word!r}: use NAME=VALUE")
        name = expand(key, env, escape=escape)
        if not name:
            raise InvalidArgument(f"{word!r}: the name can not be blank")
        out.append((name, expand(value, env, escape=escape) if eq else None))
    return out


__all__ = ["check", "expand", "expand_fields", "expand_heredoc", "pairs", "split_words"]
