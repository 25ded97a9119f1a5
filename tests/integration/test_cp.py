"""cocoon cp, export and image import, in real VMs: running and stopped containers.

The image has no tar program: the guest agent writes and reads the archives.
"""

from __future__ import annotations

import io
import os
import tarfile

import pytest
from oci import busybox_layer
from vm_fixtures import remove_containers

pytestmark = pytest.mark.vm

IMAGE = "localhost/cp:latest"


@pytest.fixture(scope="module")
def image(cocoon, tmp_path_factory) -> str:
    layer = busybox_layer()
    layer.dir("srv", 0o755)
    layer.file("srv/app.txt", b"in the image\n", 0o640, uid=1000, gid=1000)
    layer.symlink("srv/link", "/etc/passwd")
    # No tar in the image: the agent must do it.
    layer.members = [(i, d) for i, d in layer.members if i.name != "bin/tar"]
    cocoon.load_layout(tmp_path_factory.mktemp("img"), [layer], IMAGE)
    return IMAGE


@pytest.fixture
def cc(cocoon):
    yield cocoon
    remove_containers(cocoon)
    cocoon("image", "rm", "localhost/exported:latest")


def ok(result) -> bytes:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def check_copies(cc, ref: str, tmp_path) -> None:
    """Both ways, files and folders, owners kept with -a, tar streams with -."""
    out = tmp_path / ref
    out.mkdir()
    ok(cc("cp", "-a", f"{ref}:/srv", str(out)))
    st = os.stat(out / "srv" / "app.txt")
    assert (out / "srv" / "app.txt").read_bytes() == b"in the image\n"
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 1000, 1000)
    assert os.readlink(out / "srv" / "link") == "/etc/passwd"  # kept, not followed
    ok(cc("cp", f"{ref}:/srv/app.txt", str(out / "renamed.txt")))
    assert (out / "renamed.txt").read_bytes() == b"in the image\n"
    assert os.stat(out / "renamed.txt").st_uid == os.getuid()  # without -a: the caller's

    src = tmp_path / f"{ref}-in"
    (src / "deep" / "er").mkdir(parents=True)
    (src / "deep" / "er" / "f").write_text("from the host\n")
    os.chmod(src / "deep" / "er" / "f", 0o604)
    ok(cc("cp", str(src / "deep"), f"{ref}:/srv"))
    ok(cc("cp", str(src / "deep" / "er" / "f"), f"{ref}:/srv/single"))
    owned = src / "owned"  # -a keeps the host's owners going in
    owned.write_text("owned\n")
    os.chown(owned, 1234, 1235)
    ok(cc("cp", "-a", str(owned), f"{ref}:/srv/owned"))
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        info = tarfile.TarInfo("streamed")
        info.size, info.uid = 3, 1000
        tar.addfile(info, io.BytesIO(b"hi\n"))
    ok(cc("cp", "-", f"{ref}:/srv", input=stream.getvalue()))

    back = ok(cc("cp", f"{ref}:/srv", "-"))
    with tarfile.open(fileobj=io.BytesIO(back)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile(members["srv/deep/er/f"]).read() == b"from the host\n"
        assert members["srv/deep/er/f"].mode == 0o604 and members["srv/deep/er/f"].uid == 0
        assert tar.extractfile(members["srv/single"]).read() == b"from the host\n"
        assert members["srv/streamed"].uid == 1000
        assert (members["srv/owned"].uid, members["srv/owned"].gid) == (1234, 1235)
    with tarfile.open(fileobj=io.BytesIO(ok(cc("cp", "-a", f"{ref}:/srv/app.txt", "-")))) as tar:
        (member,) = tar.getmembers()  # -a with a stream out: the tar as it is
        assert (member.name, member.uid, member.mode) == ("app.txt", 1000, 0o640)

    missing = cc("cp", f"{ref}:/no/such", str(out))
    assert missing.returncode == 125 and missing.stderr.count(b"\n") == 1


def test_cp_running_and_stopped(cc, image, tmp_path):
    ok(cc("run", "-d", "--name", "cp-running", image, "sleep", "600"))
    check_copies(cc, "cp-running", tmp_path)
    ok(cc("create", "--name", "cp-stopped", image, "cat", "/srv/single"))
    check_copies(cc, "cp-stopped", tmp_path)
    # What was copied into the stopped container is on its disk when it runs.
    assert ok(cc("start", "-a", "cp-stopped")) == b"from the host\n"


def test_export_import_run(cc, image, tmp_path):
    ok(cc("run", "--name", "to-export", image, "sh", "-c", "echo made > /root/made"))
    archive = tmp_path / "rootfs.tar"
    ok(cc("export", "-o", str(archive), "to-export"))
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"root/made", "srv/app.txt", "bin/busybox"} <= names
    assert not any(n.startswith("proc/") for n in names)  # other filesystems stay empty
    ok(cc("image", "import", str(archive), "localhost/exported:latest"))
    result = cc("run", "--rm", "localhost/exported:latest", "cat", "/root/made", "/srv/app.txt")
    assert ok(result) == b"made\nin the image\n"
