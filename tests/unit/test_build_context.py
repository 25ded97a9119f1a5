"""The build context: what COPY/ADD take from it, its cache hash, and a hostile tar context."""

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from cocoon.builder.context import Context, is_tar
from cocoon.builder.dockerfile import parse
from cocoon.builder.ignore import Ignore
from cocoon.builder.stage import StageState
from cocoon.errors import InvalidArgument, NotFound


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    files = {
        "Dockerfile": "FROM x\n",
        "a.txt": "A",
        "b.txt": "B",
        "src/main.py": "print(1)\n",
        "src/lib/util.py": "u\n",
        "src/.hidden": "h",
        "logs/x.log": "log",
        "docs/keep.md": "keep",
        "docs/drop.md": "drop",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    os.chmod(root / "src/main.py", 0o755)
    os.symlink("lib/util.py", root / "src/link")
    os.symlink("a.txt", root / "alias")
    os.symlink("/etc/passwd", root / "escape")
    return root


def op(text: str, workdir: str = "/app"):
    """The CopyOp of one COPY/ADD line in a stage whose WORKDIR is ``workdir``."""
    state = StageState({"WorkingDir": workdir}, {}, {})
    return state.copy_op(parse("FROM x\n" + text).stages[0].instructions[0])


def members(context: Context, text: str, owner=None, **kwargs) -> dict[str, tarfile.TarInfo]:
    sink = io.BytesIO()
    context.write_tar(op(text), sink, owner=owner, **kwargs)
    sink.seek(0)
    with tarfile.open(fileobj=sink) as tar:
        return {m.name: m for m in tar.getmembers()}


def content(context: Context, text: str) -> dict[str, bytes]:
    sink = io.BytesIO()
    context.write_tar(op(text), sink, owner=None)
    sink.seek(0)
    out = {}
    with tarfile.open(fileobj=sink) as tar:
        for m in tar:
            if m.isreg():
                out[m.name] = tar.extractfile(m).read()
    return out


# -- folder rules ---------------------------------------------------------------------


def test_file_to_a_file_and_into_a_folder(ctx):
    c = Context(ctx, Ignore())
    assert content(c, "COPY a.txt renamed") == {"app/renamed": b"A"}
    assert content(c, "COPY a.txt /opt/") == {"opt/a.txt": b"A"}
    assert content(c, "COPY a.txt .") == {"app/a.txt": b"A"}


def test_a_folder_copies_its_contents(ctx):
    got = members(Context(ctx, Ignore()), "COPY src /dst")
    assert sorted(got) == [
        "dst",
        "dst/.hidden",
        "dst/lib",
        "dst/lib/util.py",
        "dst/link",
        "dst/main.py",
    ]
    assert got["dst/link"].issym() and got["dst/link"].linkname == "lib/util.py"
    assert got["dst/main.py"].mode == 0o755
    assert got["dst"].isdir()
    assert all(m.uid == 0 and m.gid == 0 for m in got.values())


def test_the_whole_context_to_the_root(ctx):
    got = members(Context(ctx, Ignore()), "COPY . /")
    assert "a.txt" in got and "src/lib/util.py" in got
    assert "" not in got and "." not in got


def test_several_sources_need_a_folder_destination(ctx):
    c = Context(ctx, Ignore())
    assert sorted(content(c, "COPY a.txt b.txt /d/")) == ["d/a.txt", "d/b.txt"]
    with pytest.raises(InvalidArgument, match=r"Dockerfile:2: .*ending in /"):
        members(c, "COPY a.txt b.txt /d")
    with pytest.raises(InvalidArgument, match="ending in /"):
        members(c, "COPY *.txt /d")


def test_globs(ctx):
    c = Context(ctx, Ignore())
    assert sorted(content(c, "COPY *.txt /d/")) == ["d/a.txt", "d/b.txt"]
    assert content(c, "COPY src/*.py /d/") == {"d/main.py": b"print(1)\n"}
    assert content(c, "COPY s?c/lib/*.py /d/") == {"d/util.py": b"u\n"}
    assert content(c, "COPY [a]*.txt /d/") == {"d/a.txt": b"A"}
    assert sorted(content(c, "COPY src/.h* src/*.py /d/")) == ["d/.hidden", "d/main.py"]
    with pytest.raises(NotFound, match="Dockerfile:2: nothing\\*: nothing in the context"):
        members(c, "COPY nothing* /d/")


def test_missing_and_outside_sources(ctx):
    c = Context(ctx, Ignore())
    with pytest.raises(NotFound, match="Dockerfile:2: nope: no such file"):
        members(c, "COPY nope /d")
    for outside in ("../x", "src/../../x", "/.."):
        with pytest.raises(InvalidArgument, match="outside the build context"):
            members(c, f"COPY {outside} /d")
    assert content(c, "COPY /a.txt /d") == {"d": b"A"}  # / is the context's root


def test_a_symlink_source_is_followed_inside_the_context(ctx):
    c = Context(ctx, Ignore())
    got = members(c, "COPY alias /d/")
    assert got["d/alias"].isreg()
    assert content(c, "COPY alias /d/") == {"d/alias": b"A"}
    # A link to /etc/passwd reads the context's own etc/passwd: absent.
    with pytest.raises(NotFound):
        members(c, "COPY escape /d")
    (ctx / "etc").mkdir()
    (ctx / "etc/passwd").write_text("context's own")
    assert content(c, "COPY escape /d") == {"d": b"context's own"}


def test_heredoc_sources(ctx):
    c = Context(ctx, Ignore())
    assert content(c, "COPY <<EOF /etc/conf\nx=1\nEOF\n") == {"etc/conf": b"x=1\n"}
    got = members(c, "COPY --chmod=755 <<a <<b a.txt /bin/\n1\na\n2\nb\n")
    assert sorted(got) == ["bin/a", "bin/a.txt", "bin/b"]
    assert {m.mode for m in got.values()} == {0o755}
    assert members(c, "COPY <<EOF f\nx\nEOF\n")["app/f"].mode == 0o644


def test_chmod_and_owner(ctx):
    c = Context(ctx, Ignore())
    got = members(c, "COPY --chmod=640 src /s", owner=(1000, 50))
    assert {(m.uid, m.gid) for m in got.values()} == {(1000, 50)}
    assert got["s/main.py"].mode == 0o640
    assert got["s/lib"].mode == 0o640  # Docker's --chmod applies to folders too
    assert got["s/link"].issym()


def test_copy_from_is_not_the_contexts(ctx):
    with pytest.raises(InvalidArgument, match="from a stage"):
        members(Context(ctx, Ignore()), "COPY --from=build /out /in")


# -- .dockerignore --------------------------------------------------------------------


def test_excluded_files_are_skipped_and_refused_by_name(ctx):
    c = Context(ctx, Ignore.parse("logs\n*.txt\n!b.txt\nDockerfile\n"))
    got = members(c, "COPY . /x/")
    assert "x/logs" not in got and "x/logs/x.log" not in got
    assert "x/a.txt" not in got and "x/b.txt" in got
    assert "x/Dockerfile" not in got
    for name in ("a.txt", "logs", "logs/x.log", "Dockerfile"):
        with pytest.raises(
            InvalidArgument, match=f"Dockerfile:2: {name}: excluded by .dockerignore"
        ):
            members(c, f"COPY {name} /x/")
    assert content(c, "COPY *.txt /x/") == {"x/b.txt": b"B"}


def test_exception_inside_an_excluded_folder_brings_it_back(ctx):
    c = Context(ctx, Ignore.parse("docs\n!docs/keep.md\n"))
    got = members(c, "COPY . /x/")
    assert "x/docs" in got and "x/docs/keep.md" in got and "x/docs/drop.md" not in got
    assert content(c, "COPY docs /d/") == {"d/keep.md": b"keep"}
    with pytest.raises(InvalidArgument, match="excluded"):
        members(c, "COPY docs/drop.md /d/")


def test_a_link_to_an_excluded_file_is_refused(ctx):
    c = Context(ctx, Ignore.parse("a.txt\n"))
    with pytest.raises(InvalidArgument, match="alias: excluded"):
        members(c, "COPY alias /d")


def test_context_at_reads_the_dockerignore_beside_the_dockerfile(ctx, tmp_path):
    (ctx / ".dockerignore").write_text("a.txt\n")
    assert Context.at(ctx).ignore.excluded("a.txt")
    own = tmp_path / "web.Dockerfile"
    own.write_text("FROM x\n")
    (tmp_path / "web.Dockerfile.dockerignore").write_text("b.txt\n")
    rules = Context.at(ctx, own).ignore
    assert rules.excluded("b.txt") and not rules.excluded("a.txt")
    with pytest.raises(NotFound):
        Context.at(ctx / "missing")


# -- ADD ---------------------------------------------------------------------------------


def make_tar(path: Path, entries, compress=False) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def info(name: str, data: bytes | None = None, **fields) -> tuple[tarfile.TarInfo, bytes | None]:
    member = tarfile.TarInfo(name)
    member.size = len(data) if data is not None else 0
    for key, value in fields.items():
        setattr(member, key, value)
    return member, data


def test_add_unpacks_a_local_tar(ctx):
    make_tar(
        ctx / "app.tar.gz",
        [
            info("bin", type=tarfile.DIRTYPE, mode=0o755),
            info("bin/tool", b"#!/bin/sh\n", mode=0o755, uid=7, gid=8),
            info("/abs/file", b"abs"),
            info("bin/hard", type=tarfile.LNKTYPE, linkname="bin/tool"),
        ],
        compress=True,
    )
    c = Context(ctx, Ignore())
    got = members(c, "ADD app.tar.gz /opt")
    assert sorted(got) == ["opt/abs/file", "opt/bin", "opt/bin/hard", "opt/bin/tool"]
    assert (got["opt/bin/tool"].uid, got["opt/bin/tool"].gid) == (7, 8)  # kept, no --chown
    assert got["opt/bin/hard"].linkname == "opt/bin/tool"
    chowned = members(c, "ADD --chown=1:1 app.tar.gz /opt", owner=(1, 1))
    assert chowned["opt/bin/tool"].uid == 1
    assert content(c, "COPY app.tar.gz /x/") != {}  # COPY never unpacks
    assert list(content(c, "COPY app.tar.gz /x/")) == ["x/app.tar.gz"]


@pytest.mark.parametrize(
    "entry",
    [
        info("../escape", b"x"),
        info("a/../../escape", b"x"),
        info("hard", type=tarfile.LNKTYPE, linkname="../../etc/shadow"),
    ],
)
def test_add_refuses_a_tar_leading_outside(ctx, entry):
    make_tar(ctx / "bad.tar", [entry])
    with pytest.raises(InvalidArgument, match="leads outside"):
        members(Context(ctx, Ignore()), "ADD bad.tar /opt/")


def test_add_of_a_plain_file_and_a_url(ctx):
    c = Context(ctx, Ignore())
    assert content(c, "ADD a.txt /d/") == {"d/a.txt": b"A"}
    with pytest.raises(InvalidArgument, match="ADD of a URL is not supported yet"):
        members(c, "ADD https://example.com/x /d/")
    with pytest.raises(InvalidArgument, match="URL"):
        members(c, "COPY http://example.com/x /d/")


# -- the cache hash -----------------------------------------------------------------------


def test_hash_ignores_mtimes_and_sees_content_names_and_modes(ctx):
    c = Context(ctx, Ignore())
    copy = op("COPY src /s")
    first = c.hash(copy)
    os.utime(ctx / "src/main.py", (1, 1))
    assert c.hash(copy) == first
    (ctx / "src/main.py").write_text("print(2)\n")
    second = c.hash(copy)
    assert second != first
    os.chmod(ctx / "src/main.py", 0o700)
    third = c.hash(copy)
    assert third != second
    os.rename(ctx / "src/main.py", ctx / "src/app.py")
    assert c.hash(copy) != third
    os.unlink(ctx / "src/link")
    os.symlink("elsewhere", ctx / "src/link")
    assert c.hash(copy) != third
    assert c.hash(op("COPY a.txt /x")) != c.hash(op("COPY b.txt /x"))


def test_hash_of_an_unrelated_change_stays(ctx):
    c = Context(ctx, Ignore())
    copy = op("COPY src /s")
    first = c.hash(copy)
    (ctx / "b.txt").write_text("changed")
    assert c.hash(copy) == first


def test_hash_ignores_excluded_files(ctx):
    c = Context(ctx, Ignore.parse("**/*.log\n"))
    copy = op("COPY . /x/")
    first = c.hash(copy)
    (ctx / "logs/x.log").write_text("more")
    assert c.hash(copy) == first


# -- a tar context ------------------------------------------------------------------------


def tar_stream(entries, compress=False) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member, data in entries:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return io.BytesIO(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True])
def test_from_tar(tmp_path, compress):
    stream = tar_stream(
        [
            info("Dockerfile", b"FROM x\n"),
            info(".dockerignore", b"**/*.log\n"),
            info("app/run.sh", b"#!/bin/sh\n", mode=0o755),
            info("app/x.log", b"log"),
        ],
        compress,
    )
    c = Context.from_tar(stream, tmp_path / "into")
    assert (tmp_path / "into/Dockerfile").read_text() == "FROM x\n"
    assert (tmp_path / "into/app/run.sh").stat().st_mode & 0o777 == 0o755
    assert content(c, "COPY app /a/") == {"a/run.sh": b"#!/bin/sh\n"}


@pytest.mark.parametrize(
    "entry",
    [
        info("../escaped", b"x"),
        info("link", type=tarfile.SYMTYPE, linkname="/etc/shadow"),
        info("up", type=tarfile.SYMTYPE, linkname="../../.."),
        info("hard", type=tarfile.LNKTYPE, linkname="../outside"),
        info("dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
    ],
)
def test_from_tar_refuses_hostile_members(tmp_path, entry):
    with pytest.raises(InvalidArgument, match="build context"):
        Context.from_tar(tar_stream([entry]), tmp_path / "into")
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "outside").exists()


def test_from_tar_keeps_absolute_names_inside(tmp_path):
    Context.from_tar(tar_stream([info("/etc/evil", b"x")]), tmp_path / "into")
    assert (tmp_path / "into/etc/evil").read_text() == "x"


def test_from_tar_refuses_a_path_through_a_link(tmp_path):
    entries = [
        info("inside", type=tarfile.DIRTYPE, mode=0o755),
        info("jump", type=tarfile.SYMTYPE, linkname="inside"),
        info("jump/../../escaped", b"x"),
    ]
    with pytest.raises(InvalidArgument):
        Context.from_tar(tar_stream(entries), tmp_path / "into")
    assert not (tmp_path / "escaped").exists()


def test_from_tar_refuses_junk(tmp_path):
    with pytest.raises(InvalidArgument, match="build context"):
        Context.from_tar(io.BytesIO(b"not a tar at all" * 100), tmp_path / "into")
    with pytest.raises(InvalidArgument, match="build context"):
        Context.from_tar(io.BytesIO(gzip.compress(b"x")[:-4]), tmp_path / "into2")


def test_a_destination_folder_in_the_image(ctx):
    c = Context(ctx, Ignore())
    assert list(members(c, "COPY a.txt /usr/local/bin", dest_is_dir=True)) == [
        "usr/local/bin/a.txt"
    ]
    copy = op("COPY a.txt /usr/local/bin")
    assert c.hash(copy, dest_is_dir=True) != c.hash(copy)
    assert list(members(c, "COPY <<EOF /etc\nx\nEOF\n", dest_is_dir=True)) == ["etc/EOF"]


def test_add_of_an_archive_at_the_root_leaves_the_root_alone(ctx):
    make_tar(ctx / "root.tar", [info(".", type=tarfile.DIRTYPE, mode=0o700), info("./f", b"f")])
    assert sorted(members(Context(ctx, Ignore()), "ADD root.tar /")) == ["f"]


def test_a_link_swapped_in_after_the_walk_is_not_followed(ctx):
    c = Context(ctx, Ignore())
    (entry,) = c._entries(op("COPY a.txt /d"))
    os.unlink(ctx / "a.txt")
    os.symlink("/etc/passwd", ctx / "a.txt")
    with pytest.raises(InvalidArgument, match=r"Dockerfile:2: a\.txt: cannot read it"):
        entry.open()


def test_is_tar():
    tar = tar_stream([info("Dockerfile", b"FROM x\n")]).getvalue()
    assert is_tar(tar[:512])
    assert is_tar(gzip.compress(tar)[:512])
    assert not is_tar(b"FROM alpine\nRUN echo hi\n")
    assert not is_tar(b"")
    assert not is_tar(bytes(512))
