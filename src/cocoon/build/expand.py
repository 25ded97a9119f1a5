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
    """One pass over a word. ``fields`` splits unquoted whitespace (and the
    unquoted result of a substitution) into separate words; ``heredoc``
    keeps quotes and unknown escapes as the shell does in a here-document."""

    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        escape: str,
        *,
        fields: bool = False,
        heredoc: bool = False,
    ) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.fields = fields
        self.heredoc = heredoc
        self.pos = 0

    # -- scanning ------------------------------------------------------------

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += len(ch)
        return ch

    # -- top level -----------------------------------------------------------

    def words(self) -> list[str]:
        words: list[str] = []
        word: list[str] = []
        started = False  # a quoted empty string ("") is a word too

        def flush() -> None:
            nonlocal started
            if word or started:
                words.append("".join(word))
            word.clear()
            started = False

        while self.pos < len(self.text):
            ch = self.peek()
            if ch in "'\"" and not self.heredoc:
                word.append(self.single() if ch == "'" else self.double())
                started = True
            elif ch == "$":
                value = self.dollar()
                if not self.fields:
                    word.append(value)
                    continue
                # An unquoted substitution is split into fields, as sh does.
                parts = re.split(r"[ \t\n]+", value)
                for i, part in enumerate(parts):
                    if i:
                        flush()
                    word.append(part)
            elif ch == self.escape:
                self.next()
                nxt = self.next()
                if self.heredoc and nxt not in ("$", self.escape, "\n"):
                    word.append(ch)  # only \$, \\ and \newline mean something there
                if nxt != "\n" or not self.heredoc:
                    word.append(nxt)
                started = True
            elif self.fields and ch in " \t\n":
                self.next()
                flush()
            else:
                word.append(self.next())
        flush()
        return words

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
            if ch == self.escape and self.peek() in ('"', "$", self.escape):
                ch = self.next()  # other escapes stay as written inside double quotes
            elif ch == self.escape and not self.peek():
                continue
            out.append(ch)

    def stop_on(self, stops: str, *, raw: bool = False) -> tuple[str, str]:
        """Text up to one of ``stops`` (consumed), quotes and $ processed.
        ``raw`` keeps escapes (a pattern needs them to tell ``\\*`` from ``*``)."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise InvalidArgument("syntax error: missing '}'")
            if ch in stops:
                self.next()
                return "".join(out), ch
            if ch == "'" and not self.heredoc:
                quoted = self.single()
                out.append(_glob_quote(quoted) if raw else quoted)
            elif ch == '"' and not self.heredoc:
                quoted = self.double()
                out.append(_glob_quote(quoted) if raw else quoted)
            elif ch == "$":
                out.append(self.dollar())
            elif ch == self.escape:
                self.next()
                if raw:
                    out.append("\\")
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

    def lookup(self, name: str) -> str | None:
        return self.env.get(name)

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            return "$" if not name else self.lookup(name) or ""
        self.next()
        if not self.peek():
            raise InvalidArgument("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise InvalidArgument("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if not op:
            raise InvalidArgument("syntax error: missing '}'")
        if op == "}":
            return self.lookup(name) or ""
        value = self.lookup(name)
        if op == ":":
            op = self.next()
            if op not in ("-", "+", "?"):
                raise InvalidArgument(f"unsupported modifier (:{op}) in substitution")
            return self.modifier(name, value, op, null_is_unset=True)
        if op in "-+?":
            return self.modifier(name, value, op, null_is_unset=False)
        if op in "#%":
            pattern, _ = self.stop_on("}", raw=True)
            longest = pattern.startswith(op)
            if longest:
                pattern = pattern[1:]
            return _trim(value or "", pattern, suffix=op == "%", longest=longest)
        if op == "/":
            every = self.peek() == "/"
            if every:
                self.next()
            pattern, stop = self.stop_on("/}", raw=True)
            replacement = self.stop_on("}")[0] if stop == "/" else ""
            regex = _pattern_regex(pattern, longest=True)
            return regex.sub(lambda _: replacement, value or "", count=0 if every else 1)
        raise InvalidArgument(f"unsupported modifier ({op}) in substitution")

    def modifier(self, name: str, value: str | None, op: str, *, null_is_unset: bool) -> str:
        word, _ = self.stop_on("}")
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


def _glob_quote(text: str) -> str:
    """Quoted text inside a pattern matches literally."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _pattern_regex(pattern: str, *, longest: bool) -> re.Pattern[str]:
    """A shell pattern (``*``, ``?``, ``[...]``, ``\\x``) as a regular expression."""
    out: list[str] = []
    i = 0
    star = ".*" if longest else ".*?"
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as e:
        raise InvalidArgument(f"bad pattern {pattern!r} in substitution: {e}") from None


def _trim(value: str, pattern: str, *, suffix: bool, longest: bool) -> str:
    """``${V#p}`` and friends: remove the shortest or longest matching prefix/suffix."""
    regex = _pattern_regex(pattern, longest=True)
    cuts = range(len(value) + 1)
    order = reversed(cuts) if longest != suffix else cuts
    for cut in order:
        part = value[cut:] if suffix else value[:cut]
        if regex.fullmatch(part):
            return value[:cut] if suffix else value[cut:]
    return value


# -- public --------------------------------------------------------------------


def expand(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """One word expanded as Docker does: quotes removed, variables substituted."""
    words = _Lexer(word, env, escape).words()
    return words[0] if words else ""


def expand_fields(text: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """Text expanded into words: unquoted whitespace, also from a substitution, separates them."""
    return _Lexer(text, env, escape, fields=True).words()


def expand_heredoc(body: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """A here-document's body with variables substituted; quotes stay as written."""
    words = _Lexer(body, env, escape, heredoc=True).words()
    return words[0] if words else ""


def check(word: str, *, escape: str = "\\") -> None:
    """Raise InvalidArgument for a word that cannot expand (an unterminated quote,
    a bad ``${...}``), so a parse error names it before any build step runs."""
    _Lexer(word, _EVERY_NAME_SET, escape).words()


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
