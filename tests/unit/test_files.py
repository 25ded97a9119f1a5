"""Atomic writes: readers see the old file or the new, and nothing is left behind."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

import pytest

from cocoon import files


def test_a_write_replaces_the_file_with_its_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    files.write_atomic(target, b"new", 0o640)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), files.atomic_output(target) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_temporary_left_by_an_earlier_process_is_stepped_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "_unique", itertools.count())
    stale = tmp_path / f".state.json.{os.getpid()}-0.tmp"
    stale.write_text("someone else's")
    files.write_atomic(tmp_path / "state.json", b"new")
    assert (tmp_path / "state.json").read_bytes() == b"new"
    assert stale.read_text() == "someone else's"
