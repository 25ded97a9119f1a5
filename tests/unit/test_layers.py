"""Applying layers: metadata kept, whiteouts honoured, nothing escapes the root."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from oci import Layer

from cocoon.errors import Corrupt, InvalidState, Unsupported
from cocoon.rootfs import layers
from cocoon.rootfs.layers import apply_layer


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def apply(root: Path, *stack: Layer, compress: bool = True) -> None:
    for layer in stack:
        raw = layer.tar()
        blob = gzip.compress(raw) if compress else raw
        apply_layer(io.BytesIO(blob), root, digest=sha(blob), diff_id=sha(raw))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the root that no layer may touch."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret").write_text("precious")
    return path


def entry(name: str, **fields: object) -> Layer:
    info = tarfile.TarInfo(name)
    for key, value in fields.items():
        setattr(info, key, value)
    return Layer()._add(info, b"" if info.isreg() else None)


def test_files_dirs_and_their_metadata(root: Path) -> None:
    layer = (
        Layer()
        .dir("usr", 0o755)
        .dir("tmp", 0o1777)
        .dir("home/app", 0o750, uid=1000, gid=1000)
        .file("usr/su", b"#!", 0o4755, uid=0, gid=50)
        .file("home/app/notes", b"hello", 0o640, uid=1000, gid=1000)
    )
    layer.members[0][0].mtime = 1_600_000_000
    apply(root, layer)
    su = os.lstat(root / "usr/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755 and (su.st_uid, su.st_gid) == (0, 50)
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
    notes = os.lstat(root / "home/app/notes")
    assert (notes.st_uid, notes.st_gid, notes.st_mtime) == (1000, 1000, 1_700_000_000)
    assert (root / "home/app/notes").read_bytes() == b"hello"
    home = os.lstat(root / "home/app")
    assert stat.S_IMODE(home.st_mode) == 0o750 and home.st_uid == 1000
    # Directory times are set after their contents are written.
    assert os.lstat(root / "usr").st_mtime == 1_600_000_000
    # A parent the layer never named is made like Docker makes it.
    assert stat.S_IMODE(os.lstat(root / "home").st_mode) == 0o755


def test_links_devices_fifos_and_xattrs(root: Path) -> None:
    layer = (
        Layer()
        .file("bin/busybox", b"elf", 0o755)
        .symlink("bin/sh", "/bin/busybox")
        .symlink("bin/ls", "busybox")
        .hardlink("bin/hard", "bin/busybox")
    )
    layer._add(_special("dev/null", tarfile.CHRTYPE, 1, 3))
    layer._add(_special("dev/sda", tarfile.BLKTYPE, 8, 0))
    layer._add(_special("run/fifo", tarfile.FIFOTYPE))
    info = tarfile.TarInfo("etc/labelled")
    info.size = 1
    info.pax_headers = {"SCHILY.xattr.user.cocoon": "yes\udcff"}
    layer._add(info, b"x")
    apply(root, layer)
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert os.readlink(root / "bin/ls") == "busybox"
    assert os.lstat(root / "bin/hard").st_ino == os.lstat(root / "bin/busybox").st_ino
    null = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
    assert os.minor(null.st_rdev) == 3 and stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(root / "dev/sda").st_mode)
    assert stat.S_ISFIFO(os.lstat(root / "run/fifo").st_mode)
    assert os.getxattr(root / "etc/labelled", "user.cocoon") == b"yes\xff"


def _special(name: str, kind: bytes, major: int = 0, minor: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.devmajor, info.devminor = kind, 0o666, major, minor
    return info


def test_whiteouts_and_opaque_dirs_across_three_layers(root: Path) -> None:
    base = (
        Layer()
        .file("etc/keep", b"1")
        .file("etc/gone", b"1")
        .file("var/cache/a", b"1")
        .file("var/cache/sub/b", b"1")
        .dir("opt/tree")
        .file("opt/tree/leaf", b"1")
    )
    middle = (
        Layer()
        .whiteout("etc/gone")
        .whiteout("opt/tree")
        .file("var/cache/sub/c", b"2")  # written before the opaque marker: stays
        .opaque("var/cache")
        .file("var/cache/new", b"2")  # written after it: stays
        .whiteout("nonexistent/x")
    )
    top = Layer().file("opt/tree", b"now a file").file("etc/gone", b"back")
    apply(root, base, middle)
    assert (root / "etc/keep").exists()
    assert not (root / "etc/gone").exists()
    assert not (root / "opt/tree").exists()
    assert sorted(p.relative_to(root).as_posix() for p in (root / "var/cache").rglob("*")) == [
        "var/cache/new",
        "var/cache/sub",
        "var/cache/sub/c",
    ]
    assert not list(root.rglob(".wh.*"))
    apply(root, top)
    assert (root / "opt/tree").read_bytes() == b"now a file"
    assert (root / "etc/gone").read_bytes() == b"back"


def test_whiteout_does_not_hide_the_same_layers_file(root: Path) -> None:
    apply(root, Layer().file("a", b"lower"))
    apply(root, Layer().file("a", b"upper").whiteout("a"))
    assert (root / "a").read_bytes() == b"upper"


def test_opaque_root_directory(root: Path) -> None:
    apply(root, Layer().file("old", b"1"))
    apply(root, Layer().file("new", b"2").file(".wh..wh..opq", b""))
    assert sorted(p.name for p in root.iterdir()) == ["new"]


def test_later_entries_replace_other_kinds(root: Path, outside: Path) -> None:
    apply(
        root,
        Layer()
        .dir("d")
        .file("d/inner", b"1")
        .file("f", b"file")
        .symlink("s", str(outside / "secret")),
    )
    apply(
        root,
        Layer()
        .file("d", b"file over dir")
        .dir("f")
        .file("s", b"file over symlink")
        .symlink("link", "f"),
    )
    apply(root, Layer().dir("link").symlink("d", "/elsewhere"))
    assert stat.S_ISLNK(os.lstat(root / "d").st_mode)
    assert stat.S_ISDIR(os.lstat(root / "f").st_mode)
    assert stat.S_ISDIR(os.lstat(root / "link").st_mode)
    assert (root / "s").read_bytes() == b"file over symlink"
    assert (outside / "secret").read_text() == "precious"


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/../../evil", "./../evil"])
def test_names_escaping_the_root_are_refused(root: Path, name: str) -> None:
    with pytest.raises(Corrupt, match=rf"layer sha256:\w+: entry '{name}' escapes the root"):
        apply(root, Layer().file(name, b"evil"))
    assert not (root.parent / "evil").exists()


def test_dotdot_inside_the_root_is_fine(root: Path) -> None:
    apply(root, Layer().file("a/../b", b"fine"))
    assert (root / "b").read_bytes() == b"fine"


def test_hardlink_out_of_the_root_is_refused(root: Path) -> None:
    with pytest.raises(Corrupt, match="escapes the root"):
        apply(root, Layer().hardlink("passwd", "../../etc/passwd"))
    with pytest.raises(Corrupt, match="escapes the root"):
        apply(root, Layer().hardlink("passwd", "/etc/passwd"))
    assert not (root / "passwd").exists()


def test_symlinked_directory_is_never_followed(root: Path, outside: Path) -> None:
    with pytest.raises(Corrupt, match="'x/secret' is below 'x', which is a symbolic link"):
        apply(root, Layer().symlink("x", str(outside)).file("x/secret", b"pwned"))
    assert (outside / "secret").read_text() == "precious"
    with pytest.raises(Corrupt, match="symbolic link"):
        apply(root, Layer().symlink("etc", "/etc").file("etc/cocoon-test-pwned", b"pwned"))
    assert not Path("/etc/cocoon-test-pwned").exists()
    with pytest.raises(Corrupt, match="symbolic link"):
        apply(root, Layer().symlink("rel", "../outside").dir("rel/newdir"))
    assert not (outside / "newdir").exists()


def test_symlinked_directory_in_a_lower_layer_is_not_followed(root: Path, outside: Path) -> None:
    apply(root, Layer().symlink("x", str(outside)))
    with pytest.raises(Corrupt, match="symbolic link"):
        apply(root, Layer().file("x/secret", b"pwned"))
    apply(root, Layer().whiteout("x/secret"))  # nothing below a symlink to delete
    with pytest.raises(Corrupt, match="target does not exist"):
        apply(root, Layer().hardlink("stolen", "x/secret"))
    apply(root, Layer().opaque("y").symlink("y/z", str(outside)).whiteout("y/z/secret"))
    assert (outside / "secret").read_text() == "precious"


def test_symlink_then_file_of_the_same_name(root: Path, outside: Path) -> None:
    apply(root, Layer().symlink("target", str(outside / "secret")).file("target", b"mine"))
    assert (root / "target").read_bytes() == b"mine"
    assert not (root / "target").is_symlink()
    assert (outside / "secret").read_text() == "precious"


def test_hardlink_to_a_symlink_links_the_symlink(root: Path, outside: Path) -> None:
    apply(root, Layer().symlink("s", str(outside / "secret")).hardlink("h", "s"))
    assert os.readlink(root / "h") == str(outside / "secret")


def test_digests_are_checked(root: Path) -> None:
    raw = Layer().file("a", b"1").tar()
    blob = gzip.compress(raw)
    with pytest.raises(Corrupt, match="content does not match its digest"):
        apply_layer(io.BytesIO(blob), root, digest=sha(b"x"))
    with pytest.raises(Corrupt, match="does not match diff_id"):
        apply_layer(io.BytesIO(blob), root, digest=sha(blob), diff_id=sha(b"x"))
    apply_layer(io.BytesIO(raw), root, digest=sha(raw), diff_id=sha(raw))


def test_not_a_tar(root: Path) -> None:
    for blob in (b"\x1f\x8bnot gzip at all", b"plain garbage" * 100):
        with pytest.raises(Corrupt, match="not a valid tar archive"):
            apply_layer(io.BytesIO(blob), root, digest=sha(blob))


def test_zstd_without_the_module(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layers, "zstandard", None)
    blob = b"\x28\xb5\x2f\xfd" + b"\0" * 32
    with pytest.raises(Unsupported, match="install the Python 'zstandard' module"):
        apply_layer(io.BytesIO(blob), root, digest=sha(blob))


def test_invalid_whiteout_names(root: Path) -> None:
    with pytest.raises(Corrupt, match="not a valid whiteout"):
        apply(root, entry("a/.wh..", size=0))


@pytest.mark.parametrize(
    "stack",
    [
        [Layer().dir("a").file("a/f", b"1"), Layer().whiteout("a").file("a", b"now a file")],
        [Layer().symlink("l", "/etc"), Layer().whiteout("l").dir("l").file("l/f", b"1")],
        [Layer().dir("d").file("d/old", b"1"), Layer().file("d/new", b"2").opaque("d")],
        [Layer().file("t", b"1").hardlink("h", "t"), Layer().hardlink("h2", "h")],
        [Layer().symlink("s", "x").hardlink("h", "s").file("h/f", b"1")],
        [Layer().file("a", b"1"), Layer().file("a/b", b"2")],
        [Layer().dir("a").hardlink("h", "a")],
        [Layer().file("x", b"1"), Layer().opaque("").hardlink("h", "x")],
        [Layer().dir("p").symlink("p/s", "/"), Layer().hardlink("h", "p/s/etc")],
        [Layer().file("f", b"1").whiteout("f").hardlink("h", "f")],
    ],
)
def test_checking_agrees_with_unpacking(tmp_path: Path, stack: list[Layer]) -> None:
    """What check_layer refuses at load is exactly what apply_layer refuses at run."""

    def outcome(step) -> str:
        try:
            for layer in stack:
                raw = layer.tar()
                step(io.BytesIO(raw), digest=sha(raw), diff_id=sha(raw))
        except Corrupt as e:
            return str(e)
        return "accepted"

    tree = layers.Tree()
    checked = outcome(lambda s, **kw: layers.check_layer(s, tree, **kw))
    target = tmp_path / "root"
    target.mkdir()
    unpacked = outcome(lambda s, **kw: apply_layer(s, target, **kw))
    assert checked == unpacked


def test_unpacking_stops_at_its_room(root: Path) -> None:
    raw = Layer().file("big", bytes(8 << 20)).tar()
    with pytest.raises(InvalidState, match="not enough free space in /somewhere"):
        apply_layer(
            io.BytesIO(raw), root, digest=sha(raw), room=layers.Room(4 << 20, Path("/somewhere"))
        )
    assert not (root / "big").exists() or (root / "big").stat().st_size == 0
