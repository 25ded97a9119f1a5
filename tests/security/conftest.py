"""Security tests boot real VMs with the same fixtures as tests/integration."""

from integration.conftest import *  # noqa: F403
