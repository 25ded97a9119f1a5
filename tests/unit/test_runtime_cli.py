"""cocoon-runtime's command line: each call builds only its verb's parser, and parses alike."""

from __future__ import annotations

import pytest

from cocoon.runtime import main

CALLS = [
    ["--root", "/r", "--log", "/l", "--log-format", "json", "create", "--bundle", "/b",
     "--pid-file", "/p", "--console-socket", "/s", "--no-new-keyring", "c1"],
    ["--root=/r", "start", "c1"],
    ["--root", "start", "kill", "c1", "KILL", "--all"],  # a root folder named like a verb
    ["--debug", "--systemd-cgroup", "delete", "--force", "c1"],
    ["--rootless", "false", "state", "c1"],
    ["ps", "--format", "json", "c1"],
    ["list", "-q"],
    ["features"],
    ["pause", "c1"],
    ["resume", "c1"],
    ["--criu", "x", "exec", "--process", "/p.json", "-d", "--pid-file", "/p", "c1"],
]  # fmt: skip


@pytest.mark.parametrize("argv", CALLS, ids=lambda argv: main._verb_in(argv) or "none")
def test_a_verb_parses_as_with_every_verb_known(argv):
    everything = main._parser([])  # no verb named: all of them, as for --help
    assert main._parser(argv).parse_args(argv) == everything.parse_args(argv)


def test_only_the_called_verb_gets_a_parser():
    (sub,) = (a for a in main._parser(["--root", "/r", "start", "c1"])._actions if a.dest == "verb")
    assert list(sub.choices) == ["start"]
    (sub,) = (a for a in main._parser(["--root", "/r"])._actions if a.dest == "verb")
    assert list(sub.choices) == list(main.VERBS)


def test_the_verb_is_the_first_argument_no_option_takes():
    assert main._verb_in(["--root", "/r", "--log-format", "json", "create", "x"]) == "create"
    assert main._verb_in(["--root", "delete", "start", "x"]) == "start"
    assert main._verb_in(["--debug", "--version"]) is None
    assert main._verb_in([]) is None
