"""Sizes as people type them."""

import pytest

from cocoon.errors import InvalidArgument
from cocoon.units import parse_size


@pytest.mark.parametrize(
    ("text", "value"), [("512m", 512 << 20), ("1g", 1 << 30), ("1.5GiB", 3 << 29), ("4096", 4096)]
)
def test_parse_size(text, value):
    assert parse_size(text) == value


def test_parse_size_rejects_junk():
    with pytest.raises(InvalidArgument):
        parse_size("lots")
