"""What a layer says of one path from its tar headers: the same answer as unpacking it."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from oci import Layer
from test_layers import apply, sha

from cocoon.errors import Corrupt
from cocoon.rootfs.layers import said_of

TARGETS = ["folder", "folder/inner", "folder/inner/deep", "file", "link", "absent", "absent/x"]


def lower() -> Layer:
    layer = Layer().dir("folder").dir("folder/inner").file("folder/inner/deep", b"d\n")
    return layer.file("file", b"f\n").symlink("link", "folder")


# Upper layers, each with the answers it gives; a path missing from them it leaves to lower.
UPPERS = {
    "writes nothing about them": (Layer().file("other", b"o\n"), {}),
    "whiteout of the path": (
        Layer().whiteout("folder/inner"),
        {"folder/inner": "gone", "folder/inner/deep": "gone"},
    ),
    "whiteout of a folder above": (
        Layer().whiteout("folder"),
        {"folder": "gone", "folder/inner": "gone", "folder/inner/deep": "gone"},
    ),
    "opaque folder above": (
        Layer().opaque("folder"),
        {"folder": "dir", "folder/inner": "gone", "folder/inner/deep": "gone"},
    ),
    "opaque folder that keeps what the layer writes": (
        Layer().dir("folder/inner").opaque("folder").dir("folder/inner/deep"),
        {"folder": "dir", "folder/inner": "dir", "folder/inner/deep": "dir"},
    ),
    "file replacing a folder above": (
        Layer().file("folder", b"now a file\n"),
        {"folder": "file", "folder/inner": "gone", "folder/inner/deep": "gone"},
    ),
    "symlink replacing a folder": (
        Layer().symlink("folder", "/tmp"),
        {"folder": "symlink", "folder/inner": "gone", "folder/inner/deep": "gone"},
    ),
    "folder replacing a file, something made below": (
        Layer().whiteout("file").dir("file").file("absent/x", b"x\n"),
        {"file": "dir", "absent": "dir", "absent/x": "file"},
    ),
    "whiteout, then the path made again": (
        Layer().whiteout("folder/inner").file("folder/inner", b"again\n"),
        {"folder": "dir", "folder/inner": "file", "folder/inner/deep": "gone"},
    ),
    "the path written before its whiteout keeps it": (
        Layer().file("file", b"new\n").whiteout("file"),
        {"file": "file"},
    ),
    "a whiteout below the path only": (
        Layer().whiteout("folder/inner/deep"),
        {"folder/inner/deep": "gone"},
    ),
}


def kind_on_disk(root: Path, target: str) -> str | None:
    try:
        mode = os.lstat(root / target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    return "dir" if stat.S_ISDIR(mode) else "symlink" if stat.S_ISLNK(mode) else "file"


@pytest.mark.parametrize("name", list(UPPERS))
def test_a_layer_s_word_matches_unpacking_it(tmp_path: Path, name: str):
    upper, says = UPPERS[name]
    apply(tmp_path, lower())
    below = {target: kind_on_disk(tmp_path, target) for target in TARGETS}
    apply(tmp_path, upper)
    blob = upper.tar()
    for target in TARGETS:
        said = said_of(io.BytesIO(blob), tuple(target.split("/")), digest=sha(blob))
        assert said == says.get(target), target
        expected = below[target] if said is None else None if said == "gone" else said
        assert kind_on_disk(tmp_path, target) == expected, target


def test_a_hostile_layer_is_refused():
    blob = Layer().file("../escape", b"x\n").tar()
    with pytest.raises(Corrupt, match="escapes the root"):
        said_of(io.BytesIO(blob), ("escape",), digest=sha(blob))
    fine = Layer().file("escape", b"x\n").tar()
    with pytest.raises(Corrupt, match="does not match its digest"):
        said_of(io.BytesIO(fine), ("escape",), digest=sha(b"other"))
