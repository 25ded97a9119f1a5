"""Rooted memory templates end to end: clones of one image's template whose root is mounted.

A new container's disk is an untouched overlay of its image's disk: it
starts from the rooted template of that image, whose guest mounted the root
before it was saved, and gets a copy of the template's disk in place of its
own. Every container here is a real VM; ``--debug`` says which template.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from oci import Layer, busybox_layer
from templated import LONG, Templated, cloned, refusing_qemu, running_clones
from vm_fixtures import ok

from cocoon.vm import accel as accelerators
from cocoon.vm import template as templates
from cocoon.vm.artifacts import artifacts

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="templates live in a ramfs, which needs root"),
]

ROOTED = re.compile(rb"starting from memory template ([0-9a-f]{16}) \(rooted\)")


def rooted(result: subprocess.CompletedProcess) -> str:
    """The rooted template a run was cloned from; fails if it was anything else."""
    found = ROOTED.search(result.stderr)
    assert found, result.stderr.decode()
    return found.group(1).decode()


def rooted_template(key: str | None) -> bool:
    """Whether ``key`` names a rooted template (the one a detached run's VM
    resumed: its monitor boots it, whose ``--debug`` lines nobody sees)."""
    return key is not None and (templates.folder() / key / "root.qcow2").exists()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _until(tc: Templated, name: str, script: str, want: str) -> None:
    """Wait for ``script`` in container ``name`` to print ``want`` (its main process sets it up)."""
    deadline = time.monotonic() + 120
    while (got := tc("exec", name, "sh", "-c", script)).stdout.decode() != want:
        assert time.monotonic() < deadline, (got.stdout + got.stderr).decode()
        time.sleep(0.3)


def test_a_new_container_resumes_its_images_rooted_template_with_its_own_disk(
    tc, busybox, tmp_path
):
    key = rooted(tc("run", "--rm", busybox, "true"))
    root = templates.folder() / key / "root.qcow2"
    before = _sha256(root)
    ids = {}
    for name, hostname in (("a", "short"), ("b", "a-hostname-longer-than-the-template-s")):
        started = tc("run", "-d", "--name", name, "--hostname", hostname, busybox,
                     "sh", "-c", f"echo {name} > /mine; sleep 600")  # fmt: skip
        ids[name] = ok(started).strip()
        _until(tc, name, "cat /mine", f"{name}\n")
        # Its own name, written over the template's in place, whatever its length.
        script = "hostname; cat /etc/hostname; grep -w $(hostname) /etc/hosts >/dev/null && echo y"
        assert ok(tc("exec", name, "sh", "-c", script)).split() == [hostname, hostname, "y"]
    assert running_clones(tc.cocoon.state) == {ids["a"]: key, ids["b"]: key}
    # The image's files are there, and each sees its own file only.
    for name in ("a", "b"):
        assert ok(tc("exec", name, "sh", "-c", "cat /mine; ls /bin/busybox")) == (
            f"{name}\n/bin/busybox\n"
        )
    fresh = tc("run", "--rm", busybox, "sh", "-c", "cat /mine 2>/dev/null || echo none")
    assert ok(fresh) == "none\n" and rooted(fresh) == key
    assert _sha256(root) == before  # clones never write into the template

    # Stopped and started again: its disk is no longer untouched, so it
    # resumes its shape's template (or boots), and keeps its files.
    ok(tc("stop", "-t", "1", "a", timeout=LONG))
    ok(tc("start", "a"))
    restarted = running_clones(tc.cocoon.state).get(ids["a"])
    assert restarted not in (None, key) and not rooted_template(restarted)
    assert ok(tc("exec", "a", "cat", "/mine")) == "a\n"

    # Its filesystem, as it ran from the template's disk and was unmounted, is whole.
    ok(tc("stop", "-t", "1", "b", timeout=LONG))
    raw = tmp_path / "b.raw"
    disk = tc.cocoon.state / "containers" / ids["b"] / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(raw)], check=True)
    fsck = subprocess.run(["e2fsck", "-fn", str(raw)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    raw.unlink()

    # Exported, and imported as an image: the container's files, and the image's.
    archive = tmp_path / "b.tar"
    ok(tc("export", "-o", str(archive), "b"))
    with tarfile.open(archive) as tar:
        names = {n.lstrip("./") for n in tar.getnames()}
    assert {"mine", "bin/busybox", "etc/hostname"} <= names
    ok(tc("image", "import", str(archive), "localhost/rooted-export:1"))
    imported = tc("run", "--rm", "localhost/rooted-export:1", "cat", "/mine")
    assert ok(imported) == "b\n" and rooted(imported) != key  # another image, another template
    ok(tc("rmi", "localhost/rooted-export:1"))


def test_ten_clones_of_one_rooted_template_at_once_keep_to_themselves(tc, busybox):
    key = rooted(tc("run", "--rm", busybox, "true"))

    def launch(i: int) -> subprocess.CompletedProcess:
        script = f"echo mine{i} > /secret; sleep 600"
        return tc("run", "-d", "--name", f"r{i}", busybox, "sh", "-c", script)

    with ThreadPoolExecutor(10) as pool:
        started = [ok(r).strip() for r in pool.map(launch, range(10))]
    clones = running_clones(tc.cocoon.state)
    assert {clones.get(cid) for cid in started} == {key} and rooted_template(key)
    image = ok(tc("run", "--rm", busybox, "md5sum", "/bin/busybox"))
    for i in range(10):
        _until(tc, f"r{i}", "cat /secret", f"mine{i}\n")
        # Each wrote and reads back its own file; the image's files are whole.
        own = ok(tc("exec", f"r{i}", "sh", "-c", "echo again$$ >> /secret; cat /secret; ls /"))
        assert own.startswith(f"mine{i}\nagain") and own.count("again") == 1
        assert ok(tc("exec", f"r{i}", "md5sum", "/bin/busybox")) == image
    for i in range(10):
        assert ok(tc("exec", f"r{i}", "head", "-n1", "/secret")) == f"mine{i}\n"


def test_read_only_root_and_a_volume_from_rooted_templates(tc, busybox):
    try:
        ro = tc("run", "--rm", "--read-only", busybox, "sh", "-c",
                "cat /etc/hostname; echo x > /x")  # fmt: skip
        key = rooted(ro)  # read-only is the container's, not the template's
        assert ro.returncode != 0 and b"Read-only file system" in ro.stderr
        rw = tc("run", "--rm", busybox, "sh", "-c", "echo x > /x && cat /x")
        assert ok(rw) == "x\n" and rooted(rw) == key

        # A volume slot is another shape, so another rooted template.
        first = tc("run", "--rm", "-v", "rooted-vol:/data", busybox, "sh", "-c",
                   "echo kept > /data/f; cat /data/f; ls /bin/busybox")  # fmt: skip
        assert ok(first) == "kept\n/bin/busybox\n" and rooted(first) != key
        again = tc("run", "--rm", "-v", "rooted-vol:/data:ro", busybox, "sh", "-c",
                   "cat /data/f; echo x > /data/g")  # fmt: skip
        assert again.stdout == b"kept\n" and b"Read-only file system" in again.stderr
        assert rooted(again) == rooted(first)
    finally:
        tc("volume", "rm", "-f", "rooted-vol")


def test_a_changed_image_agent_or_kernel_gets_its_own_rooted_template(tc, busybox, tmp_path):
    ref = "localhost/rooted-changes:1"
    tc.cocoon.load_layout(tmp_path / "one", [busybox_layer(), Layer().file("v", b"1\n")], ref)
    one = tc("run", "--rm", ref, "cat", "/v")
    assert ok(one) == "1\n"
    old = rooted(one)
    # The same name for another image: another disk, another template.
    ok(tc("rmi", ref))
    tc.cocoon.load_layout(tmp_path / "two", [busybox_layer(), Layer().file("v", b"2\n")], ref)
    two = tc("run", "--rm", ref, "cat", "/v")
    assert ok(two) == "2\n" and rooted(two) != old
    # The removed image's template went when the new one was built.
    assert not (templates.folder() / old).exists()

    # Another agent (bytes appended to the binary) is another input too.
    agent = tmp_path / "cocoon-agent"
    shutil.copyfile(tc.env["COCOON_AGENT"], agent)
    with open(agent, "ab") as f:
        f.write(os.urandom(8))
    agent.chmod(0o755)
    changed = Templated(tc.cocoon, COCOON_AGENT=str(agent))("run", "--rm", ref, "cat", "/v")
    assert ok(changed) == "2\n" and rooted(changed) not in (old, rooted(two))
    # And another kernel (the same one with bytes appended), on the
    # accelerator the others run on (no new probe for the copy).
    arts = artifacts()
    kernel = tmp_path / "vmlinux"
    shutil.copyfile(arts.kernel, kernel)
    with open(kernel, "ab") as f:
        f.write(os.urandom(8))
    accel = accelerators.choose("auto", arts.kernel, arts.initrd)
    other = Templated(tc.cocoon, COCOON_KERNEL=str(kernel))
    booted = other("run", "--rm", "--accel", accel, ref, "cat", "/v")
    assert ok(booted) == "2\n"
    assert rooted(booted) not in (old, rooted(two), rooted(changed))
    ok(tc("rmi", ref))


def test_a_rooted_template_that_cannot_be_built_falls_back_to_the_shapes(tc, busybox, tmp_path):
    # A QEMU that refuses to boot rooted templates (as if the guest failed).
    lacking = refusing_qemu(tc, tmp_path, "*cocoon.rooted=1*", "no rooted here")
    # A shape of its own, so no earlier test's rooted template serves it.
    result = lacking("run", "--rm", "--memory", "224m", busybox, "echo", "fallback")
    assert ok(result) == "fallback\n" and b"no rooted template" in result.stderr
    assert b"no rooted here" in result.stderr and not ROOTED.search(result.stderr)
    cloned(result)  # the shape's template
    again = lacking("run", "--rm", "--memory", "224m", busybox, "echo", "fallback")
    assert ok(again) == "fallback\n" and b"building it failed" in again.stderr
    # A new container of a larger disk from the shape's template: the agent
    # mounts it after the resume and grows it to the size CONFIG gives.
    sized = lacking("run", "--rm", "--memory", "224m", "--storage-opt", "size=12g", busybox,
                    "df", "-k", "/")  # fmt: skip
    assert 11 << 20 < int(ok(sized).splitlines()[-1].split()[1]) <= 12 << 20
    assert cloned(sized) and not ROOTED.search(sized.stderr)
    # And with templates off, a cold boot as ever.
    cold = tc("run", "--rm", "--no-template", busybox, "echo", "cold")
    assert ok(cold) == "cold\n" and b"cold boot: templates are off" in cold.stderr
