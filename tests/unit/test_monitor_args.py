"""The monitor reads its few arguments without argparse, and logs without logging."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cocoon.container import monitor


def test_arguments_as_the_manager_passes_them():
    assert monitor._arguments(["abc", "--ready-fd", "7"]) == ("abc", 7, False)
    assert monitor._arguments(["abc", "--ready-fd", "7", "--wait-attach"]) == ("abc", 7, True)
    assert monitor._arguments(["abc"]) == ("abc", None, False)


@pytest.mark.parametrize(
    "argv", [[], ["a", "b"], ["a", "--ready-fd"], ["a", "--ready-fd", "x"], ["a", "--bogus"]]
)
def test_bad_arguments_stop_with_the_usage(argv):
    with pytest.raises(SystemExit, match=r"^usage: python -m cocoon"):
        monitor._arguments(argv)


def test_a_monitor_loads_neither_argparse_nor_logging_and_still_logs():
    code = (
        "import sys\n"
        "from cocoon.container import monitor\n"
        "from cocoon.log import to_stderr\n"
        "to_stderr('monitor')\n"
        "monitor.log.info('restarting in %.1fs', 2)\n"
        "monitor.log.debug('not shown')\n"
        "print(sorted({'argparse', 'logging'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].endswith(" monitor: restarting in 2.0s")
