"""Importing this module makes ``inspect`` load on first use, in cocoon's own programs.

The standard library's dataclasses imports inspect (and with it ast, dis,
tokenize) for one thing: a docstring for a class that has none. Every
dataclass on cocoon's hot paths has one (tests/unit/test_lean_imports.py),
so in the CLI, the OCI runtime and each container's monitor inspect would
cost ~5 ms of every start and ~1 MiB of every monitor's memory, unused.
Their entry modules import this one before anything imports dataclasses: it
puts a stand-in for inspect in ``sys.modules`` that imports the real module
the first time anyone asks it for a name, and holds the real module's names
from then on. Where inspect is loaded already (an application using cocoon
as a library), it changes nothing.
"""

from __future__ import annotations

import sys
import types
from _thread import RLock

_lock = RLock()  # re-entrant: nothing inspect imports asks for it, but if it did
_stand_in = types.ModuleType("inspect", "Loads the real inspect on first use (cocoon).")


def _load(name: str) -> object:
    with _lock:  # two threads asking at once import it once
        if sys.modules.get("inspect") is _stand_in:
            del sys.modules["inspect"]
            _stand_in.__dict__.update(vars(__import__("inspect")))
    return getattr(sys.modules["inspect"], name)


if "inspect" not in sys.modules:
    vars(_stand_in)["__getattr__"] = _load  # what a module asks for a missing name (PEP 562)
    sys.modules["inspect"] = _stand_in
