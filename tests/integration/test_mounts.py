"""Mounts end to end: bind mounts over 9p, volumes, tmpfs and a read-only root, in real VMs.

Checks are grouped so that few VMs boot: each test starts one or two
containers and asks them many questions with exec.
"""

from __future__ import annotations

import json
import os

import pytest
from oci import busybox_layer
from vm_fixtures import ok, remove_containers

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
    assert {"Type": "bind", "Source": str(shared), "Destination": "/ro", "RW": False} in (
        shown["Mounts"]
    )
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


def test_dir_volume_is_shared_by_running_containers(cc, image):
    ok(cc("volume", "create", "--opt", "type=dir", "vt-shared"))
    one = ok(cc("run", "-d", "-v", "vt-shared:/shared", image, "sleep", "600")).strip()
    two = ok(cc("run", "-d", "-v", "vt-shared:/shared", image, "sleep", "600")).strip()
    ok(sh(cc, one, "echo from-one > /shared/note"))
    assert ok(sh(cc, two, "cat /shared/note")) == "from-one\n"
    shown = json.loads(ok(cc("inspect", two)))[0]["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"], m["RW"]) for m in shown] == [
        ("volume", "vt-shared", "/shared", True)
    ]


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
