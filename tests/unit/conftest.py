"""Unit tests never touch the real state or cache dir."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCOON_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COCOON_CACHE_DIR", str(tmp_path / "cache"))
