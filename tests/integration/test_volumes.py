"""cocoon volume: the real command against a real state dir (no VM needed)."""

import json
import os

import pytest

from cocoon.volume.store import VolumeStore


def _json(result):
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def _names(cocoon) -> set[str]:
    return {v["name"] for v in _json(cocoon("volume", "ls", "--format", "json"))}


@pytest.fixture
def clean(cocoon):
    """The session's state is shared: leave no volume behind for the next test."""
    before = _names(cocoon)
    yield
    for name in _names(cocoon) - before:
        cocoon("volume", "rm", "-f", name)


def test_create_ls_inspect_rm(cocoon, clean):
    made = cocoon("volume", "create", "--opt", "size=64m", "--label", "app=web", "vt-disk")
    assert made.returncode == 0 and made.stdout == b"vt-disk\n"
    assert cocoon("volume", "create", "-o", "type=dir", "vt-dir").returncode == 0
    again = cocoon("volume", "create", "vt-disk")  # as Docker: the existing volume
    assert again.returncode == 0 and again.stdout == b"vt-disk\n"

    listed = {v["name"]: v for v in _json(cocoon("volume", "ls", "--format", "json"))}
    disk, folder = listed["vt-disk"], listed["vt-dir"]
    assert (disk["driver"], disk["size"], disk["labels"]) == ("disk", 64 << 20, {"app": "web"})
    assert os.stat(disk["mountpoint"]).st_size == 64 << 20
    assert (folder["driver"], folder["size"]) == ("dir", None)
    assert os.path.isdir(folder["mountpoint"])
    table = cocoon("volume", "ls").stdout.decode().splitlines()
    assert table[0].split() == ["NAME", "DRIVER", "SIZE", "CONTAINERS"]
    assert "vt-dir" in cocoon("volume", "ls", "-q").stdout.decode().split()

    [shown] = _json(cocoon("volume", "inspect", "vt-disk"))
    assert shown == disk

    gone = cocoon("volume", "rm", "vt-disk", "vt-dir")
    assert gone.returncode == 0 and gone.stdout == b"vt-disk\nvt-dir\n"
    assert not os.path.exists(disk["mountpoint"])
    assert {"vt-disk", "vt-dir"}.isdisjoint(_names(cocoon))


def test_prune(cocoon, clean):
    store = VolumeStore(cocoon.state / "volumes")
    anonymous = store.create(anonymous=True, options={"size": "16m"}).name
    assert cocoon("volume", "create", "-o", "size=16m", "vt-named").returncode == 0
    pruned = cocoon("volume", "prune")
    assert pruned.returncode == 0
    assert anonymous in pruned.stdout.decode().split()
    assert "vt-named" in _names(cocoon)
    assert "vt-named" in cocoon("volume", "prune", "--all").stdout.decode().split()
    assert "vt-named" not in _names(cocoon)


def test_a_volume_in_use_is_not_removed(cocoon, busybox, clean):
    assert cocoon("volume", "create", "-o", "size=16m", "vt-used").returncode == 0
    made = cocoon("create", "--name", "vt-user", busybox, "true")
    assert made.returncode == 0, made.stderr.decode()
    container_id = made.stdout.decode().strip()
    # What container create will do once volumes are wired into it.
    VolumeStore(cocoon.state / "volumes").attach("vt-used", container_id, "vt-user")
    try:
        refused = cocoon("volume", "rm", "vt-used")
        assert refused.returncode == 125
        assert refused.stderr == (
            b"cocoon: volume vt-used is in use by container vt-user (remove the container first)\n"
        )
        assert "vt-used" not in cocoon("volume", "prune", "-a").stdout.decode().split()
        [shown] = _json(cocoon("volume", "inspect", "vt-used"))
        assert shown["containers"] == ["vt-user"]
    finally:
        assert cocoon("rm", "vt-user").returncode == 0
    # The container is gone (its rm did not detach it yet): the volume is free.
    assert cocoon("volume", "rm", "vt-used").returncode == 0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["create", "a/b"], "invalid volume name 'a/b'"),
        (["create", ".."], "invalid volume name '..'"),
        (["create", "--opt", "size=lots", "vt-bad"], "invalid size 'lots'"),
        (["create", "--opt", "size=1k", "vt-bad"], "too small"),
        (["create", "--opt", "type=nfs", "vt-bad"], "unknown volume type 'nfs'"),
        (["create", "--opt", "colour=red", "vt-bad"], "unknown volume option 'colour'"),
        (["create", "--opt", "size", "vt-bad"], "use KEY=VALUE"),
        (["inspect", "vt-missing"], "no such volume: vt-missing"),
        (["rm", "vt-missing"], "no such volume: vt-missing"),
        (["inspect", "../containers"], "invalid volume name"),
    ],
)
def test_bad_input_is_one_line_exit_125_and_leaves_nothing(cocoon, clean, args, error):
    before = _entries(cocoon)
    result = cocoon("volume", *args)
    assert result.returncode == 125
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cocoon: ") and error in lines[0]
    assert result.stdout == b""
    assert _entries(cocoon) == before


def _entries(cocoon) -> list[str]:
    folder = cocoon.state / "volumes"
    return sorted(n for n in os.listdir(folder) if n != ".lock") if folder.exists() else []


def test_rm_force_ignores_missing_volumes(cocoon):
    result = cocoon("volume", "rm", "-f", "vt-never")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
