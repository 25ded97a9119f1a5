"""A container's mounts from create to rm: host folders, volumes, and what the VM gets."""

import os

import pytest

from cocoon.errors import InvalidArgument, InvalidState
from cocoon.volume import plan
from cocoon.volume.mounts import BindMount, TmpfsMount, VolumeMount, from_flags
from cocoon.volume.store import VolumeStore

CID, OTHER = "a" * 64, "b" * 64


@pytest.fixture
def store(tmp_path):
    return VolumeStore(tmp_path / "volumes")


def test_prepare_makes_v_folders_and_volumes(tmp_path, store):
    store.create("shared", options={"type": "dir"})
    mounts = from_flags(
        [f"{tmp_path}/new/deep:/src", "shared:/shared", "/anon"],
        ["type=volume,src=fresh,dst=/fresh"],
        ["/tmp"],
    )
    resolved = plan.prepare(mounts, CID, "web", store=store)
    assert (tmp_path / "new" / "deep").is_dir()
    anon = resolved[2]
    assert isinstance(anon, VolumeMount) and anon.anonymous and len(anon.name) == 64
    assert resolved[:2] == mounts[:2] and resolved[3:] == mounts[3:]
    for name in ("shared", anon.name, "fresh"):
        assert store.get(name).users == {CID: "web"}
    assert store.get(anon.name).anonymous and store.get("fresh").driver == "disk"


@pytest.mark.parametrize(
    ("flag", "error"),
    [
        ("type=bind,src={tmp}/missing,dst=/x", "bind source .*/missing does not exist"),
        ("type=bind,src=/dev/null,dst=/x", "neither a folder nor a file"),
    ],
)
def test_prepare_refuses_bad_sources_before_changing_anything(tmp_path, store, flag, error):
    mounts = from_flags([f"{tmp_path}/made:/a", "/anon"], [flag.format(tmp=tmp_path)])
    with pytest.raises(InvalidArgument, match=error):
        plan.prepare(mounts, CID, "web", store=store)
    assert not (tmp_path / "made").exists()
    assert store.volumes() == []


def test_prepare_undoes_its_work_when_a_later_step_fails(tmp_path, store):
    (tmp_path / "file").write_text("")
    mounts = from_flags([f"{tmp_path}/made/x:/a", "/anon", f"{tmp_path}/file/sub:/b"])
    with pytest.raises(InvalidArgument, match=r"cannot make bind source .*/file/sub"):
        plan.prepare(mounts, CID, "web", store=store)
    assert not (tmp_path / "made").exists()
    assert store.volumes() == []


def test_machine_mounts(tmp_path, store):
    (tmp_path / "src").mkdir()
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.ini").write_text("x=1\n")
    store.create("web", options={"type": "dir"})
    flags = from_flags(
        ["db:/var/lib/db-again:ro", f"{tmp_path}/src:/src:ro", "db:/var/lib/db/in", "web:/www"],
        [f"type=bind,src={tmp_path}/conf/app.ini,dst=/etc/app.ini,ro"],
        ["/run:size=1m,noexec"],
    )
    slots = plan.devices(flags, store=store)  # known at create, before db exists
    mounts = plan.prepare(flags, CID, "one", store=store)
    got = plan.machine_mounts(mounts, CID, lambda cid: False, store=store)
    assert slots == plan.devices(mounts, store=store) == len(got.disks) + len(got.shares) == 4
    # Each anonymous volume is a disk of its own; a dir volume is a share per mount.
    twice = from_flags(["/a", "/b", "web:/w1", "web:/w2", "db:/d1", "db:/d2"], [], [])
    assert plan.devices(twice, store=store) == 5
    root = os.geteuid() == 0
    bind, vol = ("passthrough", "passthrough") if root else ("none", "mapped-xattr")
    # One disk for two mounts of db, read-write as one of them is.
    assert got.disks == [plan.DiskAttachment(store.get("db").path, False, "cocoon-vol0")]
    assert got.shares == [
        plan.Share(tmp_path / "src", "cocoon.m0", True, bind),
        plan.Share(store.get("web").path, "cocoon.m1", False, vol),
        plan.Share(tmp_path / "conf", "cocoon.m2", True, bind),
    ]
    # Parents before what is inside them; otherwise in the order given.
    assert got.guest == [
        {"type": "9p", "tag": "cocoon.m0", "target": "/src", "readonly": True},
        {"type": "9p", "tag": "cocoon.m1", "target": "/www", "readonly": False, "copy_up": True},
        {"type": "tmpfs", "target": "/run", "size": 1 << 20, "mode": 0o1777, "flags": ["noexec"]},
        {"type": "9p", "tag": "cocoon.m2", "target": "/etc/app.ini", "readonly": True,
         "file": "app.ini"},
        {"type": "ext4", "serial": "cocoon-vol0", "target": "/var/lib/db-again",
         "readonly": True, "copy_up": True},
        {"type": "ext4", "serial": "cocoon-vol0", "target": "/var/lib/db/in",
         "readonly": False, "copy_up": True},
    ]  # fmt: skip
    assert store.get("db").holder == CID
    plan.release(mounts, CID, store=store)
    assert store.get("db").holder is None


def test_a_read_only_disk_stays_read_only(store):
    mounts = plan.prepare(
        [VolumeMount("ro", "/x", readonly=True, nocopy=True)], CID, "a", store=store
    )
    got = plan.machine_mounts(mounts, CID, lambda cid: False, store=store)
    assert got.disks[0].readonly and got.guest[0]["copy_up"] is False


def test_machine_mounts_refuses_a_disk_another_vm_has(store):
    first = plan.prepare(
        [VolumeMount("a1", "/a"), VolumeMount("db", "/db")], CID, "one", store=store
    )
    plan.prepare([VolumeMount("db", "/db")], OTHER, "two", store=store)
    plan.machine_mounts([VolumeMount("db", "/db")], OTHER, lambda cid: False, store=store)
    with pytest.raises(InvalidState, match="volume db is in use by running container two"):
        plan.machine_mounts(first, CID, lambda cid: cid == OTHER, store=store)
    assert store.get("a1").holder is None  # the claim made before the refusal is undone


def test_a_v_folder_removed_after_create_is_made_again(tmp_path, store):
    mounts = plan.prepare(
        [BindMount(f"{tmp_path}/d", "/d", create_source=True)], CID, "a", store=store
    )
    (tmp_path / "d").rmdir()
    got = plan.machine_mounts(mounts, CID, lambda cid: False, store=store)
    assert got.shares[0].path == tmp_path / "d" and (tmp_path / "d").is_dir()
    (tmp_path / "d").rmdir()
    with pytest.raises(InvalidArgument, match="does not exist"):
        plan.machine_mounts([BindMount(f"{tmp_path}/d", "/d")], CID, lambda c: False, store=store)


def test_forget(store):
    mounts = plan.prepare(
        [VolumeMount(None, "/anon", anonymous=True), VolumeMount("named", "/n"), TmpfsMount("/t")],
        CID,
        "one",
        store=store,
    )
    kept = plan.prepare([VolumeMount(None, "/a2", anonymous=True)], OTHER, "two", store=store)
    assert plan.forget(kept, OTHER, remove_anonymous=False, store=store) == []
    assert plan.forget(mounts, CID, remove_anonymous=True, store=store) == [mounts[0].name]
    assert {v.name for v in store.volumes()} == {"named", kept[0].name}
    assert all(v.users == {} for v in store.volumes())


def test_security_models(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert plan.security_model(volume=False) == plan.security_model(volume=True) == "passthrough"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert plan.security_model(volume=False) == "none"
    assert plan.security_model(volume=True) == "mapped-xattr"
