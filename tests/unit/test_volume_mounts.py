"""The mount flags: -v, --mount and --tmpfs, as Docker reads them, and every bad input."""

import pytest

from cocoon.errors import Corrupt, InvalidArgument
from cocoon.volume.mounts import (
    BindMount,
    TmpfsMount,
    VolumeMount,
    check_image_paths,
    check_name,
    check_targets,
    from_flags,
    from_json,
    parse_mount_flag,
    parse_tmpfs_flag,
    parse_volume_flag,
    to_json,
)


@pytest.mark.parametrize(
    ("text", "mount"),
    [
        ("/srv:/data", BindMount("/srv", "/data", create_source=True)),
        ("/srv:/data:ro", BindMount("/srv", "/data", readonly=True, create_source=True)),
        ("/srv:/data:rw", BindMount("/srv", "/data", create_source=True)),
        ("/srv/a/../b/:/data/", BindMount("/srv/b", "/data", create_source=True)),
        ("/srv://data//x/", BindMount("/srv", "/data/x", create_source=True)),
        ("data:/x", VolumeMount("data", "/x")),
        ("my.vol_1-a:/x:ro", VolumeMount("my.vol_1-a", "/x", readonly=True)),
        ("data:/x:nocopy", VolumeMount("data", "/x", nocopy=True)),
        ("data:/x:ro,nocopy", VolumeMount("data", "/x", readonly=True, nocopy=True)),
        ("/x", VolumeMount(None, "/x", anonymous=True)),
    ],
)
def test_volume_flag(text, mount):
    assert parse_volume_flag(text) == mount


def test_volume_flag_relative_dot_paths_are_host_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_volume_flag("./d:/x") == BindMount(f"{tmp_path}/d", "/x", create_source=True)
    assert parse_volume_flag(".:/x").source == str(tmp_path)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "use \\[SOURCE:\\]TARGET"),
        ("a:b:c:d", "use \\[SOURCE:\\]TARGET"),
        ("a::/x", "use \\[SOURCE:\\]TARGET"),
        ("/srv:/x:", "use \\[SOURCE:\\]TARGET"),
        ("data:x", "'x' is not an absolute path"),
        ("rel", "'rel' is not an absolute path"),
        ("/srv:/", "cannot mount over the container's root"),
        ("/srv:/a/..", "cannot mount over the container's root"),
        ("/", "cannot mount over the container's root"),
        ("/srv:/x:rw,ro", "ro and rw conflict"),
        ("/srv:/x:z", "unknown option 'z'"),
        ("/srv:/x:nocopy", "nocopy applies to volumes"),
        ("/x:ro", "options need a source"),
        ("a/b:/x", "invalid volume name 'a/b'"),
        ("..:/x", "invalid volume name '..'"),
        ("../d:/x", "invalid volume name '../d'"),
        ("a:/x", "invalid volume name 'a'"),
        ("-a:/x", "invalid volume name"),
        ("data:/x\n", "control character"),
    ],
)
def test_volume_flag_bad_input(text, error):
    with pytest.raises(InvalidArgument, match=error):
        parse_volume_flag(text)


@pytest.mark.parametrize(
    ("text", "mount"),
    [
        ("type=bind,source=/srv,target=/x", BindMount("/srv", "/x")),
        ("type=bind,src=/srv,dst=/x,readonly", BindMount("/srv", "/x", readonly=True)),
        ("type=bind,src=/srv,destination=/x,ro=true", BindMount("/srv", "/x", readonly=True)),
        ("type=bind,src=/srv,target=/x,readonly=0", BindMount("/srv", "/x")),
        ('type=bind,"source=/a,b",target=/x', BindMount("/a,b", "/x")),
        ("type=volume,source=data,target=/x", VolumeMount("data", "/x")),
        ("source=data,target=/x", VolumeMount("data", "/x")),
        ("target=/x", VolumeMount(None, "/x", anonymous=True)),
        ("src=data,target=/x,volume-nocopy", VolumeMount("data", "/x", nocopy=True)),
        ("type=tmpfs,target=/t", TmpfsMount("/t")),
        ("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=700", TmpfsMount("/t", 64 << 20, 0o700)),
    ],
)
def test_mount_flag(text, mount):
    assert parse_mount_flag(text) == mount


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("type=bind,source=/srv", "target is missing"),
        ("type=bind,target=/x", "a bind needs source"),
        ("type=bind,source=srv,target=/x", "'srv' is not an absolute path"),
        ("type=bind,source=/srv,target=x", "'x' is not an absolute path"),
        ("type=bind,source=/srv,target=/", "cannot mount over"),
        ("type=nfs,target=/x", "unknown type 'nfs'"),
        ("type=bind,source=/srv,target=/x,colour=red", "unknown or unsupported key 'colour'"),
        ("type=bind,source=/srv,target=/x,bind-propagation=shared", "unsupported key"),
        ("type=bind,source=/srv,target=/x,target=/y", "target given twice"),
        ("type=bind,source,target=/x", "source needs a value"),
        ("type=bind,source=/srv,target=/x,readonly=maybe", "not true or false"),
        ("type=bind,source=/srv,target=/x,tmpfs-size=1m", "tmpfs-size does not apply"),
        ("type=bind,source=/srv,target=/x,volume-nocopy", "volume-nocopy does not apply"),
        ("type=tmpfs,source=/srv,target=/x", "source does not apply to type=tmpfs"),
        ("type=tmpfs,target=/x,readonly", "readonly does not apply to type=tmpfs"),
        ("type=tmpfs,target=/x,tmpfs-size=lots", "invalid size 'lots'"),
        ("type=tmpfs,target=/x,tmpfs-size=0", "must be more than 0"),
        ("type=tmpfs,target=/x,tmpfs-mode=999", "not an octal file mode"),
        ("type=tmpfs,target=/x,tmpfs-mode=17777", "not an octal file mode"),
        ("type=volume,source=a/b,target=/x", "invalid volume name"),
        ("type=volume,source=..,target=/x", "invalid volume name"),
        ('type=bind,"source=/a,target=/x', "target is missing"),  # an unclosed quote
    ],
)
def test_mount_flag_bad_input(text, error):
    with pytest.raises(InvalidArgument, match=error):
        parse_mount_flag(text)


@pytest.mark.parametrize(
    ("text", "mount"),
    [
        ("/run", TmpfsMount("/run")),
        ("/run:size=64m", TmpfsMount("/run", 64 << 20)),
        (
            "/run:rw,noexec,nosuid,size=65536k",
            TmpfsMount("/run", 64 << 20, flags=("noexec", "nosuid")),
        ),
        ("/run:mode=755,nodev,noexec,exec", TmpfsMount("/run", mode=0o755, flags=("nodev",))),
    ],
)
def test_tmpfs_flag(text, mount):
    assert parse_tmpfs_flag(text) == mount


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("run", "not an absolute path"),
        ("/", "cannot mount over"),
        ("/run:size=big", "invalid size 'big'"),
        ("/run:size=50%", "not a percentage"),
        ("/run:mode=abc", "not an octal file mode"),
        ("/run:uid=1000", "unknown option 'uid=1000'"),
        ("/run:ro", "unknown option 'ro'"),
    ],
)
def test_tmpfs_flag_bad_input(text, error):
    with pytest.raises(InvalidArgument, match=error):
        parse_tmpfs_flag(text)


def test_from_flags_keeps_order_and_refuses_two_mounts_on_one_target():
    mounts = from_flags(["data:/a"], ["type=bind,src=/srv,dst=/b"], ["/c"])
    assert [m.target for m in mounts] == ["/a", "/b", "/c"]
    with pytest.raises(InvalidArgument, match="two mounts on /a"):
        from_flags(["data:/a"], tmpfs=["/a/"])
    with pytest.raises(InvalidArgument, match="two mounts on /a"):
        from_flags(["/a", "other:/a"])


def test_names():
    assert check_name("ab") == "ab"
    assert check_name("A0_.-") == "A0_.-"
    for bad in ("a", "", ".a", "_a", "a/b", "..", "a b", "é1", "a" * 256):
        with pytest.raises(InvalidArgument, match="invalid volume name"):
            check_name(bad)


def test_json_round_trip():
    for mount in [
        BindMount("/srv", "/x", readonly=True, create_source=True),
        VolumeMount("0" * 64, "/x", anonymous=True, nocopy=True),
        TmpfsMount("/t", 1 << 20, 0o700, ("noexec",)),
    ]:
        assert from_json(to_json(mount)) == mount
    assert to_json(TmpfsMount("/t"))["type"] == "tmpfs"


def test_json_from_a_bad_record():
    with pytest.raises(Corrupt, match="unknown mount type"):
        from_json({"type": "nfs", "target": "/x"})
    with pytest.raises(Corrupt, match="malformed mount"):
        from_json({"type": "bind", "target": "/x"})


def test_image_paths(tmp_path):
    (tmp_path / "f").write_text("")
    image = {"/etc": "dir", "/etc/hosts.conf": "file", "/bin/sh": "file"}.get
    ok = [
        BindMount(str(tmp_path), "/etc"),
        BindMount(str(tmp_path / "f"), "/etc/hosts.conf"),
        BindMount(str(tmp_path / "f"), "/new"),
        VolumeMount("data", "/etc"),
        TmpfsMount("/new"),
    ]
    check_image_paths(ok, image)
    bad = [
        (BindMount(str(tmp_path / "f"), "/etc"), "host file .* on /etc: the image has a folder"),
        (BindMount(str(tmp_path), "/bin/sh"), "host folder .* the image has a file there"),
        (VolumeMount("data", "/bin/sh"), "cannot mount a volume on /bin/sh"),
        (TmpfsMount("/bin/sh"), "cannot mount a tmpfs on /bin/sh"),
    ]
    for mount, error in bad:
        with pytest.raises(InvalidArgument, match=error):
            check_image_paths([mount], image)


@pytest.mark.parametrize("target", ["data", "/a/../b", "/a/", "/", "//x"])
def test_mounts_made_in_python_need_clean_targets(target):
    with pytest.raises(InvalidArgument):
        check_targets([TmpfsMount(target)])
