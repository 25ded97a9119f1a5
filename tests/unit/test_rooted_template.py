"""Which root disks a rooted memory template may stand in for, read from real qcow2 files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cocoon.vm import qcow2
from cocoon.vm import template as templates
from cocoon.vm.machine import Disk, MachineSpec

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="needs qemu-img")


def overlay(path: Path, backing: Path, *options: str) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *options, "-F", "raw",
                    "-b", str(backing), str(path)], check=True)  # fmt: skip
    return path


@pytest.fixture
def base(tmp_path) -> Path:
    disk = tmp_path / "image.ext4"
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    return disk


def test_an_empty_overlay_is_untouched_and_says_what_it_overlays(base, tmp_path):
    found = qcow2.untouched(overlay(tmp_path / "a.qcow2", base))
    assert found == qcow2.Untouched(str(base), "raw", 64 << 20)
    # An old-format (version 2) header reads the same.
    assert qcow2.untouched(overlay(tmp_path / "b.qcow2", base, "-o", "compat=0.10")) == found


def test_one_written_cluster_makes_it_touched(base, tmp_path):
    disk = overlay(tmp_path / "a.qcow2", base)
    subprocess.run(["qemu-io", "-c", "write 1M 4k", str(disk)], check=True, capture_output=True)
    assert qcow2.untouched(disk) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"\0" * len(b),  # not qcow2
        lambda b: b[:50],  # cut inside the header
        lambda b: b[:4] + (9).to_bytes(4, "big") + b[8:],  # an unknown version
        lambda b: b[:12] + (1 << 30).to_bytes(4, "big") + b[16:],  # a backing name past the end
        lambda b: b[:36] + (1 << 30).to_bytes(4, "big") + b[40:],  # an L1 table too large
        lambda b: b[:72] + (1).to_bytes(8, "big") + b[80:],  # a dirty (incompatible) bit
        lambda b: b[:0x210] + b"\xff\xfe" + b[0x212:],  # a backing name that is no text
    ],
)
def test_a_damaged_or_odd_header_is_never_untouched(base, tmp_path, damage):
    disk = overlay(tmp_path / "a.qcow2", base)
    raw = disk.read_bytes()
    assert int.from_bytes(raw[8:16], "big") == 0x210  # where this qemu-img puts the name
    disk.write_bytes(damage(raw))
    assert qcow2.untouched(disk) is None


def test_a_missing_file_or_a_raw_disk_is_never_untouched(base, tmp_path):
    assert qcow2.untouched(tmp_path / "nothing") is None
    assert qcow2.untouched(base) is None


@pytest.fixture
def spec(tmp_path, base, monkeypatch) -> MachineSpec:
    monkeypatch.setenv("COCOON_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "templates").mkdir(parents=True)
    for name in ("vmlinux", "initrd"):
        (tmp_path / name).write_bytes(name.encode())
    return MachineSpec(
        kernel=tmp_path / "vmlinux",
        initrd=tmp_path / "initrd",
        accel="tcg",
        disks=[Disk(overlay(tmp_path / "disk.qcow2", base), "qcow2")],
    )


def test_any_untouched_overlay_of_one_image_disk_shares_its_rooted_template(spec, base, tmp_path):
    rooted = templates.rooted_shape(spec)
    assert rooted is not None and rooted["backing"] == str(base) and rooted["size"] == 64 << 20
    other = overlay(tmp_path / "other.qcow2", base)
    assert templates.rooted_shape(MachineSpec(**{**_fields(spec), "disks": [Disk(other, "qcow2")]}))
    assert templates.rooted_shape(spec) == rooted
    # Another size, or another file at the image disk's path, is another template.
    bigger = overlay(tmp_path / "big.qcow2", base, "-o", "size=128M")
    spec.disks = [Disk(bigger, "qcow2")]
    assert templates.rooted_shape(spec)["size"] == 128 << 20
    spec.disks = [Disk(other, "qcow2")]
    replacement = tmp_path / "new.ext4"
    shutil.copyfile(base, replacement)
    os.replace(replacement, base)
    assert templates.rooted_shape(spec)["backing_identity"] != rooted["backing_identity"]


def _fields(spec: MachineSpec) -> dict[str, object]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def test_a_root_that_is_not_an_untouched_overlay_has_none(spec, base, tmp_path):
    root = spec.disks[0]
    for disk in (
        Disk(root.path, "qcow2", readonly=True),
        Disk(root.path, "qcow2", serial="cocoon-vol0"),  # a volume in the root's place
        Disk(base, "raw"),
    ):
        spec.disks = [disk]
        assert templates.rooted_shape(spec) is None
    spec.disks = []
    assert templates.rooted_shape(spec) is None
    # A relative backing name would name another file beside the template's copy.
    relative = tmp_path / "relative.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base.name,
                    "-u", str(relative), "64M"], check=True, cwd=tmp_path)  # fmt: skip
    spec.disks = [Disk(relative, "qcow2")]
    assert templates.rooted_shape(spec) is None
    base.unlink()  # the image is gone
    spec.disks = [root]
    assert templates.rooted_shape(spec) is None


def test_sweeping_drops_rooted_templates_of_gone_images_and_keeps_a_few(spec, base, monkeypatch):
    def saved(name: str, rooted: dict[str, object] | None) -> Path:
        where = templates.folder() / name
        where.mkdir()
        (where / "state").write_bytes(b"")
        if rooted is not None:
            (where / "root.qcow2").write_bytes(b"")
            (where / "shape.json").write_text(json.dumps({"rooted": rooted}))
        return where

    rooted = templates.rooted_shape(spec)
    monkeypatch.setattr(templates, "KEEP_ROOTED", 2)
    live = [saved(f"live{i}", rooted) for i in range(3)]
    gone = saved("gone", {**rooted, "backing_identity": "0:0:0:0"})
    plain = saved("plain", None)
    for i, entry in enumerate([*live, gone, plain]):
        os.utime(entry / "state", (1000 + i, 1000 + i))  # live0 is the least recently used
    templates._sweep()
    assert sorted(e.name for e in templates.folder().iterdir()) == ["live1", "live2", "plain"]
