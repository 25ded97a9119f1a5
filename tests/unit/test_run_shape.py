"""--cpus, --platform, --dns-search and --dns-option as create checks them; no VMs."""

from __future__ import annotations

import os

import pytest

from cocoon.container import network
from cocoon.container.boot import cpu_shape
from cocoon.errors import InvalidArgument


@pytest.mark.parametrize(("cpus", "shape"), [(1, (1, None)), (0.5, (1, 0.5)), (0.01, (1, 0.01))])
def test_fractions_round_up_to_vcpus_and_keep_the_quota(cpus, shape):
    assert cpu_shape(cpus) == shape


def test_whole_and_fractional_above_one():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 host CPUs")
    assert cpu_shape(2) == (2, None) and cpu_shape(1.5) == (2, 1.5)


@pytest.mark.parametrize("cpus", [0, -1, 0.001, float("nan"), float("inf"), True, "1", 4096])
def test_impossible_cpus_are_refused(cpus):
    with pytest.raises(InvalidArgument, match="--cpus"):
        cpu_shape(cpus)


def test_resolver_flags_checked_before_anything_is_made():
    network.configure("id", "n", network="none", dns_search=["corp.example"],
                      dns_options=["ndots:2", "timeout:1.5", "edns0"])  # fmt: skip
    for search, options, needle in (
        (["a_b"], [], "--dns-search"),
        ([f"d{i}" for i in range(7)], [], "at most 6"),
        ([], ["ndots 2"], "--dns-option"),
        ([], ["x:"], "--dns-option"),
        ([], ["a" * 64], "--dns-option"),
    ):
        with pytest.raises(InvalidArgument, match=needle):
            network.configure("id", "n", network="none", dns_search=search, dns_options=options)
