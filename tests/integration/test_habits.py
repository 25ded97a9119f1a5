"""Docker and Podman habits (issue 13): the bugs a new user met, each with a real VM or tool."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from oci import busybox_layer, write_layout
from procs import monitors_of
from ptys import Terminal
from vm_fixtures import ok, one_line_125, records

pytestmark = pytest.mark.vm


def test_typed_ahead_input_reaches_exec(cc, busybox):
    cid = ok(cc("run", "-d", busybox, "sleep", "1000")).strip()
    term = Terminal(cc, "exec", "-it", cid, "sh", "-c", 'read -t 60 line; echo "got:$line"')
    term.type(b"early\n")  # before the exec's process runs
    code, lines = term.finish()
    assert code == 0 and lines[-1] == "got:early", lines


@pytest.mark.parametrize(("command", "code"), [("no-such-command", 127), ("/etc/passwd", 126)])
def test_detached_command_that_cannot_start_exits_like_docker(cc, busybox, command, code):
    result = cc("run", "-d", busybox, command)
    assert result.returncode == code, result.stderr.decode()
    assert command in result.stderr.decode()


def test_zstd_image_runs(cc, tmp_path):
    ref = "localhost/zstd:1"
    write_layout(tmp_path / "z", [busybox_layer()], ref=ref, compression="zstd")
    ok(cc("image", "load", str(tmp_path / "z")))
    result = cc("run", "--rm", ref, "echo", "from zstd")
    assert (result.returncode, result.stdout) == (0, b"from zstd\n"), result.stderr.decode()


def test_one_id_stored_compressed_two_ways_is_not_run_silently(cc, tmp_path):
    for compression in ("gzip", "none"):
        layout = tmp_path / compression
        write_layout(layout, [busybox_layer()], ref=f"localhost/twice:{compression}",
                     compression=compression)  # fmt: skip
        ok(cc("image", "load", str(layout)))
    images = json.loads(ok(cc("image", "ls", "--format", "json")))
    (image_id,) = {i["id"] for i in images if i["repository"] == "localhost/twice"}
    before = records(cc)
    one_line_125(cc("run", "--rm", image_id, "true"), "variants")
    assert records(cc) == before
    result = cc("run", "--rm", "localhost/twice:none", "echo", "picked")
    assert result.stdout == b"picked\n"


def test_save_several_images_loads_in_podman(cc, busybox, tmp_path):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    ok(cc("image", "tag", busybox, "localhost/second:2"))
    ok(cc("image", "save", busybox, "localhost/second:2", "-o", str(tmp_path / "two.tar")))
    # podman wants a short runroot: private folders under /tmp, not pytest's.
    private = tempfile.mkdtemp(prefix="ccp-", dir="/tmp")
    podman = ["podman", "--cgroup-manager=cgroupfs", "--root", f"{private}/root",
              "--runroot", f"{private}/run"]  # fmt: skip
    try:
        loaded = subprocess.run([*podman, "load", "-i", str(tmp_path / "two.tar")],
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        listed = subprocess.run([*podman, "images", "--format", "{{.Repository}}:{{.Tag}}"],
                                capture_output=True, text=True, check=True)  # fmt: skip
        assert sorted(listed.stdout.split()) == ["localhost/busybox:latest", "localhost/second:2"]
    finally:
        # podman's store has read-only layers and mounts: its own rm, then ours.
        subprocess.run([*podman, "rmi", "-a", "-f"], capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", private], check=False)


def test_save_to_a_pipe_and_load_from_one(cc, busybox, tmp_path):
    other = dict(cc.env, COCOON_STATE_DIR=str(tmp_path / "elsewhere"))
    save = cc.popen("image", "save", busybox, stdout=subprocess.PIPE)
    load = subprocess.run(cc.argv("image", "load", "-"), env=other, stdin=save.stdout,
                          capture_output=True, timeout=300)  # fmt: skip
    save.stdout.close()
    assert save.wait(60) == 0
    assert load.returncode == 0, load.stderr.decode()
    assert busybox.encode() in load.stdout


def test_empty_pipe_is_one_line(cc):
    one_line_125(cc("image", "load", input=b""), "not a tar file")
    one_line_125(cc("image", "load", "-i", "/nonexistent.tar"), "no such file")
    one_line_125(cc("image", "save", "-o", "-", "localhost/none:1"), "not found")


def test_dir_layout_loads_and_runs(cc, busybox, tmp_path):
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    layout = tmp_path / "oci"
    write_layout(layout, [busybox_layer()], ref="x", config={"Cmd": ["echo", "from dir"]})
    subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:x", f"dir:{tmp_path / 'dir'}"],
                   check=True, timeout=120)  # fmt: skip
    out = ok(cc("image", "load", str(tmp_path / "dir")))
    short_id = out.split()[2]
    result = cc("run", "--rm", short_id)
    assert (result.returncode, result.stdout) == (0, b"from dir\n"), result.stderr.decode()


def inspect(cc, ref: str, template: str) -> str:
    return ok(cc("inspect", "-f", template, ref)).strip()


def test_labels_filters_and_templates(cc, busybox, tmp_path):
    labels = tmp_path / "labels"
    labels.write_text("# a comment\ntier=db\nteam=core\n")
    web = ok(cc("run", "-d", "--name", "web", "-l", "tier=web", "-l", "public", busybox,
                "sleep", "1000")).strip()  # fmt: skip
    ok(cc("create", "--name", "db", "--label-file", str(labels), "-l", "team=data", busybox))

    def names(*flags: str) -> list[str]:
        return ok(cc("ls", "-a", *flags, "--format", "{{.Names}}")).split()

    assert names("--filter", "label=tier=web") == ["web"]
    assert names("--filter", "label=public") == ["web"]
    assert sorted(names("--filter", "label=tier")) == ["db", "web"]
    assert names("--filter", "label=team=data") == ["db"]  # a flag wins over the file
    assert names("-f", "status=created") == ["db"]
    assert names("-f", "status=running", "-f", "name=we") == ["web"]
    assert names("-f", f"id={web[:6]}") == ["web"]
    assert sorted(names("-f", f"ancestor={busybox}")) == ["db", "web"]
    assert ok(cc("ls", "--filter", "status=exited", "-q")) == ""

    status = inspect(cc, "web", "{{.State.Status}} {{.State.Running}} {{.Name}}")
    assert status == "running true /web"
    assert inspect(cc, "db", "{{json .Config.Labels}}") == '{"team":"data","tier":"db"}'
    table = ok(cc("ls", "--format", "table {{.Names}}\\t{{.State}}")).splitlines()
    assert table[0].split() == ["NAMES", "STATE"] and table[1].split() == ["web", "running"]
    (row,) = [json.loads(line) for line in ok(cc("ls", "--format", "{{json .}}")).splitlines()]
    assert row["ID"] == web[:12] and row["Labels"] == "public=,tier=web"
    details = json.loads(ok(cc("inspect", "web")))[0]
    for key in ("Id", "Name", "State", "Config", "HostConfig", "NetworkSettings", "Mounts"):
        assert key in details
    assert details["State"]["Pid"] > 0 and details["State"]["StartedAt"] > details["Created"]

    images = ok(cc("image", "ls", "-f", "reference=localhost/busy*", "--format",
                   "{{.Repository}}:{{.Tag}}")).split()  # fmt: skip
    assert busybox in images and all(i.startswith("localhost/busy") for i in images)
    assert ok(cc("image", "ls", "-f", "label=none-such", "-q")) == ""


def test_stop_signal_timeout_and_cidfile(cc, busybox, tmp_path):
    cidfile = tmp_path / "cid"
    script = 'trap "echo got-int; exit 9" INT; while :; do sleep 0.1; done'
    ok(cc("run", "-d", "--name", "sig", "--stop-signal", "SIGINT", "--stop-timeout", "30",
          "--cidfile", str(cidfile), "--init", busybox, "sh", "-c", script))  # fmt: skip
    assert inspect(cc, "sig", "{{.Id}}") == cidfile.read_text()
    assert inspect(cc, "sig", "{{.Config.StopSignal}}") == "SIGINT"
    ok(cc("stop", "sig"))
    assert inspect(cc, "sig", "{{.State.ExitCode}}") == "9"
    # The file exists now: Docker refuses it rather than overwrite another's id.
    before = records(cc)
    one_line_125(cc("run", "-d", "--cidfile", str(cidfile), busybox, "true"), "exists")
    assert records(cc) == before


def test_free_host_ports_for_p_cport_and_publish_all(cc, busybox, tmp_path):
    ref = "localhost/exposing:1"
    write_layout(tmp_path / "e", [busybox_layer()], ref=ref,
                 config={"ExposedPorts": {"80/tcp": {}}})  # fmt: skip
    ok(cc("image", "load", str(tmp_path / "e")))
    ok(cc("run", "-d", "--name", "ports", "--network", "user", "-P", "-p", "127.0.0.1::81",
          ref, "httpd", "-f", "-p", "80", "-h", "/etc"))  # fmt: skip
    ports = json.loads(inspect(cc, "ports", "{{json .NetworkSettings.Ports}}"))
    assert set(ports) == {"80/tcp", "81/tcp"}
    assert ports["81/tcp"][0]["HostIp"] == "127.0.0.1"
    for (binding,) in ports.values():
        assert 0 < int(binding["HostPort"]) < 65536


def test_pull_never_does_not_pull(cc):
    before = records(cc)
    one_line_125(cc("run", "--pull", "never", "localhost/nowhere:1", "true"), "not found")
    assert records(cc) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "-l", "a=b", "--label-file", "/nonexistent/labels", "IMG", "true"), "not found"),
        (("run", "--stop-signal", "SIGNOPE", "IMG", "true"), "invalid signal"),
        (("create", "--stop-timeout", "soon", "IMG"), "seconds"),
        (("run", "--pull", "sometimes", "IMG", "true"), "invalid choice"),
        (("run", "-p", "99999", "IMG", "true"), "invalid port"),
        (("ls", "--filter", "colour=red"), "invalid filter"),
        (("ls", "--filter", "status=sleeping"), "invalid status"),
        (("ls", "--filter", "nokey"), "KEY=VALUE"),
        (("image", "ls", "--filter", "dangling=maybe"), "dangling"),
        (("ls", "--format", "{{.Names"), "template"),
        (("inspect", "-f", "{{nosuch .Id}}", "x"), "template"),
        (("image", "ls", "--format", "{{if .ID}}"), "template"),
        (("image", "load", "-i", "a.tar", "b.tar"), "not both"),
        (("restart", "nobody"), "no such container"),
        (("pause", "nobody"), "no such container"),
        (("unpause", "nobody"), "no such container"),
        (("rename", "nobody", "x"), "no such container"),
        (("port", "nobody"), "no such container"),
        (("top", "nobody"), "no such container"),
        (("attach", "nobody"), "no such container"),
        (("exec", "-d", "--env-file", "/nonexistent/env", "x", "true"), "no such container"),
        (("pull", "localhost:1/x:1:2"), "invalid"),
        (("rmi", "localhost/none:1"), "not found"),
        (("tag", "localhost/none:1", "localhost/other:1"), "not found"),
        (("save", "localhost/none:1", "-o", "/tmp/cct-none.tar"), "not found"),
        (("load", "-i", "/nonexistent.tar"), "no such file"),
        (("images", "--filter", "colour=red"), "invalid filter"),
        (("login",), "required"),
        (("start",), "--all-restartable"),
        (("start", "--all-restartable", "x"), "--all-restartable"),
        (("run", "--restart", "sometimes", "IMG", "true"), "--restart"),
        (("run", "--restart", "always:3", "IMG", "true"), "only on-failure"),
        (("run", "--rm", "--restart", "always", "IMG", "true"), "conflict"),
        (("run", "--health-cmd", "true", "--health-interval", "soon", "IMG", "true"), "duration"),
        (("run", "--health-cmd", "true", "--health-retries", "0", "IMG", "true"), "retries"),
        (("run", "--no-healthcheck", "--health-cmd", "true", "IMG", "true"), "conflicts"),
        (("push", "localhost/none:1"), "not found"),
    ],
)
def test_bad_input_is_one_line_125_and_leaves_nothing(cc, busybox, args, needle):
    before = records(cc)
    result = cc(*[busybox if a == "IMG" else a for a in args])
    one_line_125(result, needle)
    assert records(cc) == before and not cc.vms()


COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done"


def test_pause_unpause_freezes_the_vm(cc, busybox):
    ok(cc("run", "-d", "--name", "frozen", busybox, "sh", "-c", COUNTER))
    wait_for(cc, "frozen", "cat /tmp/n")
    ok(cc("pause", "frozen"))
    assert inspect(cc, "frozen", "{{.State.Status}} {{.State.Paused}}") == "paused true"
    assert "(Paused)" in ok(cc("ls", "--format", "{{.Status}}"))
    one_line_125(cc("exec", "frozen", "true"), "paused")
    one_line_125(cc("pause", "frozen"), "already paused")
    time.sleep(1)
    ok(cc("unpause", "frozen"))
    before = int(ok(cc("exec", "frozen", "cat", "/tmp/n")))
    time.sleep(1)
    assert int(ok(cc("exec", "frozen", "cat", "/tmp/n"))) > before  # it runs on
    one_line_125(cc("unpause", "frozen"), "not paused")
    ok(cc("pause", "frozen"))
    ok(cc("stop", "-t", "0", "frozen"))  # a paused container still stops
    assert inspect(cc, "frozen", "{{.State.Status}}") == "exited"


def wait_for(cc, ref: str, command: str) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        result = cc("exec", ref, "sh", "-c", command)
        if result.returncode == 0:
            return result.stdout.decode()
        time.sleep(0.2)
    raise AssertionError(f"{command!r} never succeeded in {ref}")


def test_exec_detached_and_env_file(cc, busybox, tmp_path):
    env = tmp_path / "env"
    env.write_text("FROM_FILE=yes\n")
    ok(cc("run", "-d", "--name", "bg", busybox, "sleep", "1000"))
    assert ok(cc("exec", "-d", "bg", "sh", "-c", "sleep 0.5; echo done > /tmp/bg")) == ""
    # grep, not cat: the shell creates /tmp/bg before echo writes to it.
    assert wait_for(cc, "bg", "grep done /tmp/bg") == "done\n"
    assert ok(cc("exec", "--env-file", str(env), "bg", "sh", "-c", "echo $FROM_FILE")) == "yes\n"
    assert cc("exec", "-d", "bg", "no-such-command").returncode == 127
    top = ok(cc("top", "bg"))
    assert "PID" in top and "sleep 1000" in top


def test_restart_rename_port_attach(cc, busybox):
    ok(cc("run", "-d", "--name", "old", "--network", "user", "-p", "127.0.0.1::80",
          "-p", "127.0.0.1::53/udp", busybox, "sh", "-c", "echo boot; sleep 1000"))  # fmt: skip
    started = inspect(cc, "old", "{{.State.StartedAt}}")
    ok(cc("rename", "old", "new"))
    one_line_125(cc("inspect", "old"), "no such container")
    one_line_125(cc("rename", "new", "bad/name"), "invalid container name")
    lines = ok(cc("port", "new")).splitlines()
    assert [line.split(" -> ")[0] for line in lines] == ["80/tcp", "53/udp"]
    assert ok(cc("port", "new", "53/udp")).startswith("127.0.0.1:")
    one_line_125(cc("port", "new", "81"), "no public port")
    ok(cc("restart", "-t", "0", "new"))
    assert inspect(cc, "new", "{{.State.Status}}") == "running"
    assert inspect(cc, "new", "{{.State.StartedAt}}") > started
    attach = cc.popen("attach", "--no-stdin", "new", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1)
        ok(cc("kill", "-s", "TERM", "new"))
        assert attach.wait(120) == 143
    finally:
        attach.kill()


def runs_logged(cc, ref: str) -> int:
    return cc("logs", ref).stdout.count(b"run\n")


def wait_until(check, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.2)


def test_restart_on_failure_with_a_limit(cc, busybox):
    ok(cc("run", "-d", "--name", "flaky", "--restart", "on-failure:2", busybox,
          "sh", "-c", "echo run; exit 3"))  # fmt: skip
    assert inspect(cc, "flaky", "{{json .HostConfig.RestartPolicy}}") == (
        '{"MaximumRetryCount":2,"Name":"on-failure"}'
    )
    # The first run and two restarts, each after a back-off; then it stays exited.
    wait_until(lambda: runs_logged(cc, "flaky") == 3 and not monitors_of(cc.state))
    assert inspect(cc, "flaky", "{{.State.Status}} {{.State.ExitCode}}") == "exited 3"


def test_restart_always_until_stopped(cc, busybox):
    ok(cc("run", "-d", "--name", "again", "--restart", "always", busybox,
          "sh", "-c", "echo run; sleep 0.5"))  # fmt: skip
    wait_until(lambda: runs_logged(cc, "again") >= 3)  # exit 0 restarts too
    ok(cc("stop", "again"))  # running or waiting to restart: either way, no more runs
    wait_until(lambda: not monitors_of(cc.state))
    settled = runs_logged(cc, "again")
    time.sleep(2)
    assert runs_logged(cc, "again") == settled
    assert inspect(cc, "again", "{{.State.Status}}") == "exited"


def test_restart_no_and_a_stopped_container_stay_down(cc, busybox):
    ok(cc("run", "-d", "--name", "once", busybox, "sh", "-c", "echo run; exit 1"))
    ok(cc("run", "-d", "--name", "stopped", "--restart", "always", busybox, "sleep", "1000"))
    ok(cc("stop", "-t", "0", "stopped"))
    wait_until(lambda: not monitors_of(cc.state))
    assert runs_logged(cc, "once") == 1
    assert inspect(cc, "stopped", "{{.State.Status}}") == "exited"


def health(cc, ref: str) -> str:
    return inspect(cc, ref, "{{with .State.Health}}{{.Status}}{{end}}")


def test_health_status_moves_from_starting_to_healthy_to_unhealthy(cc, busybox):
    ok(cc("run", "-d", "--name", "doc", "--health-cmd", "test -f /tmp/ok",
          "--health-interval", "300ms", "--health-retries", "2", "--health-timeout", "5s",
          busybox, "sleep", "1000"))  # fmt: skip
    assert health(cc, "doc") == "starting"
    waiter = cc.popen("wait", "--condition", "healthy", "doc", stdout=subprocess.PIPE)
    ok(cc("exec", "doc", "touch", "/tmp/ok"))
    assert waiter.communicate(timeout=120)[0] == b"doc\n" and waiter.returncode == 0
    assert health(cc, "doc") == "healthy"
    assert "(healthy)" in ok(cc("ls", "--format", "{{.Status}}"))
    ok(cc("exec", "doc", "rm", "/tmp/ok"))
    wait_until(lambda: health(cc, "doc") == "unhealthy")
    details = json.loads(inspect(cc, "doc", "{{json .State.Health}}"))
    assert details["FailingStreak"] >= 2 and details["Log"][-1]["ExitCode"] == 1


def test_image_healthcheck_and_no_healthcheck(cc, tmp_path):
    ref = "localhost/checked:1"
    check = {"Test": ["CMD-SHELL", "true"], "Interval": 300_000_000, "Retries": 1}
    write_layout(tmp_path / "h", [busybox_layer()], ref=ref, config={"Healthcheck": check})
    ok(cc("image", "load", str(tmp_path / "h")))
    ok(cc("run", "-d", "--name", "imgcheck", ref, "sleep", "1000"))
    ok(cc("run", "-d", "--name", "nocheck", "--no-healthcheck", ref, "sleep", "1000"))
    wait_until(lambda: health(cc, "imgcheck") == "healthy")
    assert health(cc, "nocheck") == ""
    one_line_125(cc("wait", "--condition", "healthy", "nocheck"), "no health check")


def test_always_comes_back_after_its_monitor_and_vm_died(cc, busybox):
    # A host reboot, as the container sees it: monitor and VM gone at once.
    ok(cc("run", "-d", "--name", "always", "--restart", "always", busybox, "sleep", "1000"))
    ok(cc("run", "-d", "--name", "unless", "--restart", "unless-stopped", busybox, "sleep", "1000"))
    ok(cc("run", "-d", "--name", "byhand", "--restart", "unless-stopped", busybox, "sleep", "1000"))
    ok(cc("stop", "-t", "0", "byhand"))
    for pid in monitors_of(cc.state) + cc.vms():
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: "running" not in ok(cc("ls", "-a", "--format", "{{.State}}")))
    started = ok(cc("start", "--all-restartable")).split()
    assert sorted(started) == ["always", "unless"]
    assert inspect(cc, "always", "{{.State.Status}}") == "running"
    assert inspect(cc, "byhand", "{{.State.Status}}") == "exited"
