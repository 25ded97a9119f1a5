"""``--ulimit`` and ``--group-add`` as Docker takes them, checked before any VM exists."""

from __future__ import annotations

import pytest

from cocoon.agent.limits import UNLIMITED, group, parse_ulimit
from cocoon.container.options import RunOptions
from cocoon.errors import InvalidArgument


def test_docker_ulimit_syntax() -> None:
    assert parse_ulimit("nofile=1024:2048") == ("nofile", 1024, 2048)
    assert parse_ulimit("nproc=64") == ("nproc", 64, 64)
    assert parse_ulimit("core=-1") == ("core", UNLIMITED, UNLIMITED)
    assert parse_ulimit("stack=8192:-1") == ("stack", 8192, UNLIMITED)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus=1", "unknown limit 'bogus'"),
        ("nofile=10:5", "soft limit exceeds the hard limit"),
        ("nofile", "use NAME=SOFT"),
        ("nofile=", "use NAME=SOFT"),
        ("nofile=x", "'x' is not a number"),
        ("nofile=-2", "out of range"),
        ("core=-1:5", "soft limit exceeds"),
    ],
)
def test_bad_ulimits_are_one_clear_error(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_ulimit(spec)


def test_run_options_keep_one_limit_per_resource_and_checked_groups() -> None:
    opts = RunOptions(
        ulimits=["nofile=10:20", {"Name": "core", "Soft": 0, "Hard": 0}, "nofile=30"],
        group_add=["audio", 4000],
    )
    assert opts.ulimits == (("nofile", 30, 30), ("core", 0, 0))
    assert opts.group_add == ["audio", "4000"]
    for bad in ("a,b", "x:y", ""):
        with pytest.raises(InvalidArgument, match="group"):
            group(bad)
    with pytest.raises(InvalidArgument, match="list"):
        RunOptions(group_add="audio")
    with pytest.raises(InvalidArgument, match="ulimit"):
        RunOptions(ulimits=[42])
