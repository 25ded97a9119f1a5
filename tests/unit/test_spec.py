"""Docker's rules for what a container runs."""

import pytest

from cocoon.container.options import RunOptions
from cocoon.container.spec import (
    ARG_MAX,
    DEFAULT_PATH,
    MAX_ARG_STRLEN,
    argv,
    check_exec_size,
    check_hostname,
    merge_env,
    process_spec,
)
from cocoon.errors import InvalidArgument, NotFound
from cocoon.image.model import ImageConfig


def test_argv_rules():
    assert argv(["/ep"], ["a"], None, None) == ["/ep", "a"]
    assert argv(["/ep"], ["a"], ["b"], None) == ["/ep", "b"]
    assert argv(["/ep"], ["a"], None, "/x") == ["/x"]
    assert argv(["/ep"], ["a"], ["b"], "/x") == ["/x", "b"]
    assert argv(["/ep"], ["a"], ["b"], "") == ["b"]
    assert argv(None, ["sh"], None, None) == ["sh"]


def test_merge_env_later_wins():
    assert merge_env(["A=1", "B=2"], ["A=3"]) == ["A=3", "B=2"]


_IMAGE = {"cmd": ("sh",), "env": ("PATH=/img", "X=img")}


def _spec(image=None, **opts):
    config = ImageConfig(**{**_IMAGE, **(image or {})})
    return process_spec(
        config, RunOptions(**opts), hostname="h1", stdin=False, host_env={"FROM_HOST": "yes"}
    )


def test_env_layers_and_host_copy(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nX=file\nY=file\n")
    spec = _spec(env=["Y=flag", "FROM_HOST", "ABSENT"], env_files=[env_file])
    assert spec.env == ["PATH=/img", "HOSTNAME=h1", "X=file", "Y=flag", "FROM_HOST=yes"]


def test_defaults():
    spec = _spec(image={"env": ()}, tty=(24, 80))
    assert f"PATH={DEFAULT_PATH}" in spec.env and "TERM=xterm" in spec.env
    assert (spec.cwd, spec.user) == ("/", "0:0")


def test_bad_inputs():
    with pytest.raises(InvalidArgument, match="no command"):
        _spec(image={"cmd": None})
    with pytest.raises(InvalidArgument, match="absolute"):
        _spec(workdir="rel")
    with pytest.raises(InvalidArgument, match="environment"):
        _spec(env=["=x"])
    with pytest.raises(NotFound, match="env file"):
        _spec(env_files=["/nonexistent/env"])


@pytest.mark.parametrize("name", ["web", "a-b.example", "x" * 63, "a1." * 16 + "a"])
def test_hostnames_that_are_rfc_1123_pass(name):
    assert check_hostname(name) == name


@pytest.mark.parametrize(
    "name",
    ["x cocoon.dns=9.9.9.9", "x\tcocoon.root=vdb", "-a", "a-", "a..b", "", "x" * 65, "é", 'a"b'],
)
def test_hostnames_that_could_become_kernel_arguments_are_refused(name):
    with pytest.raises(InvalidArgument, match="invalid hostname"):
        check_hostname(name)


def test_exec_size_follows_linux_limits():
    check_exec_size(["a" * (MAX_ARG_STRLEN - 1)], [])
    with pytest.raises(InvalidArgument, match="longer than Linux allows"):
        check_exec_size(["a" * MAX_ARG_STRLEN], [])
    eleven = ["x" * 100_000] * 11  # the case: fine each, but 1.1 MB together
    check_exec_size(eleven, [])
    with pytest.raises(InvalidArgument, match=f"Linux allows {ARG_MAX}"):
        check_exec_size(["x" * 100_000] * 21, [])
    with pytest.raises(InvalidArgument, match="arguments and environment"):
        _spec(command=["true"], env=[f"V{i}=" + "y" * 100_000 for i in range(21)])
