"""A container's tar is hostile: unpacking it on the host stays in the destination."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from cocoon.container.copy import extract, parse_location
from cocoon.errors import ExternalError, InvalidArgument


def archive(*members: tuple[str, str, bytes | str]) -> io.BytesIO:
    """(kind, name, data or link target) -> an in-memory tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size, info.mode = len(value), 0o640
                tar.addfile(info, io.BytesIO(value))
            else:
                info.type = {
                    "dir": tarfile.DIRTYPE,
                    "sym": tarfile.SYMTYPE,
                    "hard": tarfile.LNKTYPE,
                }[kind]
                info.linkname = value if isinstance(value, str) else ""
                info.mode = 0o755
                tar.addfile(info)
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    "members",
    [
        [("file", "../escaped", b"x")],
        [("sym", "link", "/"), ("file", "link/escaped", b"x")],
        [("sym", "up", ".."), ("file", "up/escaped", b"x")],
        [("hard", "hl", "../outside")],
    ],
)
def test_nothing_lands_outside(tmp_path, members):
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "outside").write_text("host file\n")
    with pytest.raises(ExternalError, match="refused"):
        extract(archive(*members), dest, archive=False)
    assert not (tmp_path / "escaped").exists()
    assert (tmp_path / "outside").read_text() == "host file\n"


def test_absolute_names_land_inside(tmp_path):
    extract(archive(("file", "/abs/inside", b"x")), tmp_path, archive=False)
    assert (tmp_path / "abs" / "inside").read_bytes() == b"x"


def test_into_a_folder_or_as_a_new_name(tmp_path):
    tar = archive(("dir", "srv", b""), ("file", "srv/a", b"A"), ("sym", "srv/l", "/etc/passwd"))
    extract(tar, tmp_path, archive=False)
    assert (tmp_path / "srv" / "a").read_bytes() == b"A"
    assert os.stat(tmp_path / "srv" / "a").st_mode & 0o777 == 0o640
    assert os.readlink(tmp_path / "srv" / "l") == "/etc/passwd"
    tar.seek(0)
    extract(tar, tmp_path / "copy", archive=False)
    assert (tmp_path / "copy" / "a").read_bytes() == b"A"


def test_locations():
    assert parse_location("web:/etc") == ("web", "/etc")
    assert parse_location("./a:b") == (None, "./a:b")
    assert parse_location("/x:y") == (None, "/x:y")
    assert parse_location("-") == (None, "-")
    with pytest.raises(InvalidArgument):
        parse_location("web:")
