"""Mounts end to end: bind mounts over 9p, volumes, tmpfs and a read-only root, in real VMs.

Checks are grouped so that few VMs boot: each test starts one or two
containers and asks them many questions with exec.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from oci import busybox_layer, write_layout
from procs import monitors_of, vms_of
from vm_fixtures import BUSYBOX, Cocoon, ok, remove_containers

import cocoon as cocoon_pkg

pytestmark = pytest.mark.vm

IMAGE = "localhost/mounts:latest"
LONG = 600  # several VMs under software emulation on a loaded host
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="9p passthrough needs root")


@pytest.fixture(scope="module")
def image(cocoon, tmp_path_factory) -> str:
    """busybox, with files under /tmp (no tmpfs hides them) and /data (copied up)."""
    layer = busybox_layer()
    layer.file("tmp/from-image", b"image tmp\n")
    layer.dir("data", 0o750, uid=1000, gid=1000)
    layer.file("data/seed", b"seeded\n", 0o640, uid=1000, gid=1000)
    layer.dir("folder")
    cocoon.load_layout(tmp_path_factory.mktemp("img"), [layer], IMAGE)
    return IMAGE


@pytest.fixture
def cc(cocoon):
    """The cocoon command; every container and volume the test made is removed after."""
    before = set(_volumes(cocoon))
    yield cocoon
    remove_containers(cocoon, "-v")
    for name in set(_volumes(cocoon)) - before:
        cocoon("volume", "rm", "-f", name)


def _volumes(cocoon) -> list[str]:
    listed = cocoon("volume", "ls", "--format", "json")
    return [v["name"] for v in json.loads(listed.stdout or b"[]")]


def sh(cc, container: str, script: str, *flags: str):
    return cc("exec", *flags, container, "sh", "-c", script)


@as_root
def test_bind_mounts_read_only_root_and_tmpfs(cc, image, tmp_path):
    shared, secret = tmp_path / "shared", tmp_path / "secret"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "hello").write_text("v1\n")
    secret.write_text("host only\n")
    conf = tmp_path / "app.conf"
    conf.write_text("key=1\n")
    made = tmp_path / "made" / "by" / "v"  # -v makes a missing source folder
    args = [
        "--read-only", "--tmpfs", "/scratch:size=8m,mode=700",
        "-v", f"{shared}:/data", "-v", f"{shared}:/ro:ro", "-v", f"{conf}:/etc/app.conf:ro",
        "-v", f"{made}:/made", "--mount", "type=tmpfs,target=/long,tmpfs-size=1m",
    ]  # fmt: skip
    cid = ok(cc("run", "-d", *args, image, "sleep", "600")).strip()

    # A host file edited while the container runs is seen inside.
    assert ok(sh(cc, cid, "cat /data/hello")) == "v1\n"
    (shared / "hello").write_text("v2\n")
    assert ok(sh(cc, cid, "cat /data/hello")) == "v2\n"
    assert ok(sh(cc, cid, "cat /etc/app.conf")) == "key=1\n"
    assert made.is_dir()

    # Files made by uid 1000 in the container are uid 1000's on the host.
    ok(sh(cc, cid, "echo x > /data/by-app && mkdir /data/dir", "-u", "1000:1000"))
    st = os.stat(shared / "by-app")
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert os.stat(shared / "dir").st_uid == 1000

    # :ro is enforced, and so are the read-only root and the file bind.
    for path in ("/ro/new", "/etc/app.conf", "/newfile", "/tmp/x"):
        denied = sh(cc, cid, f"echo x > {path}")
        assert denied.returncode != 0 and b"Read-only file system" in denied.stderr, path
    assert not (shared / "new").exists()

    # The tmpfs is writable, with its size and mode; /tmp is the image's folder.
    ok(sh(cc, cid, "echo x > /scratch/f"))
    mounts = ok(sh(cc, cid, "cat /proc/mounts"))
    scratch = next(line for line in mounts.splitlines() if " /scratch " in line)
    assert "tmpfs" in scratch and "size=8192k" in scratch and "mode=700" in scratch
    assert any(" /long tmpfs " in line and "size=1024k" in line for line in mounts.splitlines())
    assert " /tmp " not in mounts
    assert ok(sh(cc, cid, "cat /tmp/from-image")) == "image tmp\n"

    # A symlink made inside points into the guest, never out of the share.
    ok(sh(cc, cid, "ln -s / /data/root-link && ln -s ../.. /data/up-link"))
    assert os.readlink(shared / "root-link") == "/"
    assert ok(sh(cc, cid, "ls /data/root-link/ /data/up-link/")).count("secret") == 0
    assert sh(cc, cid, "cat /data/up-link/secret /data/root-link/secret").returncode != 0
    # Nothing of the folder beside a bound file is reachable.
    seen = ok(sh(cc, cid, "ls -a /etc /dev"))
    assert "secret" not in seen and "cocoon" not in seen

    shown = json.loads(ok(cc("inspect", cid)))[0]
    at = {m["Destination"]: m for m in shown["Mounts"]}
    assert at["/ro"] == {"Type": "bind", "Source": str(shared), "Destination": "/ro",
                         "Mode": "ro", "RW": False, "Propagation": "rprivate"}  # fmt: skip
    assert at["/long"] == {"Type": "tmpfs", "Source": "", "Destination": "/long",
                           "Mode": "", "RW": True, "Propagation": ""}  # fmt: skip
    assert shown["HostConfig"]["ReadonlyRootfs"] is True
    ok(cc("rm", "-f", cid, timeout=LONG))
    assert (shared / "hello").read_text() == "v2\n"  # rm never touches a bind source


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-v", "/tmp:data"], "not an absolute path"),
        (["-v", "/tmp:/"], "cannot mount over the container's root"),
        (["-v", "/tmp:/a", "--tmpfs", "/a"], "two mounts on /a"),
        (["-v", "/tmp:/a:rw,ro"], "ro and rw conflict"),
        (["--mount", "type=bind,source=/tmp,target=/a,colour=red"], "unknown or unsupported key"),
        (["--mount", "type=bind,source=/no/such/dir,target=/a"], "does not exist"),
        (["-v", "/etc/hostname:/folder"], "the image has a folder there"),
        (["--tmpfs", "/a:size=lots"], "size"),
        (["-v", "bad/name:/a"], "invalid volume name"),
        (["-v", "..:/a"], "invalid volume name"),
        # Five disks and shares: a VM without a network card has slots for four.
        (
            [
                "-v",
                "/no/such/dir:/a",
                "-v",
                "/tmp:/b",
                "-v",
                "vt-slot:/c",
                "-v",
                "/d",
                "--mount",
                "type=volume,target=/e",
                "--tmpfs",
                "/f",
                "--network",
                "none",
            ],
            "too many bind mounts and volumes (5): a container's VM has device slots for 4",
        ),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(cc, image, args, message):
    before = _volumes(cc)
    result = cc("run", "--rm", *args, image, "true")
    assert result.returncode == 125
    err = result.stderr.decode()
    assert message in err and err.count("\n") == 1, err
    assert cc("ls", "-a", "-q").stdout == b""
    assert _volumes(cc) == before
    assert not os.path.exists("/no/such/dir")


@as_root
def test_an_image_built_on_another_is_checked_before_anything_is_made(cc, busybox, tmp_path):
    """Its disk is a qcow2 overlay debugfs cannot read: its own layers answer,
    and where they say nothing, its parent's disk."""
    from cocoon.image.store import ImageStore
    from cocoon.rootfs import delta
    from cocoon.rootfs.disks import disk_key

    if not delta.available():
        pytest.skip("this host builds whole disks only")
    ref = "localhost/mounts-derived:1"
    (tmp_path / "Dockerfile").write_text(f"FROM {busybox}\nRUN mkdir /folder\n")
    ok(cc("build", "-q", "-t", ref, str(tmp_path), timeout=LONG))
    # /folder is the built layer's, /bin the parent disk's.
    for verb, target in (("create", "/folder"), ("run", "/folder"), ("create", "/bin")):
        result = cc(verb, "-v", f"/etc/hostname:{target}", ref, "true")
        err = result.stderr.decode()
        assert result.returncode == 125, err
        assert f"on {target}: the image has a folder there" in err and err.count("\n") == 1, err
        assert cc("ls", "-a", "-q").stdout == b""
    key = disk_key(ImageStore(cc.state / "images").resolve(ref))
    assert (cc.state / "rootfs" / f"{key}.delta").exists()  # built by the first create
    # A mount that fits still starts.
    (tmp_path / "seen").write_text("from the host\n")
    out = ok(cc("run", "--rm", "-v", f"{tmp_path}:/folder", ref, "cat", "/folder/seen"))
    assert out == "from the host\n"


def test_named_volume_keeps_data_and_is_copied_up(cc, image):
    # First use: the empty volume gets the image's /data, owners and modes kept.
    first = cc("run", "--name", "vol-a", "-v", "vt-data:/data", image, "sh", "-c",
               "ls -ln /data; cat /data/seed; echo kept > /data/new")  # fmt: skip
    out = ok(first)
    assert "seeded\n" in out
    assert any(line.startswith("-rw-r-----") and " 1000 " in line for line in out.splitlines())
    # Another container sees what the first wrote; a read-only mount refuses writes.
    second = cc("run", "--rm", "-v", "vt-data:/data:ro", image, "sh", "-c",
                "cat /data/new; echo x > /data/other")  # fmt: skip
    assert second.stdout == b"kept\n" and b"Read-only file system" in second.stderr

    # One running VM per disk volume; the error names the holder.
    ok(cc("run", "-d", "--name", "vol-holder", "-v", "vt-data:/data", image, "sleep", "600"))
    refused = cc("run", "--rm", "-v", "vt-data:/data", image, "true")
    assert refused.returncode == 125 and b"vol-holder" in refused.stderr
    ok(cc("rm", "-f", "vol-holder", timeout=LONG))

    # In use by a container (even a stopped one): volume rm is refused.
    busy = cc("volume", "rm", "vt-data")
    assert busy.returncode == 125 and b"vol-a" in busy.stderr
    ok(cc("rm", "vol-a"))
    assert "vt-data" in _volumes(cc)  # a named volume outlives its containers
    ok(cc("volume", "rm", "vt-data"))


def test_anonymous_volumes_go_with_rm_v_and_run_rm(cc, image):
    before = set(_volumes(cc))
    ok(cc("run", "--rm", "-v", "/anon", image, "sh", "-c", "echo x > /anon/f"))
    assert set(_volumes(cc)) == before  # run --rm took its anonymous volume along

    ok(cc("run", "--name", "anon-keep", "-v", "/anon", image, "true"))
    ok(cc("rm", "anon-keep"))
    kept = set(_volumes(cc)) - before
    assert len(kept) == 1  # rm without -v keeps it, as Docker does
    ok(cc("volume", "rm", *kept))
    ok(cc("run", "--name", "anon-gone", "-v", "/anon", image, "true"))
    ok(cc("rm", "-v", "anon-gone"))
    assert set(_volumes(cc)) == before


def test_as_many_mounts_as_the_vm_has_slots(cc, image, tmp_path):
    """Three disks and shares fit beside a network card, four without one
    (tmpfs mounts take no slot); one more is refused before anything is made."""
    mounts = ["-v", f"{tmp_path}:/a", "-v", "vt-slots:/c", "-v", "/d", "--tmpfs", "/e"]
    script = "echo x > /a/f && echo y > /c/f && echo z > /d/f && echo w > /e/f && echo fine"
    assert ok(cc("run", "--rm", *mounts, "-v", f"{tmp_path}:/b", "--network", "none", image,
                 "sh", "-c", script)) == "fine\n"  # fmt: skip
    assert (tmp_path / "f").read_text() == "x\n"
    before = _volumes(cc)
    refused = cc("run", "--rm", *mounts, "-v", f"{tmp_path}:/b", "--network", "user", image, "true")
    err = refused.stderr.decode()
    assert refused.returncode == 125 and err.count("\n") == 1, err
    assert "device slots for 3 (tmpfs mounts need none; --network none frees one)" in err, err
    assert cc("ls", "-a", "-q").stdout == b""
    assert _volumes(cc) == before


def test_dir_volume_is_shared_by_running_containers(cc, image):
    ok(cc("volume", "create", "--opt", "type=dir", "vt-shared"))
    one = ok(cc("run", "-d", "-v", "vt-shared:/shared", image, "sleep", "600")).strip()
    two = ok(cc("run", "-d", "-v", "vt-shared:/shared", image, "sleep", "600")).strip()
    ok(sh(cc, one, "echo from-one > /shared/note"))
    assert ok(sh(cc, two, "cat /shared/note")) == "from-one\n"
    (shown,) = json.loads(ok(cc("inspect", two)))[0]["Mounts"]
    volume = json.loads(ok(cc("volume", "inspect", "vt-shared")))[0]
    assert list(shown.items()) == [  # Docker's keys, in Docker's order
        ("Type", "volume"), ("Name", "vt-shared"), ("Source", volume["mountpoint"]),
        ("Destination", "/shared"), ("Driver", "local"), ("Mode", ""), ("RW", True),
        ("Propagation", ""),
    ]  # fmt: skip


@as_root
def test_the_library_takes_the_same_mounts(cocoon, image, tmp_path):
    import cocoon as cocoon_lib
    from cocoon.volume.mounts import BindMount, TmpfsMount

    (tmp_path / "hello").write_text("from python\n")
    mounts = [BindMount(str(tmp_path), "/data", readonly=True), TmpfsMount("/tmp", size=1 << 20)]
    script = "cat /data/hello; ls /tmp; echo x > /data/no"
    result = cocoon_lib.run(image, ["sh", "-c", script], mounts=mounts)
    assert result.stdout == b"from python\n"  # the tmpfs hides the image's /tmp files
    assert b"Read-only file system" in result.stderr


class _Unprivileged(Cocoon):
    """The cocoon command run as ``nobody``, with a state of its own."""

    def __init__(self, env: dict[str, str], python: Path) -> None:
        super().__init__(env)
        self.python = python

    def argv(self, *args: str) -> list[str]:
        drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        return [*drop, str(self.python), "-m", "cocoon.cli.main", *args]


@pytest.fixture
def unprivileged(cocoon) -> Iterator[_Unprivileged]:
    """cocoon as an unprivileged user (``nobody``): its own state, cache and
    run folders, busybox loaded, no network (user-mode needs no root, but no
    test needs one); its VMs and folders go after the test.

    Its interpreter is a venv of the system's Python, whose path any user can
    reach (the test's may live in root's home), over this one's packages."""
    system = Path("/usr/bin/python3")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = subprocess.run([system, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if found.stdout.strip() != here:
        pytest.skip(f"no system Python {here} to run cocoon as another user")
    top = Path(tempfile.mkdtemp(prefix="cocoon-nobody-", dir="/tmp"))
    top.chmod(0o755)
    try:
        subprocess.run([system, "-m", "venv", "--without-pip", top / "py"], check=True)
        paths = {
            str(Path(cocoon_pkg.__file__).parents[1]),
            *(sysconfig.get_paths()[k] for k in ("purelib", "platlib")),
        }
        site = top / "py" / "lib" / f"python{here}" / "site-packages"
        (site / "cocoon-tests.pth").write_text("".join(f"{p}\n" for p in sorted(paths)))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COCOON_", "XDG_"))}
        env.update(HOME=str(top), COCOON_STATE_DIR=str(top / "state"),
                   COCOON_RUN_DIR=str(top / "run"), COCOON_CACHE_DIR=str(top / "cache"),
                   COCOON_NETWORK="none", COCOON_AGENT=os.environ["COCOON_AGENT"])  # fmt: skip
        write_layout(top / "layout", [busybox_layer()], ref=BUSYBOX)
        subprocess.run(["chown", "-R", "nobody:nogroup", top], check=True)
        user = _Unprivileged(env, top / "py" / "bin" / "python")
        ok(user("image", "load", str(top / "layout")))
        yield user
    finally:
        state = top / "state"
        for pid in vms_of(state) + monitors_of(state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(top, ignore_errors=True)


@as_root
def test_without_root_a_bind_mount_and_a_dir_volume_work(unprivileged):
    """The 9p modes that need no privilege: ``none`` for a bind mount (files are
    the user's, a chown inside fails), ``mapped-xattr`` for a dir volume (a
    chown inside holds, kept in extended attributes)."""
    nobody = pwd.getpwnam("nobody")
    share = unprivileged.state.parent / "share"
    share.mkdir()
    os.chown(share, nobody.pw_uid, nobody.pw_gid)
    ok(unprivileged("volume", "create", "--opt", "type=dir", "shared"))
    script = ("id -u; echo hi > /data/f; mkdir /data/d; chown 1000 /data/f || echo refused; "
              "echo v > /vol/f; chown 1000:1000 /vol/f; stat -c '%u:%g' /vol/f")  # fmt: skip
    out = ok(unprivileged("run", "--rm", "-v", f"{share}:/data", "-v", "shared:/vol",
                          BUSYBOX, "sh", "-c", script))  # fmt: skip
    assert out.split() == ["0", "refused", "1000:1000"], out
    for made in (share / "f", share / "d"):  # the user's files on the host
        assert (made.stat().st_uid, made.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert (share / "f").read_text() == "hi\n"
    again = unprivileged("run", "--rm", "-v", "shared:/vol", BUSYBOX, "stat", "-c", "%u", "/vol/f")
    assert ok(again) == "1000\n"  # the owner set inside outlived its container
    assert not unprivileged.vms()
