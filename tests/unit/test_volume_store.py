"""Volumes on the host: real ext4 images, folders, and who uses them."""

import fcntl
import multiprocessing
import re
import subprocess

import pytest

from cocoon import tools
from cocoon.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from cocoon.locks import flock
from cocoon.volume.store import DEFAULT_SIZE, VolumeStore, parse_options


@pytest.fixture
def store(tmp_path):
    return VolumeStore(tmp_path / "volumes")


def _superblock(image) -> str:
    dumpe2fs = tools.find("mkfs.ext4").replace("mkfs.ext4", "dumpe2fs")
    return subprocess.run([dumpe2fs, "-h", str(image)], capture_output=True, text=True).stdout


def test_a_disk_volume_is_a_sparse_ext4_of_8_gib(store):
    volume = store.create("data")
    assert (volume.driver, volume.size, volume.anonymous) == ("disk", DEFAULT_SIZE, False)
    assert volume.path == store.root / "data" / "disk.ext4"
    st = volume.path.stat()
    assert st.st_size == 8 << 30
    assert st.st_blocks * 512 < 64 << 20  # sparse: mkfs wrote only metadata
    sb = _superblock(volume.path)
    assert "Filesystem magic number:  0xEF53" in sb
    assert "has_journal" in sb
    blocks = int(re.search(r"Block count:\s+(\d+)", sb).group(1))
    assert blocks * 4096 == 8 << 30


def test_size_option(store):
    volume = store.create("small", options={"size": "100m"})
    assert volume.size == volume.path.stat().st_size == 100 << 20
    assert store.create("odd", options={"size": "20000001"}).size == 20 << 20  # whole MiB


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"size": "lots"}, "invalid size 'lots'"),
        ({"size": "1m"}, "too small"),
        ({"type": "nfs"}, "unknown volume type 'nfs'"),
        ({"type": "dir", "size": "1g"}, "size applies to disk volumes only"),
        ({"device": "/dev/sda"}, "unknown volume option 'device'"),
    ],
)
def test_bad_options_leave_nothing(store, options, error):
    with pytest.raises(InvalidArgument, match=error):
        store.create("data", options=options)
    assert store.volumes() == []
    assert not store.root.exists() or [p.name for p in store.root.iterdir()] == []


def test_parse_options_defaults():
    assert parse_options({}) == ("disk", DEFAULT_SIZE)
    assert parse_options({"type": "dir"}) == ("dir", None)


def test_a_dir_volume_is_a_folder(store):
    volume = store.create("shared", options={"type": "dir"})
    assert volume.path == store.root / "shared" / "data"
    assert volume.path.is_dir() and list(volume.path.iterdir()) == []
    assert volume.size is None


def test_labels_created_and_listing(store):
    a = store.create("bb", labels={"team": "web", "empty": ""})
    store.create("aa", options={"type": "dir"})
    got = store.get("bb")
    assert got.labels == {"team": "web", "empty": ""}
    assert got.created == a.created > 0
    assert [v.name for v in store.volumes()] == ["aa", "bb"]


def test_names_are_checked_everywhere(store):
    for bad in ("a/b", "..", "../etc", ".lock", "x"):
        with pytest.raises(InvalidArgument, match="invalid volume name"):
            store.create(bad)
        with pytest.raises(InvalidArgument, match="invalid volume name"):
            store.get(bad)
    with pytest.raises(NotFound, match="no such volume: nope"):
        store.get("nope")


def test_create_again_returns_the_volume_unless_options_differ(store):
    first = store.create("data", options={"size": "32m"}, labels={"a": "1"})
    assert store.create("data").created == first.created
    assert store.create("data", options={"size": "32m"}).created == first.created
    with pytest.raises(AlreadyExists, match="volume data already exists with other options"):
        store.create("data", options={"type": "dir"})


def test_anonymous_volumes_get_random_names(store):
    a = store.create(anonymous=True)
    b = store.create(anonymous=True)
    assert re.fullmatch("[0-9a-f]{64}", a.name) and a.name != b.name
    assert store.get(a.name).anonymous


def test_in_use_volumes_are_not_removed(store):
    store.create("data", options={"size": "16m"}, user=("c1" * 32, "web"))
    store.attach("data", "c2" * 32, "db")
    assert store.get("data").users == {"c1" * 32: "web", "c2" * 32: "db"}
    with pytest.raises(InvalidState, match="volume data is in use by container db, web"):
        store.remove("data")
    with pytest.raises(InvalidState, match="in use"):
        store.remove("data", force=True)
    store.detach("data", "c1" * 32)
    with pytest.raises(InvalidState, match="in use by container db "):
        store.remove("data")
    assert store.remove("data", exists=lambda cid: False)  # db's record is gone
    assert not (store.root / "data").exists()
    with pytest.raises(NotFound):
        store.remove("data")
    assert store.remove("data", force=True) is False


def test_prune_takes_unused_anonymous_volumes(store):
    unused = store.create(anonymous=True, options={"size": "16m"})
    used = store.create(anonymous=True, options={"type": "dir"}, user=("c" * 64, "web"))
    store.create("named", options={"type": "dir"})
    assert store.prune() == [unused.name]
    assert {v.name for v in store.volumes()} == {used.name, "named"}
    assert store.prune(all=True) == ["named"]
    assert store.prune(all=True, exists=lambda cid: False) == [used.name]
    assert store.volumes() == []


def test_detach_removes_anonymous_volumes_only_when_asked_and_unused(store):
    anon = store.create(anonymous=True, options={"type": "dir"}, user=("a" * 64, "one"))
    store.attach(anon.name, "b" * 64, "two")
    assert not store.detach(anon.name, "a" * 64, remove_anonymous=True)  # two still uses it
    assert not store.detach(anon.name, "b" * 64)
    store.attach(anon.name, "b" * 64, "two")
    assert store.detach(anon.name, "b" * 64, remove_anonymous=True)
    assert store.volumes() == []
    named = store.create("kept", options={"type": "dir"}, user=("a" * 64, "one"))
    assert not store.detach(named.name, "a" * 64, remove_anonymous=True)
    assert store.get("kept").users == {}
    assert not store.detach("missing", "a" * 64)


def test_a_disk_volume_goes_to_one_running_vm(store):
    store.create("db", options={"size": "16m"}, user=("a" * 64, "one"))
    store.attach("db", "b" * 64, "two")
    running = {"a" * 64}
    store.claim("db", "a" * 64, running.__contains__)
    store.claim("db", "a" * 64, running.__contains__)  # a restart of the same VM
    with pytest.raises(InvalidState, match="volume db is in use by running container one"):
        store.claim("db", "b" * 64, running.__contains__)
    running.clear()  # one's VM died without releasing: its claim lapses
    assert store.claim("db", "b" * 64, running.__contains__).holder == "b" * 64
    store.release("db", "a" * 64)  # not the holder: no change
    assert store.get("db").holder == "b" * 64
    store.release("db", "b" * 64)
    assert store.get("db").holder is None


def test_a_dir_volume_is_shared(store):
    store.create("web", options={"type": "dir"})
    everyone = lambda cid: True  # noqa: E731
    store.claim("web", "a" * 64, everyone)
    store.claim("web", "b" * 64, everyone)
    assert store.get("web").holder is None


def _attach_many(root, worker):
    store = VolumeStore(root)
    for i in range(15):
        store.attach("data", f"{worker:02d}{i:02d}" + "0" * 60, f"c{worker}-{i}")


def test_concurrent_attaches_lose_nothing(store):
    store.create("data", options={"type": "dir"})
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_attach_many, args=(store.root, w)) for w in range(6)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    assert [p.exitcode for p in workers] == [0] * 6
    assert len(store.get("data").users) == 6 * 15


def _create_same(root, queue):
    queue.put(VolumeStore(root).create("race", options={"size": "16m"}).created)


def test_concurrent_creates_of_one_name_make_one_volume(store):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_create_same, args=(store.root, queue)) for _ in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    assert [p.exitcode for p in workers] == [0] * 4
    assert len({queue.get() for _ in workers}) == 1
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == [".lock"]


def test_leftovers_of_killed_processes_are_swept(store):
    store.root.mkdir(parents=True)
    (store.root / ".gone-x" / "data").mkdir(parents=True)
    (store.root / ".new-dead").mkdir()
    (store.root / ".new-dead" / ".building").touch()
    (store.root / ".new-unlocked").mkdir()
    (store.root / ".new-busy").mkdir()
    with flock(store.root / ".new-busy" / ".building", fcntl.LOCK_EX):
        store.prune()
        assert sorted(p.name for p in store.root.iterdir()) == [".lock", ".new-busy"]
