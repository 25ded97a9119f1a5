"""What a memory template and its clones ask of QEMU, and what makes a new template."""

from __future__ import annotations

import pytest

from cocoon.agent.protocol import ConfigField, GuestConfig
from cocoon.errors import InvalidArgument
from cocoon.vm import qemu
from cocoon.vm import template as templates
from cocoon.vm.machine import Disk, MachineSpec, MemoryFile, SharedFolder, Tap, Unplugged


@pytest.fixture
def spec(tmp_path, monkeypatch) -> MachineSpec:
    monkeypatch.setenv("COCOON_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    for name in ("vmlinux", "initrd"):
        (tmp_path / name).write_bytes(name.encode())
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"\0" * 4096)
    return MachineSpec(
        kernel=tmp_path / "vmlinux",
        initrd=tmp_path / "initrd",
        accel="tcg",
        disks=[Disk(disk)],
        control_socket=tmp_path / "vmm.sock",
    )


def option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_every_vm_has_memfd_ram_a_small_code_cache_and_free_page_reporting(spec):
    argv = qemu.command(spec)
    assert option(argv, "-object") == ["memory-backend-memfd,id=mem0,size=256M,share=on"]
    assert "memory-backend=mem0" in option(argv, "-M")[0]
    assert "tb-size=16" in option(argv, "-accel")[0]
    assert "virtio-balloon-device,free-page-reporting=on" in option(argv, "-device")
    assert "-incoming" not in argv


def test_a_clone_maps_the_template_privately_and_never_discards_into_it(spec, tmp_path):
    clone = templates.clone(spec, templates.Template(tmp_path / "t"))
    argv = qemu.command(clone)
    ram = f"mem-path={tmp_path / 't' / 'ram'},share=off"
    assert option(argv, "-object") == [f"memory-backend-file,id=mem0,size=256M,{ram}"]
    assert option(argv, "-incoming") == ["defer"]
    assert "virtio-balloon-device,free-page-reporting=off" in option(argv, "-device")
    # Its kernel is in the template's RAM: QEMU need not read (and keep) it.
    assert not {"-kernel", "-initrd", "-append"} & set(argv)
    assert clone.restore == tmp_path / "t" / "state"
    # It never boots: a smaller translated-code cache costs it nothing.
    assert "tb-size=12" in option(argv, "-accel")[0]


def test_a_template_writes_its_own_file_and_its_nic_has_no_backend(spec, tmp_path):
    spec.memory_file = MemoryFile(tmp_path / "ram", shared=True)
    spec.net = Unplugged("02:00:00:00:00:01")
    argv = qemu.command(spec)
    assert option(argv, "-object")[0].endswith("share=on")
    assert "-netdev" not in argv
    assert "virtio-net-device,mac=02:00:00:00:00:01" in option(argv, "-device")


def test_the_shape_follows_every_input(spec, tmp_path):
    first = templates.shape(spec)
    spec.memory_mib = 300
    assert templates.shape(spec) != first
    spec.memory_mib = 256
    assert templates.shape(spec) == first
    spec.initrd.write_bytes(b"another agent")
    assert templates.shape(spec)["initrd"] != first["initrd"]


def test_the_guest_is_told_the_tsc_rate_and_the_shape_follows_the_command_line(
    spec, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("COCOON_RUN_DIR", str(run))
    (run / "tsc-khz").write_text("2500000")
    assert "tsc_early_khz=2500000" in qemu.kernel_cmdline(spec).split()
    first = templates.shape(spec)
    (run / "tsc-khz").write_text("2600000")  # another host boot, another rate
    assert templates.shape(spec)["cmdline"] != first["cmdline"]
    (run / "tsc-khz").write_text("0")  # no invariant TSC: the guest measures it itself
    assert "tsc_early_khz" not in qemu.kernel_cmdline(spec)
    spec.accel = "kvm"
    (run / "tsc-khz").write_text("2500000")
    assert "tsc_early_khz" not in qemu.kernel_cmdline(spec)  # kvm-clock keeps time there


def test_the_switch_means_a_cold_boot(spec, monkeypatch):
    monkeypatch.setattr(templates.os, "geteuid", lambda: 0)
    assert templates.why_not(spec) is None
    assert "off" in templates.why_not(spec, wanted=False)
    monkeypatch.setenv("COCOON_TEMPLATE", "0")
    assert "off" in templates.why_not(spec)


def test_disks_and_shares_are_slots_whose_backing_is_not_the_shape(spec, tmp_path, monkeypatch):
    """A volume's disk and a share's folder come from the clone's command
    line; the number of them, and the tags the guest read, make the shape."""
    monkeypatch.setattr(templates.os, "geteuid", lambda: 0)
    small, large = tmp_path / "small.ext4", tmp_path / "large.ext4"
    small.write_bytes(b"\0" * 4096)
    large.write_bytes(b"\0" * 8192)
    plain = templates.shape(spec)
    spec.disks.append(Disk(small, readonly=True, serial="cocoon-vol0"))
    spec.shares = [SharedFolder(tmp_path, "cocoon.m0")]
    assert templates.why_not(spec) is None
    with_volumes = templates.shape(spec)
    assert with_volumes != plain
    spec.disks[1] = Disk(large, serial="cocoon-vol0")
    spec.shares = [SharedFolder(tmp_path / "elsewhere", "cocoon.m0", readonly=True)]
    assert templates.shape(spec) == with_volumes
    spec.shares.append(SharedFolder(tmp_path, "cocoon.m1"))
    assert templates.shape(spec) != with_volumes
    # Nor is the root's size: a clone's agent is told it in CONFIG.
    spec.shares.pop()
    spec.disks[0].path.write_bytes(b"\0" * 12288)
    assert templates.shape(spec) == with_volumes
    assert templates.root_size(spec) is None  # a cold boot: the device's size is right
    clone = templates.clone(spec, templates.Template(tmp_path / "t"))
    assert templates.root_size(clone) == 12288
    sent = GuestConfig(root_size=12288).encode()
    assert sent == bytes([ConfigField.ROOT_SIZE, 0, 0, 0, 8]) + (12288).to_bytes(8, "big")

    monkeypatch.setattr(templates, "SLOT_BYTES", 8192)
    assert "disk slot" in templates.why_not(spec)


def test_more_devices_than_microvm_has_slots_is_one_clear_error(spec, tmp_path):
    spec.agent_socket = tmp_path / "agent.sock"
    spec.shares = [SharedFolder(tmp_path, f"cocoon.m{i}") for i in range(4)]
    qemu.command(spec)  # root, 4 shares, port, RNG, balloon: all 8 slots
    spec.shares.append(SharedFolder(tmp_path, "cocoon.m4"))
    with pytest.raises(InvalidArgument, match="8 device slots"):
        qemu.command(spec)


def test_config_carries_the_mac_and_entropy():
    payload = GuestConfig(mac="02:aa:bb:cc:dd:ee", entropy=b"\x01" * 32).encode()
    assert payload[:11] == bytes([ConfigField.MAC, 0, 0, 0, 6, 2, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE])
    assert payload[11:16] == bytes([ConfigField.ENTROPY, 0, 0, 0, 32])
    for bad in ("01:00:00:00:00:00", "02:00:00:00:00", "zz:00:00:00:00:00"):
        with pytest.raises(InvalidArgument):
            GuestConfig(mac=bad).encode()


def test_warm_without_root_says_why(monkeypatch):
    from cocoon.container import warm
    from cocoon.errors import ExternalError

    monkeypatch.setattr(templates.os, "geteuid", lambda: 1000)
    with pytest.raises(ExternalError, match="needs root"):
        warm.warm()


def test_each_network_is_a_card_of_its_own_and_counts_against_the_slots(spec, tmp_path):
    spec.agent_socket = tmp_path / "agent.sock"
    spec.net, spec.more_nets = Tap(5, "02:42:0a:51:00:02"), (Tap(6, "02:42:0a:52:00:02"),)
    argv = qemu.command(spec)
    assert option(argv, "-netdev") == ["tap,id=n0,fd=5", "tap,id=n1,fd=6"]
    cards = [d for d in option(argv, "-device") if d.startswith("virtio-net-device")]
    assert cards == ["virtio-net-device,netdev=n0,mac=02:42:0a:51:00:02",
                     "virtio-net-device,netdev=n1,mac=02:42:0a:52:00:02"]  # fmt: skip
    spec.more_nets += tuple(Tap(7 + i, f"02:42:0a:53:00:0{i}") for i in range(3))
    with pytest.raises(InvalidArgument, match=r"8 device slots.*5 network cards"):
        qemu.command(spec)


def test_two_cards_are_another_shape(spec):
    spec.net = Tap(5, "02:42:0a:51:00:02")
    one = templates.shape(spec)
    spec.more_nets = (Tap(6, "02:42:0a:52:00:02"),)
    assert templates.shape(spec) == {**one, "more_nics": 1}
    spec.more_nets = (Unplugged("02:00:00:00:00:02"),)
    assert "network card without a backend" in templates.why_not(spec)
