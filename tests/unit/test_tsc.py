"""The host's TSC rate, measured for the guest kernel (vm/tsc.py)."""

from __future__ import annotations

import platform

import pytest

from cocoon.vm import tsc

x86 = pytest.mark.skipif(platform.machine() != "x86_64", reason="an x86 TSC")


@x86
def test_two_measurements_agree_on_a_plausible_rate():
    first, second = tsc._measure(), tsc._measure()
    assert 100_000 < first < 10_000_000  # 100 MHz .. 10 GHz
    assert abs(first - second) / first < 0.001


@x86
def test_measured_once_per_host_boot(tmp_path, monkeypatch):
    monkeypatch.setenv("COCOON_RUN_DIR", str(tmp_path))
    khz = tsc.host_khz()
    assert (tmp_path / "tsc-khz").read_text() == str(khz or 0)
    (tmp_path / "tsc-khz").write_text("1234567")
    assert tsc.host_khz() == 1234567
    (tmp_path / "tsc-khz").write_text("0")  # a host without an invariant TSC
    assert tsc.host_khz() is None
