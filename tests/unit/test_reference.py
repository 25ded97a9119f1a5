"""Image reference parsing and normalising, against Docker's rules."""

from __future__ import annotations

import pytest

from cocoon.errors import InvalidArgument
from cocoon.reference import Reference, parse

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "full", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("ns/app:v1.2-rc_3", "docker.io/ns/app:v1.2-rc_3", "ns/app:v1.2-rc_3"),
        ("localhost/foo", "localhost/foo:latest", "localhost/foo:latest"),
        ("localhost:5000/foo", "localhost:5000/foo:latest", "localhost:5000/foo:latest"),
        ("quay.io/a/b/c:tag", "quay.io/a/b/c:tag", "quay.io/a/b/c:tag"),
        (f"registry:5000/ns/repo@{DIGEST}", f"registry:5000/ns/repo@{DIGEST}", None),
        (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}", None),
        ("my.registry/a__b/c--d.e", "my.registry/a__b/c--d.e:latest", None),
        ("[::1]:5000/foo", "[::1]:5000/foo:latest", None),
    ],
)
def test_normalises_like_docker(text: str, full: str, familiar: str | None) -> None:
    ref = parse(text)
    assert str(ref) == full
    assert parse(full) == ref
    if familiar is not None:
        assert ref.familiar() == familiar


def test_fields() -> None:
    ref = Reference.parse(f"registry:5000/ns/repo@{DIGEST}")
    assert ref == Reference("registry:5000", "ns/repo", None, DIGEST)
    assert ref.name == "registry:5000/ns/repo"
    assert ref.familiar_name == "registry:5000/ns/repo"
    assert parse("busybox").familiar_name == "busybox"
    assert parse("ns/app").familiar_name == "ns/app"


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        parse("busybox").tag = "x"  # type: ignore[misc]


def test_digest_only_has_no_tag() -> None:
    ref = parse(f"busybox@{DIGEST}")
    assert ref.tag is None
    assert ref.familiar() == f"busybox@{DIGEST}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Busybox", "must be lowercase"),
        ("library/BusyBox:1", "must be lowercase"),
        ("busybox@sha256:abc", "64 lowercase hex"),
        (f"busybox@sha256:{'A' * 64}", "64 lowercase hex"),
        (f"busybox@md5:{'a' * 32}", "digest must be sha256"),
        ("busybox:", "tag ''"),
        ("busybox:-bad", "tag '-bad'"),
        ("busybox:" + "a" * 129, "up to 128"),
        ("", "empty"),
        (" busybox", "spaces"),
        ("a//b", "not a valid name component"),
        ("foo_/bar", "not a valid name component"),
        ("-foo", "not a valid name component"),
        ("my_registry.io/foo", "bad registry host"),
        ("a" * 250 + "/b", "longer than 255"),
    ],
)
def test_rejects_malformed(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid image reference") as info:
        parse(text)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)
