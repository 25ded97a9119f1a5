"""The service's translations of the Engine API's wire formats (no VM needed)."""

from __future__ import annotations

import json

import pytest

from cocoon.errors import InvalidArgument, Unsupported
from cocoon.service import create, streams
from cocoon.service.params import filters as _filters
from cocoon.volume.mounts import from_flags


def test_create_body_becomes_run_options():
    image, opts = create.options(
        {
            "Image": "busybox",
            "Cmd": ["-c", "echo hi"],
            "Entrypoint": ["sh"],
            "Env": ["A=1"],
            "WorkingDir": "/tmp",
            "User": "1:2",
            "Tty": True,
            "OpenStdin": True,
            "Labels": {"k": "v"},
            "HostConfig": {
                "AutoRemove": True,
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                                 "53/udp": [{"HostPort": ""}]},
                "Memory": 256 << 20,
                "NanoCpus": 1_500_000_000,
                "NetworkMode": "default",
                "ExtraHosts": ["db:10.0.0.5"],
                "Dns": ["1.1.1.1"],
                "DnsSearch": ["corp.example"],
                "DnsOptions": ["ndots:2"],
                "ShmSize": 64 << 20,
                "Ulimits": [{"Name": "nofile", "Soft": 512, "Hard": 1024}],
                "GroupAdd": ["wheel", "1234"],
                "RestartPolicy": {"Name": "no"},
            },
        },
        "named",
        "linux/amd64",
    )  # fmt: skip
    assert image == "busybox"
    assert (opts.entrypoint, opts.command) == ("sh", ["-c", "echo hi"])
    assert opts.env == ["A=1"] and opts.workdir == "/tmp" and opts.user == "1:2"
    assert opts.tty == create.DEFAULT_TTY and opts.interactive and opts.remove
    assert opts.publish == ["127.0.0.1:8080:80/tcp", "53/udp"]
    assert (opts.memory, opts.cpus, opts.network) == (f"{256 << 20}b", 1.5, None)
    assert (opts.dns_search, opts.dns_options) == (["corp.example"], ["ndots:2"])
    assert opts.shm_size == str(64 << 20) and opts.platform == "linux/amd64"
    assert list(opts.ulimits) == [("nofile", 512, 1024)] and list(opts.group_add) == [
        "wheel",
        "1234",
    ]
    assert opts.add_hosts == ["db:10.0.0.5"] and opts.dns == ["1.1.1.1"]
    assert opts.labels == {"k": "v"} and opts.name == "named" and opts.pull == "never"


def test_update_body_becomes_update_arguments():
    # The docker CLI sends every resource field; only those set count.
    body = {"Memory": 512 << 20, "CpuShares": 0, "CpusetCpus": "", "NanoCpus": 0,
            "CpuQuota": 50_000, "CpuPeriod": 0,
            "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}  # fmt: skip
    assert create.update(body) == {"memory": f"{512 << 20}b", "cpus": 0.5, "policy": None}
    policy = {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}
    assert create.update(policy)["policy"] == "on-failure:2"
    with pytest.raises(Unsupported, match="BlkioWeight"):
        create.update({"BlkioWeight": 300})


@pytest.mark.parametrize(
    "host",
    [{"Privileged": True}, {"NetworkMode": "host"}, {"VolumesFrom": ["other"]}],
)  # fmt: skip
def test_settings_cocoon_cannot_honour_are_refused_by_name(host):
    with pytest.raises(Unsupported) as e:
        create.options({"Image": "busybox", "HostConfig": host}, None)
    assert next(iter(host)) in str(e.value) or "host" in str(e.value)


def test_storage_restart_and_health_are_the_cli_flags_own(tmp_path):
    _, opts = create.options(
        {
            "Image": "busybox",
            "Volumes": {"/anon": {}},
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000,
                            "Retries": 4},
            "HostConfig": {
                "Binds": [f"{tmp_path}:/src:ro", "data:/data"],
                "Mounts": [{"Type": "tmpfs", "Target": "/run",
                            "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o755}},
                           {"Type": "volume", "Source": "cache", "Target": "/cache",
                            "ReadOnly": True, "VolumeOptions": {"NoCopy": True}}],
                "Tmpfs": {"/tmp": "size=64m"},
                "ReadonlyRootfs": True,
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            },
        },
        None,
    )  # fmt: skip
    assert opts.mounts == from_flags(
        [f"{tmp_path}:/src:ro", "data:/data", "/anon"],
        ["type=tmpfs,target=/run,tmpfs-size=1048576,tmpfs-mode=755",
         "type=volume,source=cache,target=/cache,readonly,volume-nocopy"],
        ["/tmp:size=64m"],
    )  # fmt: skip
    assert opts.read_only and opts.restart == "on-failure:3"
    assert opts.healthcheck == {"test": ["CMD-SHELL", "true"], "interval": 2.0, "retries": 4}


@pytest.mark.parametrize(
    "host",
    [{"Binds": ["relative:dir"]}, {"Mounts": [{"Type": "bind", "Target": "/x"}]},
     {"Mounts": [{"Type": "tmpfs", "Target": "/a,b"}]}, {"Tmpfs": {"/": ""}},
     {"RestartPolicy": {"Name": "sometimes"}}, {"Mounts": {"Type": "bind"}}],
)  # fmt: skip
def test_bad_storage_and_restart_settings_are_invalid_arguments(host):
    with pytest.raises(InvalidArgument):
        create.options({"Image": "busybox", "HostConfig": host}, None)


def test_bad_create_bodies_are_invalid_arguments():
    for body in ({}, {"Image": ""}, {"Image": "x", "Env": "A=1"}, {"Image": "x", "HostConfig": []}):
        with pytest.raises(InvalidArgument):
            create.options(body, None)


def test_every_endpoint_comes_with_its_aliases():
    body = {"NetworkingConfig": {"EndpointsConfig": {"p_front": {"Aliases": ["web", "w"]},
                                                     "p_back": {}}}}  # fmt: skip
    assert create.endpoints(body) == {"p_front": ["web", "w"], "p_back": []}
    bad = {"NetworkingConfig": {"EndpointsConfig": {"a": {"Aliases": "web"}}}}
    with pytest.raises(InvalidArgument):
        create.endpoints(bad)


def test_frames_carry_stream_and_length():
    assert streams.frame(streams.STDERR, b"oops") == b"\x02\x00\x00\x00\x00\x00\x00\x04oops"
    assert streams.encoder(tty=True)(streams.STDOUT, b"raw") == b"raw"


def test_filters_in_both_of_dockers_shapes():
    assert _filters(json.dumps({"label": ["a=b"], "status": {"running": True}})) == {
        "label": ["a=b"],
        "status": ["running"],
    }
    with pytest.raises(InvalidArgument):
        _filters("[1]")


@pytest.mark.parametrize(
    "body",
    [{"WorkingDir": 5}, {"User": ["root"]}, {"HostConfig": {"NanoCpus": "2"}},
     {"HostConfig": {"Memory": -1}}, {"HostConfig": {"Memory": True}}, {"Labels": ["a"]},
     {"HostConfig": {"PortBindings": {"80/tcp": ["8080"]}}}, {"StopSignal": 9}],
)  # fmt: skip
def test_hostile_field_types_are_invalid_arguments_not_crashes(body):
    with pytest.raises(InvalidArgument):
        create.options({"Image": "busybox", **body}, None)


def test_a_string_command_is_one_argument_as_in_the_api():
    _, opts = create.options({"Image": "busybox", "Cmd": "echo hi"}, None)
    assert opts.command == ["echo hi"]


def test_times_are_seconds_since_the_epoch():
    from cocoon.service.params import seconds

    assert seconds(None) == 0 and seconds("12.5") == 12.5
    with pytest.raises(InvalidArgument):
        seconds("yesterday")


def test_endpoints_past_the_network_mode_become_more_networks(monkeypatch):
    from cocoon.container.options import RunOptions
    from cocoon.network import ipam
    from cocoon.service import networks

    monkeypatch.setenv("COCOON_NETWORK", "none")
    ipam.create("p_back", "10.71.0.0/24")
    opts, names = networks.endpoints(RunOptions(), {"bridge": ["web"]})
    assert opts.more_networks == [] and names == {"none": ["web"]}
    opts, names = networks.endpoints(
        RunOptions(network="cocoon0"), {"cocoon0": [], "p_back": ["db"]}
    )
    assert opts.more_networks == ["p_back"] and names == {"p_back": ["db"]}
