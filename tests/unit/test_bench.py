"""The benchmark's honesty: baseline boots must reach their init, ratios come from
alternating pairs, and README's table is the benchmark's output, not a copy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import readme  # noqa: E402
import start  # noqa: E402


def test_a_baseline_boot_counts_only_if_its_init_ran():
    assert start.timed_boot(["echo", "booting", start.INIT_MARKER.decode()]) > 0
    # What QEMU does after a kernel panic with panic=-1 -no-reboot: exit 0.
    with pytest.raises(SystemExit, match="never reached its init: Kernel panic"):
        start.timed_boot(["echo", "Kernel panic - not syncing: No working init found."])


def test_pairs_alternate_which_goes_first_and_ratios_are_per_pair():
    order: list[str] = []
    times = iter([1.0, 2.0, 6.0, 3.0, 1.0, 4.0])

    def run(name: str):
        def go() -> float:
            order.append(name)
            return next(times)

        return go

    a, b = start.paired(run("a"), run("b"), 3)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert (a, b) == ([1.0, 3.0, 1.0], [2.0, 6.0, 4.0])
    assert start.ratio(a, b) == 0.5  # median of 0.5, 0.5, 0.25; not 1.0 / 4.0


def test_readme_table_is_the_one_generated_from_the_saved_results():
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    text = (ROOT / "README.md").read_text()
    assert readme.rewrite(text, results) == text, "run `make bench` to regenerate the table"
    assert f"| warm run / `baseline_vmm` (median of {results['runs']} paired ratios) |" in text


def test_rewrite_replaces_only_the_table():
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    before = f"intro\n{readme.BEGIN}\n| stale | 1 s |\n{readme.END}\nafter\n"
    after = readme.rewrite(before, results)
    assert after.startswith(f"intro\n{readme.BEGIN}\n| figure | value |\n")
    assert after.endswith(f"{readme.END}\nafter\n")
    assert "stale" not in after


def test_missing_markers_are_refused():
    with pytest.raises(SystemExit, match="markers"):
        readme.rewrite("no table here\n", {})
