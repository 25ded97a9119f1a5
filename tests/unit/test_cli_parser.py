"""The CLI builds only the parser a command needs, and the whole one for help."""

import pytest

from cocoon.cli.main import _VERB_MODULES, parser


def _verbs(p):
    return set(p._subparsers._group_actions[0].choices)


def test_a_command_builds_only_its_group():
    assert _verbs(parser(["--debug", "run", "img", "ls", "-l"])) == {"run"}
    assert "ps" in _verbs(parser(["ps"]))
    assert "image" not in _verbs(parser(["ps"]))


def test_help_and_unknown_verbs_get_every_verb():
    assert _verbs(parser([])) == set(_VERB_MODULES)
    assert _verbs(parser(["nosuch"])) == set(_VERB_MODULES)


def test_every_verb_is_registered_by_its_module():
    for verb in _VERB_MODULES:
        assert verb in _verbs(parser([verb]))


def test_unknown_verb_is_one_line_and_exits_125(capsys):
    with pytest.raises(SystemExit) as exc:
        parser(["nosuch"]).parse_args(["nosuch"])
    assert exc.value.code == 125
    err = capsys.readouterr().err
    assert err.startswith("cocoon: ") and len(err.strip().splitlines()) == 1, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        parser(["--version"]).parse_args(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("cocoon ")
