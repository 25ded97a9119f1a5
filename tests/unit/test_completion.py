"""Shell completion: the generated script is valid bash and completes verbs and flags."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def _complete(script: str, *words: str) -> list[str]:
    probe = (f"{script}\nCOMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}; "
             '_cocoon; printf "%s\\n" "${COMPREPLY[@]}"')  # fmt: skip
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    return result.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_script_completes_verbs_and_flags():
    made = subprocess.run([sys.executable, "-m", "cocoon.cli.main", "completion", "bash"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    subprocess.run(["bash", "-n"], input=made.stdout, text=True, check=True)
    assert _complete(made.stdout, "cocoon", "unp") == ["unpause"]
    assert "--restart" in _complete(made.stdout, "cocoon", "run", "--re")
    assert _complete(made.stdout, "cocoon", "image", "pu") == ["pull", "push"]


def test_unknown_shell_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "cocoon.cli.main", "completion", "fish"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 125 and result.stderr.count("\n") == 1
