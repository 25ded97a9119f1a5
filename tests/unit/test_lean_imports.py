"""What cocoon's hot entry points import: each module here is time on every
container start (the CLI, every call of the OCI runtime) or memory in every
running container's monitor. Each test runs a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _loaded(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints a JSON value last."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


# The OCI runtime's calls between create and the container's end: start,
# and kill, delete and state once it has stopped (no connection to make).
LIGHT_VERBS = "import cocoon.runtime.main, cocoon.runtime.start, cocoon.runtime.signals"
# "ast" for inspect: sys.modules holds cocoon.lazy_inspect's stand-in by that name.
HEAVY = ["typing", "dataclasses", "ast", "logging", "shutil", "socket", "datetime", "tempfile"]


def test_the_runtime_s_light_verbs_load_nothing_heavy():
    found = _loaded(f"import sys, json\n{LIGHT_VERBS}\nprint(json.dumps(sorted(sys.modules)))")
    assert sorted(set(HEAVY) & set(found)) == []


def test_deleting_a_stopped_container_loads_nothing_heavy(tmp_path):
    code = f"""
import json, sys
from pathlib import Path
from cocoon.runtime import main, signals, store
root = store.use_root(Path({str(tmp_path)!r}))
folder = store.claim(root, "c1")
store.save(root, store.Entry("c1", "/bundle", "", "", {{}}, sandbox=True))  # pid 0: stopped
(folder / store.SHIM_LOG).write_text("its last words")
signals.delete(root, "c1")
print(json.dumps([folder.exists(), sorted(set({HEAVY!r}) & set(sys.modules))]))
"""
    assert _loaded(code) == [False, []]


# The monitor (every running container), the runtime's create and the CLI's run.
ENTRIES = [
    "cocoon.container.monitor",
    "cocoon.runtime.main, cocoon.runtime.create",
    "cocoon.cli.main, cocoon.cli.run, cocoon.container.run",
]
_UNDOCUMENTED = """
import dataclasses, json, sys
out = []
for name, module in list(sys.modules.items()):
    for cls in vars(module).values():
        if isinstance(cls, type) and cls.__module__ == name and dataclasses.is_dataclass(cls):
            # dataclasses writes "Name(field: type, ...)" for a class without one
            if str(cls.__doc__).startswith(cls.__name__ + "("):
                out.append(f"{name}.{cls.__qualname__}")
print(json.dumps(out))
"""


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_dataclass_on_a_hot_path_has_a_docstring(entry):
    # Without one, dataclasses builds it from inspect.signature: time at
    # import, and the real inspect (cocoon.lazy_inspect) in memory.
    assert _loaded(f"import {entry}\n{_UNDOCUMENTED}") == []


def test_inspect_loads_only_when_a_dataclass_needs_it():
    code = """
import json, sys
import cocoon.lazy_inspect
from dataclasses import dataclass

@dataclass
class Documented:
    '''Has its own docstring.'''
    a: int

before = "ast" in sys.modules

@dataclass
class Bare:
    a: int

import inspect
print(json.dumps([before, "ast" in sys.modules, Bare.__doc__, inspect.isclass(Bare)]))
"""
    assert _loaded(code) == [False, True, "Bare(a: int)", True]
