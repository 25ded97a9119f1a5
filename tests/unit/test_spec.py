"""Docker's rules for what a container runs."""

import pytest

from cocoon.container.spec import DEFAULT_PATH, argv, merge_env, process_spec
from cocoon.errors import InvalidArgument, NotFound


def test_argv_rules():
    assert argv(["/ep"], ["a"], None, None) == ["/ep", "a"]
    assert argv(["/ep"], ["a"], ["b"], None) == ["/ep", "b"]
    assert argv(["/ep"], ["a"], None, "/x") == ["/x"]
    assert argv(["/ep"], ["a"], ["b"], "/x") == ["/x", "b"]
    assert argv(["/ep"], ["a"], ["b"], "") == ["b"]
    assert argv(None, ["sh"], None, None) == ["sh"]


def test_merge_env_later_wins():
    assert merge_env(["A=1", "B=2"], ["A=3"]) == ["A=3", "B=2"]


def _spec(**kw):
    base = dict(
        image_entrypoint=None,
        image_cmd=["sh"],
        image_env=["PATH=/img", "X=img"],
        image_workdir=None,
        image_user=None,
        hostname="h1",
        host_env={"FROM_HOST": "yes"},
    )
    return process_spec(**{**base, **kw})


def test_env_layers_and_host_copy(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nX=file\nY=file\n")
    spec = _spec(env=["Y=flag", "FROM_HOST", "ABSENT"], env_files=[env_file])
    assert spec["env"] == ["PATH=/img", "HOSTNAME=h1", "X=file", "Y=flag", "FROM_HOST=yes"]


def test_defaults():
    spec = _spec(image_env=None, tty=(24, 80))
    assert f"PATH={DEFAULT_PATH}" in spec["env"] and "TERM=xterm" in spec["env"]
    assert (spec["cwd"], spec["user"]) == ("/", "0:0")


def test_bad_inputs():
    with pytest.raises(InvalidArgument, match="no command"):
        _spec(image_cmd=None)
    with pytest.raises(InvalidArgument, match="absolute"):
        _spec(workdir="rel")
    with pytest.raises(InvalidArgument, match="environment"):
        _spec(env=["=x"])
    with pytest.raises(NotFound, match="env file"):
        _spec(env_files=["/nonexistent/env"])
