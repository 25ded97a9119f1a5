"""Docker's variable substitution and word rules for Dockerfile arguments."""

import re

import pytest

from cocoon.builder.expand import check, expand, expand_fields, expand_heredoc, pairs, split_words
from cocoon.errors import InvalidArgument

ENV = {"A": "hello", "EMPTY": "", "SPACED": "a b  c", "P": "/usr/local/bin/x.tar.gz"}


@pytest.mark.parametrize(
    ("word", "result"),
    [
        ("$A", "hello"),
        ("${A}x", "hellox"),
        ("$Ax", ""),  # the name runs on: $Ax is unset
        ("$UNSET", ""),
        ('"$A world"', "hello world"),
        ("'$A'", "$A"),
        ("a\\ b", "a b"),
        ("\\$A", "$A"),
        ('"a\\b"', "a\\b"),  # inside double quotes only \" \$ \\ escape
        ('"a\\"b"', 'a"b'),
        ('"a\\\\b"', "a\\b"),
        ("'a\\b'", "a\\b"),  # nothing escapes in single quotes
        ("$", "$"),
        ("a$", "a$"),
        ("$1x", "x"),
        ("x\\", "x"),  # an escape at the end is dropped
        ("a  b", "a  b"),  # one word keeps its blanks
        ("\"a\"'b'c", "abc"),
    ],
)
def test_expand_basic(word, result):
    assert expand(word, ENV) == result


@pytest.mark.parametrize(
    ("word", "result"),
    [
        ("${UNSET:-def}", "def"),
        ("${EMPTY:-def}", "def"),
        ("${EMPTY-def}", ""),  # without the colon, only unset counts
        ("${UNSET-def}", "def"),
        ("${A:-def}", "hello"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-$A}", "hello"),  # the word is expanded too
        ('${UNSET:-"a b"}', "a b"),
        ("${UNSET:-${A}!}", "hello!"),
        ("${A:?must}", "hello"),
        ("${P##*/}", "x.tar.gz"),
        ("${P#*/}", "usr/local/bin/x.tar.gz"),
        ("${P%.*}", "/usr/local/bin/x.tar"),
        ("${P%%.*}", "/usr/local/bin/x"),
        ("${P#nomatch}", "/usr/local/bin/x.tar.gz"),
        ("${P/usr/opt}", "/opt/local/bin/x.tar.gz"),
        ("${P//\\//_}", "_usr_local_bin_x.tar.gz"),
        ("${A/l/L}", "heLlo"),
        ("${A/[l]/L}", "hello"),  # no bracket classes in substitution patterns
        ("${A//l/L}", "heLLo"),
        ("${A#h?}", "llo"),
        ("${A%\\*}", "hello"),
    ],
)
def test_expand_modifiers(word, result):
    assert expand(word, ENV) == result


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ('"abc', "matching double-quote"),
        ("'abc", "matching single-quote"),
        ("${A", "missing '}'"),
        ("${A:-x", "missing '}'"),
        ("${}", "bad substitution"),
        ("${:x}", "bad substitution"),
        ("${A:x}", "unsupported modifier (:x)"),
        ("${A:#x}", "unsupported modifier"),
        ("${A^}", "unsupported modifier (^)"),
        ("${UNSET:?you must set it}", "UNSET: you must set it"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${A/x}", "missing '/'"),
        ("${A#\\x}", "invalid pattern"),
    ],
)
def test_expand_errors(word, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        expand(word, ENV)


def test_backtick_escape():
    assert expand("a` b", ENV, escape="`") == "a b"
    assert expand("C:\\dir", ENV, escape="`") == "C:\\dir"
    assert expand('"x`"y"', ENV, escape="`") == 'x"y'


def test_fields_split_unquoted_whitespace_and_substitutions():
    assert expand_fields("$SPACED", ENV) == ["a", "b", "c"]
    assert expand_fields('"$SPACED"', ENV) == ["a b  c"]
    assert expand_fields('80 "" 443', ENV) == ["80", "443"]  # an empty quote makes no word
    assert expand_fields("a\\ b c", ENV) == ["a b", "c"]
    assert expand_fields("x$SPACED", ENV) == ["xa", "b", "c"]


def test_heredoc_body_keeps_quotes():
    assert expand_heredoc("say \"$A\" '$A'\n", ENV) == "say \"hello\" 'hello'\n"
    assert expand_heredoc("\\$A costs\n", ENV) == "$A costs\n"


def test_check_finds_syntax_errors_without_values():
    check("${UNSET:?required at build time}")  # no values at parse time: fine
    check("$A ${B:-x}")
    with pytest.raises(InvalidArgument):
        check('"open')


def test_split_words_keeps_quotes_and_escapes():
    assert split_words("a=\"b c\" d=e\\ f 'g h'") == ['a="b c"', "d=e\\ f", "'g h'"]
    assert split_words("  x   y  ") == ["x", "y"]
    assert split_words('k="unterminated') == ['k="unterminated']  # expand reports it
    assert split_words("a`  b", escape="`") == ["a` ", "b"]
    assert split_words('""') == ['""']


def test_pairs():
    assert pairs(split_words('a="b c" d=$A e='), ENV) == [("a", "b c"), ("d", "hello"), ("e", "")]
    assert pairs(["k", "v $A  w"], ENV) == [("k", "v hello  w")]  # the legacy ENV k v form
    assert pairs(["name", "n2=def"], ENV, value_optional=True) == [("name", None), ("n2", "def")]
    assert pairs(['"quoted key"=v'], ENV) == [("quoted key", "v")]


def test_pairs_refuse_malformed():
    with pytest.raises(InvalidArgument, match="can't find ="):
        pairs(["a=1", "b"], ENV)
    with pytest.raises(InvalidArgument, match="blank"):
        pairs(["=v"], ENV)
    with pytest.raises(InvalidArgument):
        pairs(["k"], ENV)
