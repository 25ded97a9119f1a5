""".dockerignore follows moby's patternmatcher rules."""

import pytest

from cocoon.builder.ignore import Ignore, clean, component_regex, relative
from cocoon.errors import InvalidArgument


def excluded(patterns: str, path: str) -> bool:
    return Ignore.parse(patterns).excluded(path)


@pytest.mark.parametrize(
    ("patterns", "path", "result"),
    [
        ("*.log", "x.log", True),
        ("*.log", "sub/x.log", False),  # * stays in one path element
        ("**/*.log", "sub/deep/x.log", True),
        ("**/*.log", "x.log", True),
        ("build", "build", True),
        ("build", "build/out/a", True),  # a folder's contents go with it
        ("build", "src/build", False),
        ("/build", "build/a", True),  # a leading / is the context's root
        ("./build", "build", True),
        ("build/", "build/a", True),
        ("a//b/../c", "a/c", True),  # patterns are cleaned like paths
        ("node_modules/**", "node_modules/x/y", True),
        ("node_modules/**", "node_modules", False),
        ("**/secret", "secret", True),
        ("**/secret", "a/b/secret/file", True),
        ("**secret", "topsecret", True),  # moby's suffix test
        ("**", "anything/at/all", True),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("[a-c]x", "bx", True),
        ("[^a-c]x", "dx", True),
        ("[^a-c]x", "ax", False),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("a.b", "axb", False),  # regex metacharacters are literal
        ("(x)", "(x)", True),
        ("docs/*/*.md", "docs/a/b.md", True),
        ("docs/**/*.md", "docs/b.md", True),
        ("docs/**/*.md", "docs/a/b/c.md", True),
        ("*", "a", True),
        ("*", "a/b", True),  # its folder a matches
        ("", "a", False),
    ],
)
def test_patterns(patterns, path, result):
    assert excluded(patterns, path) is result


def test_exceptions_in_order_last_match_wins():
    rules = "*.md\n!README.md\nREADME.md\n"
    assert excluded(rules, "README.md")
    rules = "*.md\n!README*.md\nREADME-secret.md\n"
    assert not excluded(rules, "README.md")
    assert excluded(rules, "README-secret.md")
    assert excluded(rules, "CHANGES.md")


def test_exception_inside_an_excluded_folder():
    rules = Ignore.parse("docs\n!docs/keep.md\n")
    assert rules.excluded("docs")
    assert rules.excluded("docs/other.md")
    assert not rules.excluded("docs/keep.md")
    assert rules.walks("docs")
    assert not rules.walks("build")


def test_a_wildcard_exception_walks_every_excluded_folder():
    rules = Ignore.parse("data\nvendor\n!**/*.keep\n")
    assert rules.walks("data") and rules.walks("vendor")
    assert not rules.excluded("data/x/y.keep")
    assert rules.excluded("data/x/y.txt")


def test_a_trailing_glob_exception_is_still_a_prefix():
    rules = Ignore.parse("*\n!src/**\n")
    assert rules.walks("src")
    assert not rules.walks("docs")
    assert not rules.excluded("src/main.py")
    assert rules.excluded("docs/x")


def test_comments_blank_lines_and_spaces():
    rules = Ignore.parse(
        "\ufeff# comment\n\n   \n  *.tmp  \n # not a comment: a pattern\n!  keep.tmp\n"
    )
    assert rules.excluded("a.tmp")
    assert not rules.excluded("keep.tmp")
    assert rules.excluded("# not a comment: a pattern")
    assert not rules.excluded("# comment")


def test_paths_are_cleaned():
    rules = Ignore.parse("a/b\n")
    assert rules.excluded("./a/b")
    assert rules.excluded("/a/b/")
    assert rules.excluded("a//b")
    assert not rules.excluded(".")


def test_bad_patterns():
    with pytest.raises(InvalidArgument, match="illegal exclusion"):
        Ignore.parse("!\n")
    with pytest.raises(InvalidArgument, match="bad pattern"):
        Ignore.parse("[a-\n")
    with pytest.raises(InvalidArgument, match="bad pattern"):
        Ignore.parse("a\\\n")


def test_clean_and_relative():
    assert clean("") == "."
    assert clean("//a//b/") == "/a/b"
    assert clean("a/../..") == ".."
    assert relative("/x/../y/") == "y"
    assert relative("../..") == "."


@pytest.mark.parametrize(
    ("pattern", "name", "result"),
    [
        ("*.txt", ".hidden.txt", True),  # Go's * matches a leading dot
        ("*", "a/b", False),
        ("f?o", "foo", True),
        ("[!a]", "!", True),  # Go negates with ^ only
        ("[^a]", "b", True),
        ("[a\\]]", "]", True),
        ("\\*", "*", True),
        ("\\*", "x", False),
        ("[]a]", "]", True),
    ],
)
def test_component_regex(pattern, name, result):
    assert bool(component_regex(pattern).fullmatch(name)) is result


def test_component_regex_refuses_unterminated_classes():
    for bad in ("[abc", "[", "x\\"):
        with pytest.raises(InvalidArgument):
            component_regex(bad)
