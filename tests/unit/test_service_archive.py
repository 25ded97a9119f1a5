"""The archive, top and stats translations of the service (no VM needed)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import stat
import tarfile

import pytest

from cocoon.container import top
from cocoon.container.pathstat import HEADERS_MAX, FirstEntry, PathStat
from cocoon.diskuse import allocated
from cocoon.errors import Corrupt, InvalidArgument
from cocoon.service import archive
from cocoon.service.http import Request


def request(**params: str) -> Request:
    return Request("GET", "/containers/c/archive", {k: [v] for k, v in params.items()}, {}, None)


def tar_of(*members: tarfile.TarInfo) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isreg() else None)
    return out.getvalue()


@pytest.mark.parametrize(("given", "clean"), [
    ("/etc/hostname", "/etc/hostname"),
    ("etc//passwd", "/etc/passwd"),
    ("/../../etc/shadow", "/etc/shadow"),  # stops at the container's root, as dockerd
    ("/tmp/", "/tmp"),
    ("/tmp/.", "/tmp/."),
    ("/", "/"),
    (".", "/."),
])  # fmt: skip
def test_paths_are_joined_to_the_root(given, clean):
    assert archive.container_path(request(path=given)) == clean


def test_a_path_is_required_and_has_no_nul():
    with pytest.raises(InvalidArgument):
        archive.container_path(request())
    with pytest.raises(InvalidArgument, match="NUL"):
        archive.container_path(request(path="/etc\0/x"))


def test_allocated_counts_blocks_not_lengths(tmp_path):
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(64 << 20)
    (tmp_path / "dense").write_bytes(b"x" * (1 << 20))
    assert allocated(sparse) < 1 << 20 <= allocated(tmp_path / "dense")
    assert allocated(tmp_path) >= allocated(tmp_path / "dense") + allocated(sparse)
    assert allocated(tmp_path / "absent") == 0


def test_modes_are_gos():
    assert archive.go_mode(stat.S_IFDIR | 0o755) == 1 << 31 | 0o755
    assert archive.go_mode(stat.S_IFLNK | 0o777) == 1 << 27 | 0o777
    assert archive.go_mode(stat.S_IFREG | stat.S_ISUID | 0o4755) == 1 << 23 | 0o755
    assert archive.go_mode(stat.S_IFCHR | 0o600) == 1 << 26 | 1 << 21 | 0o600


def test_stat_header_resolves_a_relative_link():
    st = PathStat("link", 0, stat.S_IFLNK | 0o777, 0, "../b/c")
    body = json.loads(base64.b64decode(archive.stat_header(st, "/srv/a/link")))
    assert body == {"name": "link", "size": 0, "mode": 1 << 27 | 0o777,
                    "mtime": "1970-01-01T00:00:00Z", "linkTarget": "/srv/b/c"}  # fmt: skip


def test_first_entry_waits_for_whole_headers_then_reads_them():
    long = tarfile.TarInfo("d" * 150)  # a pax header comes first
    long.type, long.mode, long.mtime = tarfile.DIRTYPE, 0o750, 12
    data = tar_of(long, tarfile.TarInfo("after"))
    first = FirstEntry()
    assert not first.feed(data[:700])
    assert first.feed(data[700:1600])
    assert first.entry == PathStat("d" * 150, 0, stat.S_IFDIR | 0o750, 12, "")


def test_first_entry_gives_up_on_garbage():
    first = FirstEntry()
    with pytest.raises(Corrupt):
        for _ in range(HEADERS_MAX // 4096 + 2):
            first.feed(b"\xff" * 4096)


def test_request_tars_plain_or_compressed_and_nothing_else():
    data = tar_of(tarfile.TarInfo("empty"))
    assert archive._tar_body(iter([data[:100], data[100:]])).read() == data
    assert archive._tar_body(iter([gzip.compress(data)])).read() == data
    assert archive._tar_body(iter([])).read() == b""
    with pytest.raises(Corrupt, match="not a tar archive"):
        archive._tar_body(iter([b"<html>" * 200]))
    with pytest.raises(Corrupt):
        archive._tar_body(iter([b"\x1f\x8bnot gzip at all" * 40]))


def test_top_keeps_the_commands_spaces():
    out = b"PID   USER     TIME  COMMAND\n    1 root      0:00 sleep 600\n\n"
    assert top.table(out) == {"Titles": ["PID", "USER", "TIME", "COMMAND"],
                              "Processes": [["1", "root", "0:00", "sleep 600"]]}  # fmt: skip
    assert top.table(b"") == {"Titles": [], "Processes": []}
