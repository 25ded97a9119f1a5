"""The Dockerfile parser follows Docker's syntax, edge cases included."""

import pytest

from cocoon.builder.dockerfile import Heredoc, heredoc_word, parse, parse_line, select
from cocoon.errors import InvalidArgument, NotFound


def only(text: str):
    """The instructions of a one-stage Dockerfile's stage, after `FROM x`."""
    return parse("FROM x\n" + text).stages[0].instructions


def one(text: str):
    (instr,) = only(text)
    return instr


# -- lines ----------------------------------------------------------------------


def test_continuation_joins_lines_and_keeps_line_numbers():
    df = parse("FROM x\nRUN echo a \\\n    b \\  \n  c\nUSER u\n")
    run, user = df.stages[0].instructions
    assert run.args == ("echo a     b   c",)  # the next line's own indent stays
    assert (run.line, user.line) == (2, 5)
    assert run.text == "RUN echo a     b   c"


def test_comments_and_blank_lines_inside_a_continuation_are_dropped():
    run = one("RUN apt-get update && \\\n  # a comment\n\n    apt-get install x\n")
    assert run.args == ("apt-get update &&     apt-get install x",)


def test_hash_mid_line_is_no_comment():
    assert one("RUN echo a # b").args == ("echo a # b",)


def test_escaped_escape_at_end_does_not_continue():
    instrs = only("RUN echo a\\\\\nUSER u\n")
    assert [i.keyword for i in instrs] == ["RUN", "USER"]
    assert instrs[0].args == ("echo a\\\\",)


def test_continuation_at_end_of_file():
    assert one("RUN echo \\").args == ("echo",)


def test_crlf_bom_and_indentation():
    df = parse("\ufeffFROM x\r\n  run echo hi\r\n\tUSER u\r\n")
    run, user = df.stages[0].instructions
    assert (run.keyword, run.args, user.args) == ("RUN", ("echo hi",), ("u",))


def test_keyword_case_is_free():
    assert one("wOrKdIr /a").keyword == "WORKDIR"


# -- directives ---------------------------------------------------------------------


def test_escape_directive_changes_continuation_and_escape():
    df = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  /w\n")
    assert df.escape == "`"
    assert df.stages[0].instructions[0].args == ("dir c:\\   /w",)


def test_directives_are_case_insensitive_and_may_be_spaced():
    assert parse("#ESCAPE = `\nFROM x\n").escape == "`"
    assert parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n").escape == "`"


@pytest.mark.parametrize(
    "head",
    [
        "# a comment\n# escape=`\n",  # after a comment
        "\n# escape=`\n",  # after a blank line
        "# unknown=1\n# escape=`\n",  # an unknown directive is a comment and ends them
        "FROM y\n# escape=`\n",
    ],
)
def test_directives_count_only_at_the_top(head):
    assert parse(head + "FROM x\n").escape == "\\"


def test_directive_errors():
    with pytest.raises(InvalidArgument, match="only one escape"):
        parse("# escape=`\n# escape=\\\nFROM x\n")
    with pytest.raises(InvalidArgument, match="invalid escape"):
        parse("# escape=x\nFROM x\n")


# -- forms ----------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["RUN", "CMD", "ENTRYPOINT"])
def test_exec_and_shell_form(keyword):
    exec_form = one(f'{keyword} [ "a", "b c" ]')
    assert (exec_form.args, exec_form.json_form) == (("a", "b c"), True)
    shell = one(f"{keyword} a 'b c'")
    assert (shell.args, shell.json_form) == (("a 'b c'",), False)


@pytest.mark.parametrize(
    "text", ["RUN [not json", "RUN ['single', 'quotes']", 'RUN ["a"] trailing', "RUN [NaN]"]
)
def test_invalid_json_falls_back_to_shell_form(text):
    instr = one(text)
    assert not instr.json_form
    assert instr.args == (text[4:],)


def test_json_of_non_strings_is_an_error():
    with pytest.raises(InvalidArgument, match=r"Dockerfile:2: .*strings only"):
        only('CMD ["a", 1]')


def test_empty_json_array():
    cmd = one("CMD []")
    assert (cmd.args, cmd.json_form) == ((), True)


def test_copy_json_and_words():
    assert one('COPY ["a b", "/dst/"]').args == ("a b", "/dst/")
    assert one("COPY a  b /dst/").args == ("a", "b", "/dst/")
    assert one('COPY "a"b /d/').args == ('"a"b', "/d/")
    with pytest.raises(InvalidArgument, match="double-quote"):
        only('COPY "a b" /d/')  # words split before quotes count, as Docker does


def test_volume_forms():
    assert one('VOLUME ["/a", "/b"]').args == ("/a", "/b")
    assert one("VOLUME /a /b").args == ("/a", "/b")


def test_whole_rest_keywords():
    assert one("WORKDIR /a b").args == ("/a b",)
    assert one("USER app:staff").args == ("app:staff",)
    assert one("MAINTAINER A <a@b>").args == ("A <a@b>",)


def test_env_and_label_forms():
    assert one('ENV A=1 B="x y" C=z\\ w').args == ("A=1", 'B="x y"', "C=z\\ w")
    assert one("ENV key value with  spaces").args == ("key", "value with  spaces")
    assert one('LABEL "a b"=c').args == ('"a b"=c',)
    with pytest.raises(InvalidArgument, match="can't find ="):
        only("ENV A=1 B")
    with pytest.raises(InvalidArgument, match="two arguments"):
        only("ENV A")


def test_arg_words():
    assert one("ARG A B=2 C").args == ("A", "B=2", "C")


def test_unterminated_quote_is_a_parse_error_with_its_line():
    with pytest.raises(InvalidArgument, match=r"Dockerfile:3: .*double-quote"):
        parse('FROM x\nUSER u\nENV A="open\n')
    with pytest.raises(InvalidArgument, match=r"Dockerfile:2: .*single-quote"):
        parse("FROM x\nWORKDIR '/a\n")


def test_run_quotes_are_the_shells_business():
    assert one('RUN echo "open').args == ('echo "open',)


# -- flags ---------------------------------------------------------------------


def test_flags():
    copy = one("COPY --from=build --chown=app:app --chmod=644 --link a /b")
    assert dict(copy.flags) == {
        "from": ("build",),
        "chown": ("app:app",),
        "chmod": ("644",),
        "link": ("true",),
    }
    assert copy.args == ("a", "/b")
    assert one("COPY --link=false a /b").flags["link"] == ("false",)
    assert one('COPY --chown="a b" x /y').flag("chown") == "a b"
    assert one("RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t make").flags[
        "mount"
    ] == ("type=cache,target=/c", "type=tmpfs,target=/t")


def test_double_dash_ends_flags():
    run = one("RUN -- --not-a-flag")
    assert (dict(run.flags), run.args) == ({}, ("--not-a-flag",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("COPY --nope a b", "Dockerfile:2: unknown flag --nope on COPY"),
        ("ADD --from=x a b", "unknown flag --from on ADD"),
        ("RUN --from=x a", "unknown flag --from on RUN"),
        ("COPY --from a b", "needs a value"),
        ("COPY --from=a --from=b a b", "given twice"),
        ("COPY --link=maybe a b", "true or false"),
        ("USER --x u", "unknown flag --x on USER"),
    ],
)
def test_flag_errors(text, message):
    with pytest.raises(InvalidArgument, match=message):
        only(text)


# -- heredocs ----------------------------------------------------------------------


def test_run_heredoc():
    df = parse("FROM x\nRUN <<EOF\necho hi\n# kept\nEOF\nUSER u\n")
    run, user = df.stages[0].instructions
    assert run.heredocs == (Heredoc("EOF", "echo hi\n# kept\n", True),)
    assert run.args == ("<<EOF",)
    assert user.line == 6


def test_copy_heredocs_several_and_quoted():
    copy = one("COPY <<a <<'b' /etc/\nfirst $X\na\nsecond $X\nb\n")
    assert copy.heredocs == (Heredoc("a", "first $X\n", True), Heredoc("b", "second $X\n", False))
    assert copy.args == ("<<a", "<<'b'", "/etc/")


def test_heredoc_dash_strips_leading_tabs():
    run = one('RUN <<-"EOT" bash\n\techo a\n\t\t  b\n\tEOT\n')
    assert run.heredocs == (Heredoc("EOT", "echo a\n  b\n", False),)


def test_heredoc_with_a_command_and_redirect():
    run = one("RUN cat <<EOF > /f\nbody\nEOF\n")
    assert run.args == ("cat <<EOF > /f",)
    assert run.heredocs[0].body == "body\n"


def test_heredoc_partly_quoted_name_turns_expansion_off():
    assert one('RUN <<E"O"F\nx\nEOF\n').heredocs == (Heredoc("EOF", "x\n", False),)


def test_no_heredoc_in_exec_form_or_quotes():
    assert one('RUN ["cat", "<<EOF"]').heredocs == ()
    assert one('RUN echo "<<EOF"').heredocs == ()
    assert one("ENV A=<<EOF").heredocs == ()


def test_unterminated_heredoc_names_its_line():
    with pytest.raises(InvalidArgument, match="Dockerfile:3: unterminated heredoc 'EOF'"):
        parse("FROM x\nUSER u\nRUN <<EOF\nbody\n")


def test_heredoc_word():
    assert heredoc_word("<<EOF") == ("EOF", False, True)
    assert heredoc_word("<<-'X'") == ("X", True, False)
    assert heredoc_word("2<<EOF") == ("EOF", False, True)
    assert heredoc_word("<<") is None
    assert heredoc_word("a<<EOF") is None


# -- stages -----------------------------------------------------------------------


def test_stages_and_meta_args():
    df = parse(
        "ARG V=1\nARG B\nFROM base:$V AS Build\nRUN x\nFROM --platform=$P scratch\nCOPY a b\n"
    )
    assert [a.args for a in df.meta_args] == [("V=1",), ("B",)]
    first, second = df.stages
    assert (first.index, first.name, first.base, first.line) == (0, "build", "base:$V", 3)
    assert (second.name, second.base, second.platform) == (None, "scratch", "$P")
    assert [i.keyword for i in first.instructions] == ["RUN"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RUN x\nFROM y", "Dockerfile:1: RUN before the first FROM"),
        ("", "no FROM"),
        ("# only a comment\n", "no FROM"),
        ("ARG A\n", "no FROM"),
        ("FROM a b", "one or three arguments"),
        ("FROM a AS", "one or three arguments"),
        ("FROM a FOR b", "one or three arguments"),
        ("FROM a AS 1abc", "invalid stage name"),
        ("FROM a AS b\nFROM c AS B", "Dockerfile:2: duplicate stage name 'b'"),
        ("FROM a\nFOO bar", 'Dockerfile:2: unknown instruction "FOO"'),
        ("FROM a\nRUN", "Dockerfile:2: RUN requires at least one argument"),
        ("FROM a\nCOPY a", "at least two arguments"),
        ("FROM a\nSHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form"),
        ("FROM a\nSHELL []", "JSON form"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(InvalidArgument, match=message):
        parse(text)


def test_filename_appears_in_file_level_errors():
    with pytest.raises(InvalidArgument, match=r"^web.Dockerfile: no FROM"):
        parse("", filename="web.Dockerfile")
    with pytest.raises(InvalidArgument, match=r"^web.Dockerfile:1: "):
        parse("BAD x", filename="web.Dockerfile")


def test_select():
    df = parse("FROM a AS one\nFROM b AS two\nFROM c\n")
    assert select(df, None) == df.stages
    assert [s.name for s in select(df, "TWO")] == ["one", "two"]
    with pytest.raises(NotFound, match="three"):
        select(df, "three")


# -- HEALTHCHECK and ONBUILD --------------------------------------------------------


def test_healthcheck_forms():
    assert one("HEALTHCHECK NONE").args == ("NONE",)
    shell = one("HEALTHCHECK --interval=5s CMD curl -f http://x/ || exit 1")
    assert (shell.args, shell.json_form) == (("CMD", "curl -f http://x/ || exit 1"), False)
    assert shell.flag("interval") == "5s"
    exec_form = one('HEALTHCHECK cmd ["curl", "x"]')
    assert (exec_form.args, exec_form.json_form) == (("CMD", "curl", "x"), True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("HEALTHCHECK NONE now", "takes no arguments"),
        ("HEALTHCHECK RUN x", "unknown type 'RUN'"),
        ("HEALTHCHECK CMD", "missing command"),
        ("HEALTHCHECK --every=1s CMD x", "unknown flag --every"),
    ],
)
def test_healthcheck_errors(text, message):
    with pytest.raises(InvalidArgument, match=message):
        only(text)


def test_onbuild_keeps_the_trigger_text():
    assert one("ONBUILD  RUN echo  hi").args == ("RUN echo  hi",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ONBUILD ONBUILD RUN x", "ONBUILD ONBUILD isn't allowed"),
        ("ONBUILD FROM y", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed"),
        ("ONBUILD FOO x", 'unknown instruction "FOO"'),
        ("ONBUILD COPY --bad a b", "unknown flag --bad"),
    ],
)
def test_onbuild_refusals(text, message):
    with pytest.raises(InvalidArgument, match=f"Dockerfile:2: {message}"):
        only(text)


def test_parse_line():
    instr = parse_line("COPY --from=x a /b", line=7)
    assert (instr.keyword, instr.line, instr.args, instr.flag("from")) == (
        "COPY",
        7,
        ("a", "/b"),
        "x",
    )
    with pytest.raises(InvalidArgument, match="Dockerfile:7"):
        parse_line("NOPE", line=7)
    with pytest.raises(InvalidArgument, match="one instruction"):
        parse_line("RUN a\nRUN b")
