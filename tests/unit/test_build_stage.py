"""A stage's config, ARG scoping, RUN argv/env and COPY operations, as docker build has them."""

import pytest

from cocoon.builder.dockerfile import Heredoc, parse, parse_line
from cocoon.builder.stage import (
    DEFAULT_PATH,
    StageState,
    base_platform,
    base_ref,
    meta_values,
    parse_duration,
    unused_build_args,
)
from cocoon.errors import Corrupt, InvalidArgument

BASE = {"Env": ["PATH=/usr/bin:/bin", "LANG=C"], "Cmd": ["bash"], "WorkingDir": "/srv"}


def run(text: str, base=BASE, build_args=None, meta=None) -> StageState:
    """Apply a stage's config instructions (Dockerfile body after `FROM x`)."""
    df = parse("FROM x\n" + text)
    state = StageState(base, meta or {}, build_args or {}, df.escape)
    for instr in df.stages[0].instructions:
        state.apply(instr)
    return state


def instructions(text: str):
    return parse("FROM x\n" + text).stages[0].instructions


# -- FROM and meta args ---------------------------------------------------------


def test_meta_args_feed_from_only():
    df = parse("ARG IMG=debian\nARG TAG\nARG FULL=$IMG:${TAG:-12}\nFROM $FULL\nRUN x\n")
    meta = meta_values(df, {})
    assert meta == {"IMG": "debian", "FULL": "debian:12"}
    assert base_ref(df.stages[0], meta, {}) == "debian:12"
    meta = meta_values(df, {"TAG": "11", "IMG": "ubuntu", "OTHER": "x"})
    assert meta == {"IMG": "ubuntu", "TAG": "11", "FULL": "ubuntu:11"}
    assert base_ref(df.stages[0], meta, {"TAG": "11"}) == "ubuntu:11"


def test_platform_args_are_set_for_from():
    df = parse("FROM --platform=$BUILDPLATFORM img-$TARGETARCH$TARGETVARIANT\n")
    assert base_ref(df.stages[0], {}, {}) == "img-amd64"
    assert base_platform(df.stages[0], {}, {}) == "linux/amd64"
    assert base_platform(parse("FROM x\n").stages[0], {}, {}) is None


def test_blank_base_is_an_error():
    df = parse("ARG IMG\nFROM $IMG\n")
    with pytest.raises(InvalidArgument, match="Dockerfile:2: base name"):
        base_ref(df.stages[0], meta_values(df, {}), {})


def test_meta_args_are_not_in_a_stage_until_redeclared():
    state = run("ENV A=[$V]\nARG V\nENV B=[$V]\n", meta={"V": "meta"})
    assert state.env()["A"] == "[]"
    assert state.env()["B"] == "[meta]"


def test_unused_build_args():
    df = parse("ARG A\nFROM x\nARG B=1\nFROM y AS second\nARG C\n")
    args = {"A": "1", "B": "2", "C": "3", "D": "4", "HTTP_PROXY": "p"}
    assert unused_build_args(df, df.stages, args) == ("D",)
    assert unused_build_args(df, df.stages[:1], args) == ("C", "D")


# -- ARG ------------------------------------------------------------------------------


def test_arg_values_build_arg_default_and_unset():
    state = run("ARG A=def B C=$LANG\n", build_args={"A": "given", "Z": "z"})
    assert state.args == {"A": "given", "B": None, "C": "C"}
    assert state.cache_args() == (("A", "given"), ("C", "C"))
    assert state.used_args == {"A", "B", "C"}


def test_arg_sees_earlier_arg_and_env_overrides_arg():
    state = run("ARG V=1\nARG W=$V-x\nENV V=env\nARG X=$V\n")
    assert state.args["W"] == "1-x"
    assert state.args["X"] == "env"  # ENV wins over ARG in expansions
    assert state.variables()["V"] == "env"


def test_platform_args_need_declaring_in_a_stage():
    state = run("ENV A=[$TARGETOS]\nARG TARGETOS TARGETARCH\nENV B=$TARGETOS/$TARGETARCH\n")
    assert state.env()["A"] == "[]"
    assert state.env()["B"] == "linux/amd64"


# -- ENV, LABEL ---------------------------------------------------------------------------


def test_env_forms_and_expansion_against_the_previous_env():
    state = run('ENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nENV leg value "quoted"\n')
    env = state.env()
    assert (env["abc"], env["def"], env["ghi"]) == ("bye", "hello", "bye")
    assert env["leg"] == "value quoted"


def test_env_replaces_in_place_and_appends():
    state = run("ENV LANG=C.UTF-8 NEW=1\n")
    assert state.config["Env"] == ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "NEW=1"]


def test_env_quotes_and_escapes():
    state = run('ENV A="a b" B=\'$LANG\' C=x\\ y D="q\\"q" E=\n')
    env = state.env()
    assert (env["A"], env["B"], env["C"], env["D"], env["E"]) == ("a b", "$LANG", "x y", 'q"q', "")


def test_labels_merge_with_the_base():
    state = run('LABEL a=1 "b c"="d e"\nLABEL a=2\n', base={"Labels": {"base": "x"}})
    assert state.config["Labels"] == {"base": "x", "a": "2", "b c": "d e"}


# -- WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL ------------------------------------------


def test_workdir_is_relative_to_the_previous():
    assert run("WORKDIR a\nWORKDIR b/../c/\n").config["WorkingDir"] == "/srv/a/c"
    assert run("WORKDIR /x\nWORKDIR ../y\n").config["WorkingDir"] == "/y"
    assert run("ENV D=/data\nWORKDIR $D/in\n").config["WorkingDir"] == "/data/in"
    assert run("WORKDIR //a//b\n").config["WorkingDir"] == "/a/b"


def test_user():
    assert run("ENV U=app\nUSER $U:staff\n").config["User"] == "app:staff"


def test_expose():
    state = run("ENV P=8080\nEXPOSE 80 53/UDP 7000-7002/tcp $P\n")
    assert state.config["ExposedPorts"] == {
        "80/tcp": {},
        "53/udp": {},
        "7000/tcp": {},
        "7001/tcp": {},
        "7002/tcp": {},
        "8080/tcp": {},
    }


@pytest.mark.parametrize("spec", ["http", "80/icmp", "8080:80", "90-80", "70000"])
def test_expose_refuses(spec):
    with pytest.raises(InvalidArgument, match="Dockerfile:2: EXPOSE"):
        run(f"EXPOSE {spec}\n")


def test_volume():
    state = run('ENV D=/data\nVOLUME $D /logs\nVOLUME ["/json"]\n')
    assert state.config["Volumes"] == {"/data": {}, "/logs": {}, "/json": {}}
    with pytest.raises(InvalidArgument, match="empty"):
        run("VOLUME $UNSET\n")


@pytest.mark.parametrize("sig", ["SIGINT", "TERM", "9", "SIGRTMIN+3", "sigquit"])
def test_stopsignal(sig):
    assert run(f"STOPSIGNAL {sig}\n").config["StopSignal"] == sig


def test_stopsignal_refuses_junk():
    with pytest.raises(InvalidArgument, match="invalid signal"):
        run("STOPSIGNAL SIGNOPE\n")


# -- CMD, ENTRYPOINT, SHELL ---------------------------------------------------------------


def test_entrypoint_resets_an_inherited_cmd():
    state = run('ENTRYPOINT ["/app"]\n')
    assert state.config["Entrypoint"] == ["/app"]
    assert "Cmd" not in state.config


def test_entrypoint_keeps_a_cmd_of_this_stage():
    state = run('CMD ["--help"]\nENTRYPOINT ["/app"]\n')
    assert state.config["Cmd"] == ["--help"]


def test_shell_form_uses_the_current_shell_and_no_expansion():
    state = run('CMD echo $HOME\nSHELL ["/bin/bash", "-eo", "pipefail", "-c"]\nENTRYPOINT exec x\n')
    assert state.config["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]
    assert state.config["Entrypoint"] == ["/bin/bash", "-eo", "pipefail", "-c", "exec x"]
    assert state.config["Shell"] == ["/bin/bash", "-eo", "pipefail", "-c"]


# -- HEALTHCHECK, ONBUILD, MAINTAINER -----------------------------------------------------


def test_healthcheck():
    state = run("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0s --retries=3 "
                "CMD curl -f http://localhost/\n")  # fmt: skip
    assert state.config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://localhost/"],
        "Interval": 90_000_000_000,
        "Timeout": 500_000_000,
        "Retries": 3,
    }
    state = run('HEALTHCHECK --start-interval=2s CMD ["/check", "$X"]\n')
    assert state.config["Healthcheck"] == {
        "Test": ["CMD", "/check", "$X"],
        "StartInterval": 2_000_000_000,
    }
    none = run("HEALTHCHECK NONE\n", base={"Healthcheck": {"Test": ["CMD", "x"]}})
    assert none.config["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ("--interval=10us", "less than 1ms"),
        ("--interval=-1s", "less than 1ms"),
        ("--timeout=soon", "invalid duration"),
        ("--retries=-1", "cannot be negative"),
        ("--retries=x", "whole number"),
    ],
)
def test_healthcheck_refuses(flags, message):
    with pytest.raises(InvalidArgument, match=message):
        run(f"HEALTHCHECK {flags} CMD true\n")


@pytest.mark.parametrize(
    ("text", "ns"),
    [("0", 0), ("1h2m3.5s", 3_723_500_000_000), ("1.5ms", 1_500_000), ("2us", 2000), ("7ns", 7)],
)
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "1s2", "1 s"])
def test_parse_duration_refuses(text):
    with pytest.raises(InvalidArgument):
        parse_duration(text)


def test_onbuild_is_recorded_and_base_triggers_are_not_inherited():
    base = {"OnBuild": ["RUN echo from-base", "COPY --chown=1 a /b"]}
    state = run("ONBUILD RUN echo $X\n", base=base)
    assert state.config["OnBuild"] == ["RUN echo $X"]
    triggers = state.onbuild_triggers()
    assert [(t.keyword, t.args) for t in triggers] == [
        ("RUN", ("echo from-base",)),
        ("COPY", ("a", "/b")),
    ]
    assert "OnBuild" not in run("USER u\n", base=base).config


def test_bad_onbuild_trigger_in_the_base():
    state = StageState({"OnBuild": ["FROM evil"]}, {}, {}, line=4)
    with pytest.raises(InvalidArgument, match="Dockerfile:4: FROM isn't allowed"):
        state.onbuild_triggers()


def test_maintainer_sets_the_author():
    assert run("MAINTAINER Jane <j@x>\n").author == "Jane <j@x>"


# -- scratch ------------------------------------------------------------------------------


def test_scratch_gets_a_path_and_root_workdir():
    state = run("WORKDIR app\n", base={})
    assert state.config["Env"] == [f"PATH={DEFAULT_PATH}"]
    assert state.config["WorkingDir"] == "/app"


def test_base_config_is_not_modified():
    base = {"Env": ["A=1"], "Labels": {"x": "y"}}
    run("ENV A=2\nLABEL x=z\n", base=base)
    assert base == {"Env": ["A=1"], "Labels": {"x": "y"}}


def test_apply_refuses_from_and_ignores_filesystem_steps():
    state = StageState(BASE, {}, {})
    (copy,) = instructions("COPY a b\n")
    state.apply(copy)
    assert state.config == BASE
    with pytest.raises(InvalidArgument, match="FROM"):
        state.apply(parse_line("FROM y"))


# -- RUN ------------------------------------------------------------------------------------


def test_run_argv_forms():
    state = run('SHELL ["/bin/bash", "-c"]\n')
    shell, exec_form = instructions('RUN echo $HOME\nRUN ["ls", "$HOME"]\n')
    assert state.run_argv(shell) == ["/bin/bash", "-c", "echo $HOME"]
    assert state.run_argv(exec_form) == ["ls", "$HOME"]


def test_run_heredoc_script_and_shebang():
    state = StageState(BASE, {}, {})
    script, shebang, command = instructions(
        "RUN <<EOF\necho a\necho b\nEOF\n"
        "RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n"
        "RUN cat <<'A' > /f && cat <<-B\n$X\nA\n\tb\n\tB\n"
    )
    assert state.run_argv(script) == ["/bin/sh", "-c", "echo a\necho b\n"]
    argv = state.run_argv(shebang)
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[-1] == "#!/usr/bin/env python3\nprint(1)\n"
    assert state.run_argv(command) == ["/bin/sh", "-c", "cat <<'A' > /f && cat <<-B\n$X\nA\nb\nB\n"]


def test_run_env():
    state = run(
        "ARG A=1 UNSET\nENV LANG=en\nARG LANG=ignored\n",
        build_args={"https_proxy": "http://p", "OTHER": "x"},
    )
    assert state.run_env() == ["PATH=/usr/bin:/bin", "LANG=en", "A=1", "https_proxy=http://p"]
    assert state.cache_args() == (("A", "1"), ("LANG", "ignored"))


def test_run_env_adds_a_default_path():
    state = StageState({"Env": ["A=1"]}, {}, {})
    assert state.run_env() == ["A=1", f"PATH={DEFAULT_PATH}"]


# -- COPY / ADD ----------------------------------------------------------------------------


def copy_op(text: str):
    """The CopyOp of a body's last instruction, the others applied first."""
    *setup, last = instructions(text)
    state = StageState(BASE, {}, {})
    for instr in setup:
        state.apply(instr)
    return state.copy_op(last)


def test_copy_op_expands_and_resolves_the_destination():
    op = copy_op("ENV SRC=app DST=out\nCOPY --chown=$U:1 --chmod=0755 $SRC/ lib ${DST}/")
    assert op.sources == ("app/", "lib")
    assert op.dest == "/srv/out/"
    assert (op.chown, op.chmod, op.from_, op.add, op.line) == (":1", 0o755, None, False, 3)


@pytest.mark.parametrize(
    ("dest", "resolved"),
    [
        (".", "/srv/"),
        ("./", "/srv/"),
        ("a", "/srv/a"),
        ("a/", "/srv/a/"),
        ("/abs/./x/..", "/abs"),
        ("/", "/"),
        ("..", "/"),
        ("sub/.", "/srv/sub/"),
    ],
)
def test_copy_destinations(dest, resolved):
    assert copy_op(f"COPY f {dest}").dest == resolved


def test_copy_from_and_add():
    op = copy_op("ARG STAGE=build\nCOPY --from=$STAGE /out /in")
    assert (op.from_, op.sources) == ("build", ("/out",))
    assert copy_op("ADD a.tar /x/").add


def test_copy_json_form_keeps_spaces_and_expands():
    op = copy_op('ENV N=name\nCOPY ["my $N", "/dst dir/"]')
    assert (op.sources, op.dest) == (("my name",), "/dst dir/")


def test_copy_heredocs():
    op = copy_op("ARG V=1\nCOPY <<a <<'b' /etc/\nv=$V \"q\"\na\nv=$V\nb\n")
    assert op.sources == ()
    assert op.heredocs == (Heredoc("a", 'v=1 "q"\n', False), Heredoc("b", "v=$V\n", False))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("COPY --chmod=999 a b", "invalid --chmod"),
        ("COPY --chmod=u+x a b", "invalid --chmod"),
        ("COPY --parents a b", "--parents is not supported"),
        ("ADD --checksum=sha256:x a b", "--checksum is not supported"),
        ("COPY a $UNSET", "destination can not be empty"),
    ],
)
def test_copy_op_refuses(text, message):
    with pytest.raises(InvalidArgument, match=f"Dockerfile:2: .*{message}"):
        copy_op(text)


def test_copy_op_and_run_argv_check_the_keyword():
    state = StageState(BASE, {}, {})
    (user,) = instructions("USER u\n")
    with pytest.raises(InvalidArgument):
        state.copy_op(user)
    with pytest.raises(InvalidArgument):
        state.run_argv(user)


@pytest.mark.parametrize(
    "config",
    [
        {"Env": "PATH=/bin"},
        {"Env": [1]},
        {"OnBuild": [None]},
        {"Labels": ["a"]},
        {"Labels": {"a": 1}},
        {"WorkingDir": 7},
        {"Shell": ["/bin/sh", 0]},
    ],
)
def test_a_malformed_base_config_is_refused(config):
    with pytest.raises(Corrupt, match="the base image's config"):
        StageState(config, {}, {})


def test_run_flags():
    state = StageState(BASE, {}, {})
    cached, *refused = instructions(
        "RUN --mount=type=cache,target=/root/.cache --network=default make\n"
        "RUN --mount=type=secret,id=x cat /run/secrets/x\n"
        "RUN --mount=target=/src make\n"
        "RUN --network=none make\n"
        "RUN --security=insecure make\n"
    )
    assert state.run_argv(cached) == ["/bin/sh", "-c", "make"]
    messages = ["--mount=type=secret", "--mount=type=bind", "--network=none", "--security=insecure"]
    for instr, message in zip(refused, messages, strict=True):
        with pytest.raises(InvalidArgument, match=f"Dockerfile:{instr.line}: RUN {message}"):
            state.run_argv(instr)
