"""Verbs of Docker habits (issue 13): update, system df, system prune, events; real VMs."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest
from oci import busybox_layer
from vm_fixtures import ok, one_line_125

pytestmark = pytest.mark.vm


def host_config(cc, ref: str) -> dict:
    return json.loads(ok(cc("inspect", ref)))[0]["HostConfig"]


def mem_total_kib(cc, ref: str) -> int:
    line = ok(cc("exec", ref, "grep", "MemTotal", "/proc/meminfo"))
    return int(line.split()[1])


def test_update_shrinks_a_running_vm_through_its_balloon(cc, busybox):
    cid = ok(cc("run", "-d", "--no-template", "--memory", "256m", busybox, "sleep", "1000"))
    cid = cid.strip()
    before = mem_total_kib(cc, cid)
    ok(cc("update", "--memory", "160m", cid))
    deadline = time.monotonic() + 120
    while (now := mem_total_kib(cc, cid)) > 170 * 1024 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert now <= 170 * 1024 < before, (before, now)
    assert host_config(cc, cid)["Memory"] == 160 << 20
    one_line_125(cc("update", "--memory", "512m", cid), "never grow")
    assert host_config(cc, cid)["Memory"] == 160 << 20  # a refused update changes nothing


def test_update_cpus_of_a_running_vm_is_a_quota_never_more_vcpus(cc, busybox):
    cid = ok(cc("run", "-d", "--cpus", "1", busybox, "sleep", "1000")).strip()
    one_line_125(cc("update", "--cpus", "2", cid), "vCPUs")
    pid = json.loads(ok(cc("inspect", cid)))[0]["Cocoon"]["VmPid"]
    result = cc("update", "--cpus", "0.25", cid)
    if result.returncode == 125 and b"cgroup" in result.stderr:
        pytest.skip("no writable cgroup cpu controller on this host")
    ok(result)
    assert host_config(cc, cid)["NanoCpus"] == 25 * 10**7
    [group] = [g for g in Path("/sys/fs/cgroup").glob(f"**/cocoon/vm-{pid}") if g.is_dir()]
    quota = group / "cpu.max" if (group / "cpu.max").exists() else group / "cpu.cfs_quota_us"
    assert quota.read_text().split()[0] == "25000"


def test_update_of_a_stopped_container_takes_effect_at_its_start(cc, busybox):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 host CPUs")
    cid = ok(cc("create", "--cpus", "1", busybox, "grep", "-c", "^processor", "/proc/cpuinfo"))
    cid = cid.strip()
    ok(cc("update", "--cpus", "2", "--memory", "128m", cid))
    assert host_config(cc, cid)["Memory"] == 128 << 20
    assert ok(cc("start", "-a", cid)).strip() == "2"


def test_update_restart_policy_applies_from_the_next_exit(cc, busybox):
    cid = ok(cc("run", "-d", busybox, "sh", "-c", "echo run; sleep 5; exit 3")).strip()
    ok(cc("update", "--restart", "on-failure:1", cid))
    assert host_config(cc, cid)["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 1}

    def runs() -> int:
        return ok(cc("logs", cid)).split().count("run")

    deadline = time.monotonic() + 120  # exits 3, restarted once, exits 3 again: stays down
    while runs() < 2 or ok(cc("inspect", "-f", "{{.State.Status}}", cid)).strip() != "exited":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    time.sleep(1.5)
    assert runs() == 2
    removed = ok(cc("create", "--rm", busybox, "true")).strip()
    one_line_125(cc("update", "--restart", "always", removed), "cannot restart")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("update", "CID"), "--memory, --cpus or --restart"),
        (("update", "--restart", "sometimes", "CID"), "--restart 'sometimes'"),
        (("update", "--cpus", "0", "CID"), "--cpus"),
        (("update", "--memory", "1m", "CID"), "at least 64m"),
        (("update", "--memory", "lots", "CID"), "invalid size"),
        (("update", "--cpus", "1", "nobody"), "no such container"),
    ],
)
def test_bad_update_is_one_line_125(cc, busybox, args, needle):
    cid = ok(cc("create", busybox, "true")).strip()
    before = (cc.state / "containers" / cid / "container.json").read_bytes()
    one_line_125(cc(*[cid if a == "CID" else a for a in args]), needle)
    assert (cc.state / "containers" / cid / "container.json").read_bytes() == before


@pytest.fixture
def private(cocoon, tmp_path):
    """cocoon with a state dir of its own: prune -a must not take the session's images."""
    from vm_fixtures import Cocoon, remove_containers

    state = tmp_path / "state"
    own = Cocoon({**cocoon.env, "COCOON_STATE_DIR": str(state)})
    own.load_layout(tmp_path, [busybox_layer()], "localhost/busybox:latest")
    own.load_layout(tmp_path, [busybox_layer()], "localhost/unused:1", Labels={"spare": "1"})
    try:
        yield own
    finally:
        remove_containers(own, "-v")


def usage(cc) -> dict:
    return {row["Type"]: row for row in json.loads(ok(cc("system", "df", "--format", "json")))}


def test_system_df_counts_images_containers_and_volumes(private):
    cc = private
    ok(cc("create", "--name", "idle", "localhost/busybox", "true"))
    ok(cc("run", "-d", "--name", "busy", "localhost/busybox", "sleep", "1000"))
    ok(cc("volume", "create", "dfvol"))
    rows = usage(cc)
    images, containers, volumes = rows["Images"], rows["Containers"], rows["Local Volumes"]
    assert (images["TotalCount"], images["Active"]) == (2, 1)
    assert 0 < images["Reclaimable"] < images["Size"]
    assert (containers["TotalCount"], containers["Active"]) == (2, 1)
    assert 0 < containers["Reclaimable"] < containers["Size"]
    assert (volumes["TotalCount"], volumes["Active"]) == (1, 0)
    assert volumes["Reclaimable"] == volumes["Size"] > 0
    table = ok(cc("system", "df")).splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert table[1].startswith("Images") and "%)" in table[1]


def test_system_prune_removes_what_no_container_needs(private):
    cc = private
    ok(cc("create", "--name", "stopped", "-v", "/scratch", "localhost/busybox", "true"))
    ok(cc("rm", "stopped"))  # its anonymous volume stays, unused
    ok(cc("create", "--name", "idle", "localhost/busybox", "true"))
    ok(cc("run", "-d", "--name", "busy", "localhost/busybox", "sleep", "1000"))
    ok(cc("network", "create", "--subnet", "10.251.0.0/24", "spare"))

    asked = cc("system", "prune", input=b"n\n")
    assert asked.returncode == 0 and b"[y/N]" in asked.stdout
    assert "idle" in ok(cc("ls", "-a"))  # said no: nothing went

    out = ok(cc("system", "prune", "-f"))
    assert "Deleted Containers" in out and "spare" in out and "Total reclaimed space" in out
    names = ok(cc("ls", "-a", "--format", "{{.Names}}")).split()
    assert names == ["busy"]
    assert "spare" not in ok(cc("network", "ls"))
    assert "localhost/unused" in ok(cc("image", "ls"))  # tagged: only -a takes it
    assert usage(cc)["Local Volumes"]["TotalCount"] == 1  # only --volumes takes it

    ok(cc("system", "prune", "-a", "--volumes", "-f"))
    listed = ok(cc("image", "ls"))
    assert "localhost/unused" not in listed and "localhost/busybox" in listed  # busy uses it
    assert usage(cc)["Local Volumes"]["TotalCount"] == 0
    assert ok(cc("ls", "-q")).strip()  # the running container was left alone


def test_builder_prune_and_the_build_cache_in_system_df(private, tmp_path):
    cc = private
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text("FROM localhost/busybox\nRUN echo 1 > /a\nRUN echo 2 > /b\n")
    ok(cc("build", "-t", "localhost/built:1", str(root)))
    cache = usage(cc)["Build Cache"]
    # Both steps' layers, which the image holds: pruning them frees nothing.
    assert (cache["TotalCount"], cache["Reclaimable"]) == (2, 0) and cache["Size"] > 0
    asked = cc("builder", "prune", "-a", input=b"n\n")
    assert asked.returncode == 0 and b"[y/N]" in asked.stdout
    assert "Deleted" not in ok(cc("builder", "prune", "-f"))  # none is unheld
    assert usage(cc)["Build Cache"]["TotalCount"] == 2
    out = ok(cc("builder", "prune", "-a", "-f"))
    assert "Deleted build cache objects" in out and "Total reclaimed space: 0B" in out
    assert usage(cc)["Build Cache"]["TotalCount"] == 0
    again = cc("build", "--progress", "plain", str(root))
    assert again.returncode == 0 and b"(cached)" not in again.stderr  # built anew
    ok(cc("image", "inspect", "localhost/built:1"))  # the image kept its layers


def test_network_prune_keeps_networks_in_use(private):
    cc = private
    ok(cc("network", "create", "--subnet", "10.252.0.0/24", "held"))
    ok(cc("network", "create", "--subnet", "10.253.0.0/24", "idle"))
    ok(cc("create", "--name", "holder", "--network", "held", "localhost/busybox", "true"))
    assert ok(cc("network", "prune", "-f")).split() == ["idle"]
    ok(cc("rm", "holder"))
    assert ok(cc("network", "prune", "-f")).split() == ["held"]
    assert "held" not in ok(cc("network", "ls"))


def event_lines(proc, n: int, timeout: float = 120) -> list[list[str]]:
    """Up to ``n`` lines the stream printed, or fewer once ``timeout`` passed (never a hang)."""
    data, deadline, fd = b"", time.monotonic() + timeout, proc.stdout.fileno()
    while data.count(b"\n") < n and (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            if not (chunk := os.read(fd, 4096)):
                break
            data += chunk
    lines = data.decode().splitlines()[:n]
    return [line.replace("<no value>", "").split() for line in lines]  # exitCode: die only


def test_events_stream_what_the_cli_does(cc, busybox):
    since = str(time.time() - 1)
    fmt = "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}"
    watch = cc.popen("events", "--since", since, "--filter", "container=ev1",
                     "--format", fmt, stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert cc("run", "--rm", "--name", "ev1", busybox, "sh", "-c", "exit 3").returncode == 3
        ok(cc("run", "-d", "--name", "other", busybox, "true"))  # filtered out
        lines = event_lines(watch, 4)
    finally:
        watch.kill()
        watch.wait()
    assert lines == [["create", "ev1"], ["start", "ev1"], ["die", "ev1", "3"], ["destroy", "ev1"]]


def test_events_until_ends_the_stream_and_json_has_dockers_shape(cc, busybox):
    start = time.time()
    cid = ok(cc("create", "--name", "ev2", "-l", "tier=web", "-l", "paint=\x1b[31mred", busybox,
                "true")).strip()  # fmt: skip
    ok(cc("rename", "ev2", "ev3"))
    ok(cc("update", "--memory", "128m", "ev3"))
    out = ok(cc("events", "--since", str(start - 1), "--until", str(time.time() + 1),
                "--filter", "label=tier=web", "--format", "json"))  # fmt: skip
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["Action"] for e in events] == ["create", "rename", "update"]
    first = events[0]
    assert (first["Type"], first["id"], first["Actor"]["ID"]) == ("container", cid, cid)
    assert first["Actor"]["Attributes"]["tier"] == "web" and first["timeNano"] > start * 1e9
    assert events[1]["Actor"]["Attributes"]["oldName"] == "ev2"
    human = ok(cc("events", "--since", "1h", "--until", "0s", "--filter", "event=rename"))
    assert f"container rename {cid} (" in human and "name=ev3" in human, human
    assert "paint=red" in human and "\x1b" not in human  # no escape reaches a terminal


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("events", "--since", "yesterday"), "--since"),
        (("events", "--until", "soon"), "--until"),
        (("events", "--filter", "colour=red"), "invalid filter"),
        (("events", "--format", "{{.Action"), "template"),
    ],
)
def test_bad_events_flags_are_one_line_125(cc, args, needle):
    one_line_125(cc(*args, timeout=30), needle)


def test_the_library_updates_lists_and_reads_events(cc, busybox):
    import cocoon

    client = cocoon.Client()
    start = time.time()
    made = client.containers.create(busybox, "true", name="libev", labels={"k": "v"})
    made.update(mem_limit="96m", cpus=0.5)
    assert made.attrs["HostConfig"]["Memory"] == 96 << 20
    assert made.attrs["HostConfig"]["NanoCpus"] == 5 * 10**8
    assert [c.name for c in client.containers.list(all=True, filters={"label": "k=v"})] == ["libev"]
    seen = client.events(since=start - 1, until=time.time() + 0.5, filters={"container": "libev"},
                         decode=True)  # fmt: skip
    assert [e["Action"] for e in seen] == ["create", "update"]


def test_a_clone_of_a_memory_template_gets_its_settings_and_keeps_its_memory(cc, busybox):
    from test_templates import Templated, running_clones

    tc = Templated(cc)
    ok(tc("run", "--rm", busybox, "true"))  # the template exists before the clone
    script = "cat /etc/resolv.conf; df -k /dev/shm | tail -1; sleep 1000"
    run = tc("run", "-d", "--dns-search", "corp.example", "--shm-size", "12m", busybox,
             "sh", "-c", script)  # fmt: skip
    cid = ok(run).strip()
    assert cid in running_clones(cc.state)
    deadline = time.monotonic() + 60
    while "12288" not in (logs := ok(cc("logs", cid))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "search corp.example" in logs and " 12288 " in logs, logs
    # A balloon in a clone would discard pages of the template's file: refused.
    one_line_125(cc("update", "--memory", "128m", cid), "memory template")
    assert host_config(cc, cid)["Memory"] == 256 << 20
