"""Shared test set-up: every test gets its own cocoon state, never the real one."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# The fixtures of tests that boot VMs: one session of them for integration
# and security tests alike (two conftests importing them would make two).
pytest_plugins = ["vm_fixtures", "runtime_fixtures", "templated"]
