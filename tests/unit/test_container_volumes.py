"""The container layer's side of mounts: the agent's MOUNT fields and inspect's view."""

from __future__ import annotations

from cocoon.agent.protocol import MountFlag, MountKind
from cocoon.container.volumes import _guest_mount, view
from cocoon.volume.mounts import BindMount, TmpfsMount


def test_plan_entries_become_mount_fields():
    disk = _guest_mount(
        {"type": "ext4", "serial": "cocoon-vol0", "target": "/d", "readonly": True, "copy_up": True}
    )
    assert (disk.kind, disk.source, disk.flags) == (
        MountKind.EXT4,
        "cocoon-vol0",
        MountFlag.RDONLY | MountFlag.COPY_UP,
    )
    share = _guest_mount(
        {"type": "9p", "tag": "cocoon.m0", "target": "/f", "readonly": False, "file": "a.conf"}
    )
    assert (share.kind, share.source, share.file, share.flags) == (
        MountKind.NINEP,
        "cocoon.m0",
        "a.conf",
        MountFlag.NONE,
    )
    tmpfs = _guest_mount(
        {"type": "tmpfs", "target": "/t", "size": None, "mode": 0o700, "flags": ["noexec"]}
    )
    assert (tmpfs.kind, tmpfs.mode, tmpfs.size, tmpfs.flags) == (
        MountKind.TMPFS,
        0o700,
        0,
        MountFlag.NOEXEC,
    )


def test_inspect_view_has_dockers_shape():
    shown = view([BindMount("/srv", "/data", readonly=True), TmpfsMount("/run")])
    assert [list(entry.items()) for entry in shown] == [  # Docker's keys, in its order
        [("Type", "bind"), ("Source", "/srv"), ("Destination", "/data"), ("Mode", "ro"),
         ("RW", False), ("Propagation", "rprivate")],
        [("Type", "tmpfs"), ("Source", ""), ("Destination", "/run"), ("Mode", ""), ("RW", True),
         ("Propagation", "")],
    ]  # fmt: skip
