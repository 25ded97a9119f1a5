"""The Docker Engine API service driven by Debian's docker CLI and docker-py, with real VMs.

Each test talks to a ``cocoon system service`` the test module started on a
private socket over the session's state folder; containers it makes are
ordinary cocoon containers, so ``cocoon ls`` is the cross-check.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import tarfile
import time

import pytest
from engine import DOCKER, Service
from registries import Registry, skopeo_copy
from vm_fixtures import ok

pytestmark = pytest.mark.vm

LOOP = ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]


@pytest.fixture(scope="module")
def service(cocoon):
    assert DOCKER and subprocess.run([DOCKER, "--version"], capture_output=True).returncode == 0
    with Service(cocoon) as svc:
        yield svc


@pytest.fixture
def docker(service, cocoon):
    yield service.docker
    ids = cocoon("ls", "-a", "-q").stdout.decode().split()
    if ids:
        cocoon("rm", "-f", *ids)


def cocoon_names(cocoon) -> list[str]:
    return json.loads(ok(cocoon("ls", "-a", "--format", "json")) or "[]")


def test_run_keeps_streams_apart_and_gives_the_exit_code(docker, busybox, cocoon):
    result = docker("run", "--rm", "--name", "streams", busybox, "sh", "-c",
                    "echo out; echo err >&2; exit 7")  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
    # --rm: removed by the time the client returns (it waits for condition=removed);
    # other tests' containers may share this session's state.
    assert "streams" not in [c["name"] for c in cocoon_names(cocoon)]


def test_run_interactive_reads_piped_stdin(docker, busybox):
    result = docker("run", "--rm", "-i", busybox, "sh", "-c", "cat; echo end",
                    input=b"line one\nline two\n")  # fmt: skip
    assert result.stdout == b"line one\nline two\nend\n", result.stderr.decode()
    assert result.returncode == 0


def test_run_command_not_found_is_127(docker, busybox):
    result = docker("run", "--rm", busybox, "no-such-command")
    assert result.returncode == 127, result.stderr.decode()


def test_detached_container_through_ps_logs_exec_stop_rm(service, docker, busybox, cocoon):
    cid = ok(docker("run", "-d", "--name", "ticker", "-l", "tier=web", busybox, *LOOP)).strip()
    assert len(cid) == 64
    # An ordinary cocoon container: the CLI sees it.
    assert ok(cocoon("ls", "-q")).split() == [cid[:12]]
    listed = ok(docker("ps", "--filter", "label=tier=web", "--format", "{{.ID}} {{.Names}}"))
    assert listed.split() == [cid[:12], "ticker"]
    assert ok(docker("ps", "-q", "--filter", "label=tier=db")) == ""
    assert ok(docker("ps", "-aq", "--filter", "status=running", "--filter", "name=tick")).split()
    time.sleep(1)
    follow = subprocess.Popen([DOCKER, "logs", "-f", "--tail", "1", "ticker"],
                              env=service.docker_env(), stdout=subprocess.PIPE)  # fmt: skip
    try:
        first = follow.stdout.readline()
        second = follow.stdout.readline()
    finally:
        follow.kill()
        follow.wait()
    n = int(first.split()[1])
    assert second == f"tick {n + 1}\n".encode()  # followed: lines written after the call
    stamped = ok(docker("logs", "-t", "--tail", "1", "ticker"))
    assert stamped[:2] == "20" and stamped.split()[1] == "tick"
    assert docker("exec", "ticker", "sh", "-c", "exit 3").returncode == 3
    assert ok(docker("exec", "ticker", "cat", "/etc/hostname")).strip() == cid[:12]
    assert docker("exec", "-i", "ticker", "cat", input=b"piped").stdout == b"piped"
    state = json.loads(ok(docker("inspect", "ticker")))[0]
    assert state["State"]["Running"] and state["HostConfig"]["LogConfig"]["Type"] == "json-file"
    assert state["Config"]["Labels"]["tier"] == "web"
    refused = docker("rm", "ticker")
    assert refused.returncode != 0 and b"running container" in refused.stderr
    ok(docker("stop", "-t", "1", "ticker"))
    assert ok(docker("inspect", "-f", "{{.State.Status}}", "ticker")).strip() == "exited"
    assert ok(docker("ps", "-q")) == ""
    ok(docker("start", "ticker"))
    assert ok(docker("inspect", "-f", "{{.State.Running}}", "ticker")).strip() == "true"
    ok(docker("rm", "-f", "ticker"))
    assert cocoon_names(cocoon) == []


def test_sees_cli_containers_and_they_outlive_the_service(cocoon, busybox):
    made = ok(cocoon("run", "-d", "--name", "by-cli", busybox, *LOOP)).strip()
    with Service(cocoon) as svc:
        assert ok(svc.docker("ps", "--format", "{{.Names}}")).split() == ["by-cli"]
        ok(svc.docker("run", "-d", "--name", "by-api", busybox, *LOOP))
    # The service is gone; its container runs on under its own monitor.
    running = json.loads(ok(cocoon("ls", "--format", "json")))
    assert sorted(c["name"] for c in running) == ["by-api", "by-cli"], running
    ok(cocoon("rm", "-f", "by-api", made))


def test_errors_are_dockerd_shaped(service, docker, busybox):
    missing = docker("inspect", "--type", "container", "nothing-here")
    assert missing.returncode == 1 and b"No such container: nothing-here" in missing.stderr
    status, headers, body = service.request("GET", "/v1.41/containers/nothing-here/json")
    assert status == 404 and json.loads(body) == {"message": "No such container: nothing-here"}
    status, _, body = service.request("GET", "/v1.41/swarm")
    assert status == 501 and "GET /swarm" in json.loads(body)["message"]
    status, _, body = service.request("POST", "/containers/create",
                                      json.dumps({"Image": busybox, "HostConfig": {
                                          "Privileged": True}}).encode())  # fmt: skip
    assert status == 501 and "Privileged" in json.loads(body)["message"]
    status, _, body = service.request("POST", "/containers/create", b"{not json")
    assert status == 400
    status, _, body = service.request(
        "POST", "/containers/create", json.dumps({"Image": "localhost/absent:1"}).encode()
    )
    assert status == 404 and "No such image" in json.loads(body)["message"]
    status, headers, body = service.request("HEAD", "/_ping")
    assert status == 200 and headers["Api-Version"] == "1.41" and body == b""
    status, _, body = service.request("GET", "/v1.24/version")  # older API versions too
    assert status == 200 and json.loads(body)["ApiVersion"] == "1.41"


def test_pull_push_with_a_registry_then_images_tag_rmi(docker, tmp_path, cocoon):
    from oci import busybox_layer, write_layout

    layout = tmp_path / "layout"
    write_layout(layout, [busybox_layer()], ref="latest")
    with Registry(tmp_path) as registry:
        ref = f"{registry.host}/team/busybox:1"
        skopeo_copy(f"oci:{layout}:latest", f"docker://{ref}")
        pulled = docker("pull", ref)
        assert pulled.returncode == 0, pulled.stderr.decode()
        assert b"Pull complete" in pulled.stdout or b"Digest: sha256:" in pulled.stdout
        # And back: a new name pushed through the service, then pulled again.
        pushed_ref = f"{registry.host}/team/pushed:2"
        ok(docker("tag", ref, pushed_ref))
        pushed = ok(docker("push", pushed_ref))
        assert "digest: sha256:" in pushed
        ok(docker("rmi", pushed_ref))
        ok(docker("pull", pushed_ref))
        assert ok(docker("run", "--rm", pushed_ref, "echo", "round-trip")) == "round-trip\n"
        ok(docker("rmi", pushed_ref))
    images = ok(docker("images", "--format", "{{.Repository}}:{{.Tag}}")).split()
    assert ref in images
    ok(docker("tag", ref, "localhost/retagged:2"))
    assert ok(docker("run", "--rm", "localhost/retagged:2", "echo", "hi")) == "hi\n"
    ok(docker("rmi", "localhost/retagged:2", ref))
    images = ok(docker("images", "--format", "{{.Repository}}:{{.Tag}}")).split()
    assert ref not in images and "localhost/retagged:2" not in images
    assert docker("image", "inspect", ref).returncode == 1


def test_published_port_answers_from_the_host(cocoon, netns, busybox):
    with Service(cocoon, netns=netns) as svc:
        try:
            ok(svc.docker("run", "-d", "--name", "web", "-p", "8089:80", busybox,
                          "httpd", "-f", "-p", "80", "-h", "/etc"))  # fmt: skip
            ip = ok(svc.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web")).strip()
            assert ip.startswith("192.168.64."), ip
            ports = ok(svc.docker("port", "web"))
            assert "80/tcp -> 0.0.0.0:8089" in ports
            fetch = ["ip", "netns", "exec", netns, "busybox", "wget", "-qO-",
                     "http://127.0.0.1:8089/hostname"]  # fmt: skip
            deadline = time.monotonic() + 60
            while True:
                got = subprocess.run(fetch, capture_output=True)
                if got.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert got.returncode == 0, got.stderr.decode()
            cid = ok(svc.docker("inspect", "-f", "{{.Id}}", "web")).strip()
            assert got.stdout.decode().strip() == cid[:12]
        finally:
            svc.docker("rm", "-f", "web")


DOCKER_PY = """
import json, sys
import docker
client = docker.DockerClient(base_url=sys.argv[1])
image = sys.argv[2]
c = client.containers.run(image, ["sh", "-c", "echo hello; echo oops >&2; sleep 300"],
                          detach=True, name="pyc", labels={"from": "docker-py"})
import time
deadline = time.time() + 60
while b"oops" not in c.logs() and time.time() < deadline:
    time.sleep(0.2)
result = {"logs": c.logs().decode(),
          "stdout_only": c.logs(stderr=False).decode(),
          "exec": list(c.exec_run(["sh", "-c", "echo in-vm; exit 5"])),
          "listed": [x.name for x in client.containers.list(filters={"label": "from=docker-py"})]}
c.reload(); result["status"] = c.status
c.stop(timeout=1)
c.reload(); result["stopped"] = c.status
c.remove()
result["after"] = [x.name for x in client.containers.list(all=True)]
result["fg"] = client.containers.run(image, "echo fg", remove=True).decode()
print(json.dumps(result, default=lambda b: b.decode()))
"""


def test_docker_py(service, docker, busybox):
    # Debian's python3-docker, with the system interpreter that has it.
    got = subprocess.run(["/usr/bin/python3", "-c", DOCKER_PY, f"unix://{service.socket}", busybox],
                         capture_output=True, timeout=300)  # fmt: skip
    assert got.returncode == 0, got.stderr.decode()
    result = json.loads(got.stdout)
    assert result["logs"] == "hello\noops\n" and result["stdout_only"] == "hello\n"
    assert result["exec"] == [5, "in-vm\n"]
    assert result["listed"] == ["pyc"] and result["status"] == "running"
    assert result["stopped"] == "exited" and result["after"] == [] and result["fg"] == "fg\n"


def test_events_stream_container_start_die_destroy(service, docker, busybox):
    # --since: events from before the stream opened are replayed, so no race.
    since = str(int(time.time()) - 1)
    watch = subprocess.Popen(
        [DOCKER, "events", "--since", since, "--filter", "type=container",
         "--filter", "container=evented",
         "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}"],
        env=service.docker_env(), stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        docker("run", "--rm", "--name", "evented", busybox, "sh", "-c", "exit 4")
        lines = [watch.stdout.readline().decode() for _ in range(4)]
    finally:
        watch.kill()
        watch.wait()
    seen = [line.replace("<no value>", "").split() for line in lines]  # exitCode: die only
    assert seen == [["create", "evented"], ["start", "evented"], ["die", "evented", "4"],
                    ["destroy", "evented"]]  # fmt: skip


def test_tty_create_start_attach_restart_and_wait(docker, busybox):
    tty = docker("run", "--rm", "-t", busybox, "sh", "-c", "tty; exit 2")
    # A terminal: one raw stream (no frame headers), the terminal's line endings.
    assert (tty.returncode, tty.stdout) == (2, b"/dev/pts/0\r\n"), tty.stderr.decode()
    ok(docker("create", "--name", "made", busybox, "sh", "-c", "echo from-start; exit 6"))
    assert ok(docker("wait", "made")).strip() == "0"  # never ran: nothing to wait for
    started = docker("start", "-a", "made")
    assert (started.returncode, started.stdout) == (6, b"from-start\n")
    assert ok(docker("wait", "made")).strip() == "6"
    ok(docker("run", "-d", "--name", "late", busybox, "sh", "-c", "sleep 2; echo late; exit 5"))
    attached = docker("attach", "late")
    assert (attached.returncode, attached.stdout) == (5, b"late\n")
    ok(docker("run", "-d", "--name", "again", busybox, "sleep", "600"))
    before = ok(docker("inspect", "-f", "{{.State.StartedAt}}", "again"))
    ok(docker("restart", "-t", "0", "again"))
    after = ok(docker("inspect", "-f", "{{.State.StartedAt}} {{.State.Running}}", "again"))
    assert after.split()[1] == "true" and after.split()[0] != before.strip()
    ok(docker("kill", "-s", "TERM", "again"))
    assert ok(docker("wait", "again")).strip() == "143"
    top = docker("top", "made")  # exited: dockerd's 409
    assert top.returncode == 1 and b"is not running" in top.stderr, top.stderr


def test_volumes_and_image_save_load(service, docker, busybox, tmp_path):
    assert ok(docker("volume", "create", "--opt", "type=dir", "--label", "a=b", "vol1")) == "vol1\n"
    [found] = json.loads(ok(docker("volume", "inspect", "vol1")))
    assert found["Labels"] == {"a": "b"} and found["Options"]["type"] == "dir"
    assert "vol1" in ok(docker("volume", "ls", "-q")).split()
    ok(docker("volume", "rm", "vol1"))
    assert docker("volume", "inspect", "vol1").returncode == 1
    archive = tmp_path / "saved.tar"
    ok(docker("save", "-o", str(archive), busybox))
    ok(docker("rmi", busybox))
    assert docker("image", "inspect", busybox).returncode == 1
    loaded = ok(docker("load", "-i", str(archive)))
    assert "Loaded image: localhost/busybox:latest" in loaded
    # A save piped into a load, through the service both ways.
    piped = subprocess.run(f"{DOCKER} save {busybox} | {DOCKER} load", shell=True,
                           env=service.docker_env(), capture_output=True)  # fmt: skip
    assert piped.returncode == 0 and b"Loaded image" in piped.stdout, piped.stderr.decode()


TESTCONTAINERS = """
import sys, time, urllib.request
from testcontainers.core.container import DockerContainer

web = DockerContainer(sys.argv[1]).with_command(["httpd", "-f", "-p", "80", "-h", "/etc"])
with web.with_exposed_ports(80) as c:
    url = f"http://{c.get_container_host_ip()}:{c.get_exposed_port(80)}/hostname"
    deadline = time.monotonic() + 60
    while True:
        try:
            print(urllib.request.urlopen(url, timeout=5).read().decode().strip(),
                  c.get_wrapped_container().id[:12])
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
"""


def test_testcontainers_with_a_published_port(cocoon, netns, busybox):
    # Ryuk (testcontainers' reaper image) is not to be had here; the context
    # manager removes the container itself.
    with Service(cocoon, netns=netns) as svc:
        env = {**svc.docker_env(), "TESTCONTAINERS_RYUK_DISABLED": "true"}
        got = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", TESTCONTAINERS,
                              busybox], env=env, capture_output=True, timeout=300)  # fmt: skip
        assert got.returncode == 0, got.stderr.decode()
        served, cid = got.stdout.decode().split()
        assert served == cid  # the page came from that container's VM
        assert svc.docker("ps", "-aq").stdout == b""


def test_container_prune_removes_only_stopped_ones(docker, busybox, cocoon):
    ok(docker("run", "--name", "done", busybox, "true"))
    done = ok(docker("inspect", "-f", "{{.Id}}", "done")).strip()
    ok(docker("run", "-d", "--name", "busy", busybox, "sleep", "600"))
    pruned = ok(docker("container", "prune", "-f"))
    assert done in pruned.split()
    assert ok(docker("ps", "-a", "--format", "{{.Names}}")).split() == ["busy"]


def test_binds_volumes_tmpfs_and_read_only_root(docker, busybox, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index").write_text("from the host\n")
    script = (
        "cat /src/index; echo kept > /data/note; touch / 2>&1; grep -c ' /run tmpfs' /proc/mounts"
    )
    result = docker("run", "--rm", "-v", f"{tmp_path / 'site'}:/src:ro", "-v", "svc-data:/data",
                    "--tmpfs", "/run", "--read-only", busybox, "sh", "-c", script)  # fmt: skip
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0, result.stderr.decode()
    assert lines[0] == "from the host" and lines[-1] == "1"
    assert "Read-only file system" in lines[1]
    again = docker("run", "--rm", "-v", "svc-data:/data", busybox, "cat", "/data/note")
    assert (again.returncode, again.stdout) == (0, b"kept\n"), again.stderr.decode()
    assert docker("volume", "rm", "svc-data").returncode == 0


def path_stat(headers: dict[str, str]) -> dict:
    return json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))


def check_cp(docker, name: str, tmp_path, tag: str) -> None:
    """docker cp both ways: a folder in, a file out, a tar on stdin and stdout."""
    src = tmp_path / f"in-{tag}"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text(f"from the host {tag}\n")
    ok(docker("cp", str(src), f"{name}:/{tag}"))  # absent: made from the folder
    out = tmp_path / f"out-{tag}"
    out.mkdir()
    ok(docker("cp", f"{name}:/{tag}/sub/f", str(out / "copied")))
    assert (out / "copied").read_text() == f"from the host {tag}\n"
    ok(docker("cp", f"{name}:/{tag}", str(out)))  # a folder into a folder
    ok(docker("cp", f"{name}:/{tag}/.", str(out / "contents")))  # "/.": only what it holds
    assert (out / "contents" / "sub" / "f").read_text() == f"from the host {tag}\n"
    assert (out / tag / "sub" / "f").read_text() == f"from the host {tag}\n"
    streamed = io.BytesIO()
    with tarfile.open(fileobj=streamed, mode="w") as tar:
        info = tarfile.TarInfo("piped")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"tar\n"))
    ok(docker("cp", "-", f"{name}:/{tag}", input=streamed.getvalue()))
    back = docker("cp", f"{name}:/{tag}/piped", "-")
    assert back.returncode == 0, back.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(back.stdout)) as tar:
        assert tar.extractfile("piped").read() == b"tar\n"


def test_docker_cp_running_and_stopped(service, docker, busybox, tmp_path):
    cid = ok(docker("run", "-d", "--name", "files", busybox, "sleep", "600")).strip()
    check_cp(docker, "files", tmp_path, "running")
    (tmp_path / "at-root").write_text("top\n")
    ok(docker("cp", str(tmp_path / "at-root"), "files:/"))  # the root: stat'ed as "/."
    assert ok(docker("exec", "files", "cat", "/at-root")) == "top\n"
    ok(docker("exec", "files", "ln", "-s", "sub/f", "/running/link"))
    status, headers, _ = service.request("HEAD", "/containers/files/archive?path=/running/link")
    stat = path_stat(headers)
    assert status == 200 and stat["name"] == "link" and stat["linkTarget"] == "/running/sub/f"
    assert stat["mode"] & (1 << 27)  # Go's os.ModeSymlink
    status, headers, _ = service.request("HEAD", "/containers/files/archive?path=/running")
    assert status == 200 and path_stat(headers)["mode"] & (1 << 31)  # os.ModeDir
    # ".." stops at the container's root, as dockerd joins paths: its file, not the host's.
    status, headers, body = service.request(
        "GET", "/containers/files/archive?path=/../../../../etc/hostname"
    )
    assert status == 200 and path_stat(headers)["name"] == "hostname"
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile("hostname").read().strip() == cid[:12].encode()
    missing = docker("cp", "files:/no/such", str(tmp_path))
    assert missing.returncode == 1 and b"No such container:path" in missing.stderr
    status, _, body = service.request("GET", "/containers/files/archive?path=/no/such")
    assert status == 404
    assert json.loads(body) == {"message": "Could not find the file /no/such in container files"}
    status, _, body = service.request("PUT", "/containers/files/archive?path=/running", b"x" * 600)
    assert status == 500 and "not a tar archive" in json.loads(body)["message"]
    status, _, body = service.request("PUT", "/containers/files/archive?path=/etc/hostname",
                                      streamed_tar())  # fmt: skip
    assert (status, json.loads(body)) == (400, {"message": "extraction point is not a directory"})
    status, _, body = service.request("PUT", "/containers/files/archive?path=/no/such",
                                      streamed_tar())  # fmt: skip
    assert status == 404 and "/no/such" in json.loads(body)["message"]
    status, _, _ = service.request("GET", "/containers/files/archive")
    assert status == 400
    ok(docker("stop", "-t", "0", "files"))
    # Stopped: the VM boots for each copy, and the files stay on its disk.
    check_cp(docker, "files", tmp_path, "stopped")
    status, headers, _ = service.request("HEAD", "/containers/files/archive?path=/stopped/piped")
    assert status == 200 and path_stat(headers)["size"] == 4
    ok(docker("start", "files"))
    assert ok(docker("exec", "files", "cat", "/stopped/sub/f")) == "from the host stopped\n"
    ok(docker("rm", "-f", "files"))


def test_cp_never_swaps_a_folder_and_a_non_folder(service, docker, busybox, tmp_path, cocoon):
    made = "mkdir -p /clash/name/inner /clash/spare && echo f > /clash/file && sleep 600"
    ok(docker("run", "-d", "--name", "kinds", busybox, "sh", "-c", made))
    deadline = time.monotonic() + 60
    while docker("exec", "kinds", "test", "-f", "/clash/file").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    (tmp_path / "name").write_text("a file\n")
    # docker cp asks noOverwriteDirNonDir: a file never takes a folder's place.
    refused = docker("cp", str(tmp_path / "name"), "kinds:/clash/")
    assert refused.returncode == 1, refused.stdout
    assert b'cannot overwrite directory "/clash/name" with non-directory "/clash"' in (
        refused.stderr
    )
    assert ok(docker("exec", "kinds", "ls", "/clash/name")) == "inner\n"
    folder = folder_tar("file")
    put = "/containers/kinds/archive?path=/clash&noOverwriteDirNonDir="
    status, _, body = service.request("PUT", put + "1", folder)
    assert status == 400 and json.loads(body) == {
        "message": 'cannot overwrite non-directory "/clash/file" with directory "/clash"'
    }
    assert ok(docker("exec", "kinds", "cat", "/clash/file")) == "f\n"
    # Without the flag a file is replaced by the folder, as dockerd does.
    assert service.request("PUT", put + "0", folder)[0] == 200
    ok(docker("exec", "kinds", "test", "-d", "/clash/file"))
    # The other way, cocoon cp refuses too, in the same words.
    (tmp_path / "spare").write_text("mine\n")
    back = cocoon("cp", "kinds:/clash/spare", str(tmp_path))
    assert back.returncode == 125 and b"cannot overwrite non-directory" in back.stderr
    assert (tmp_path / "spare").read_text() == "mine\n"


def folder_tar(name: str) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    return data.getvalue()


def test_run_flags_and_update_reach_the_vm(docker, busybox):
    script = ("cat /etc/resolv.conf; df -k /dev/shm | tail -1; ulimit -n; ulimit -Hn; id -G; "
              "sleep 600")  # fmt: skip
    ok(docker("run", "-d", "--name", "flags", "--dns-search", "corp.example",
              "--dns-opt", "ndots:3", "--shm-size", "96m", "--ulimit", "nofile=512:1024",
              "--group-add", "1234", "--cpus", "0.5", "--platform", "linux/amd64",
              busybox, "sh", "-c", script))  # fmt: skip
    deadline = time.monotonic() + 60
    while len((out := ok(docker("logs", "flags"))).splitlines()) < 6:
        assert time.monotonic() < deadline, out
        time.sleep(0.3)
    assert "search corp.example" in out and "options ndots:3" in out
    lines = out.splitlines()
    assert lines[-4].split()[1] == str(96 * 1024)  # /dev/shm's size in KiB
    assert lines[-3:-1] == ["512", "1024"] and "1234" in lines[-1].split()
    fmt = "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}"
    assert ok(docker("inspect", "-f", fmt, "flags")).split() == ["500000000", str(256 << 20), "no"]
    # Live: the CPU quota and the restart policy; memory once stopped (a VM resumed
    # from a memory template cannot give its memory back while it runs).
    ok(docker("update", "--cpus", "0.25", "--restart", "on-failure:2", "flags"))
    assert ok(docker("inspect", "-f", fmt, "flags")).split() == [
        "250000000",
        str(256 << 20),
        "on-failure",
    ]
    refused = docker("update", "--cpu-shares", "512", "flags")
    assert refused.returncode == 1 and b"cocoon does not serve updating CpuShares" in refused.stderr
    ok(docker("stop", "-t", "0", "flags"))
    ok(docker("update", "--memory", "128m", "flags"))
    assert ok(docker("inspect", "-f", "{{.HostConfig.Memory}}", "flags")).strip() == str(128 << 20)
    ok(docker("rm", "-f", "flags"))


def streamed_tar(uid: int = 0) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("note")
        info.size, info.uid, info.gid = 3, uid, uid
        tar.addfile(info, io.BytesIO(b"hi\n"))
    return data.getvalue()


def test_copy_uid_gid_gives_the_containers_user(service, docker, busybox, tmp_path):
    ok(docker("run", "-d", "--name", "owned", "--user", "5:6", busybox, "sleep", "600"))
    put = "/containers/owned/archive?path=/tmp&copyUIDGID="
    assert service.request("PUT", put + "0", streamed_tar(uid=1234))[0] == 200
    assert ok(docker("exec", "owned", "stat", "-c", "%u:%g", "/tmp/note")).strip() == "1234:1234"
    assert service.request("PUT", put + "1", streamed_tar(uid=1234))[0] == 200
    assert ok(docker("exec", "owned", "stat", "-c", "%u:%g", "/tmp/note")).strip() == "5:6"
    (tmp_path / "by-cli").write_text("-a\n")
    ok(docker("cp", "-a", str(tmp_path / "by-cli"), "owned:/tmp"))  # docker cp -a: the same
    assert ok(docker("exec", "owned", "stat", "-c", "%u:%g", "/tmp/by-cli")).strip() == "5:6"
    ok(docker("run", "-d", "--name", "named", "--user", "nobody", busybox, "sleep", "600"))
    status, _, body = service.request("PUT", "/containers/named/archive?path=/tmp&copyUIDGID=1",
                                      streamed_tar())  # fmt: skip
    assert status == 501 and "'nobody'" in json.loads(body)["message"]


DOCKER_PY_FILES = """
import gzip, io, json, sys, tarfile
import docker
client = docker.DockerClient(base_url=sys.argv[1])
c = client.containers.run(sys.argv[2], ["sleep", "600"], detach=True, name="pyfiles")
def tar_of(name, data):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
result = {"put": c.put_archive("/tmp", tar_of("plain.txt", b"plain")),
          "put_gz": c.put_archive("/tmp", gzip.compress(tar_of("zipped.txt", b"zipped")))}
bits, stat = c.get_archive("/tmp/zipped.txt")
with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
    result["got"] = tar.extractfile("zipped.txt").read().decode()
result["stat"] = stat
result["cat"] = c.exec_run(["cat", "/tmp/plain.txt"]).output.decode()
import time
deadline = time.time() + 60
while not any("sleep 600" in row[-1] for row in c.top()["Processes"]) and time.time() < deadline:
    time.sleep(0.3)
result["top"] = c.top()
one = c.stats(stream=False)
result["stats"] = {k: one[k] for k in ("cpu_stats", "precpu_stats", "memory_stats", "name")}
result["streamed"] = sorted(next(c.stats(decode=True)))
c.remove(force=True)
print(json.dumps(result))
"""


def test_docker_py_archive_top_and_stats(service, docker, busybox):
    got = subprocess.run(["/usr/bin/python3", "-c", DOCKER_PY_FILES, f"unix://{service.socket}",
                          busybox], capture_output=True, timeout=300)  # fmt: skip
    assert got.returncode == 0, got.stderr.decode()
    result = json.loads(got.stdout)
    assert result["put"] is True and result["put_gz"] is True
    assert result["got"] == "zipped" and result["cat"] == "plain"
    assert result["stat"]["name"] == "zipped.txt" and result["stat"]["size"] == 6
    assert "sleep 600" in [row[-1] for row in result["top"]["Processes"]]
    assert result["top"]["Titles"][0] == "PID"
    stats = result["stats"]
    assert stats["name"] == "/pyfiles" and stats["cpu_stats"]["online_cpus"] >= 1
    # Two readings a second apart: the CLI's CPU percent needs both.
    assert stats["cpu_stats"]["system_cpu_usage"] > stats["precpu_stats"]["system_cpu_usage"] > 0
    assert 0 < stats["memory_stats"]["usage"] < stats["memory_stats"]["limit"]
    assert {"read", "preread", "cpu_stats", "memory_stats"} <= set(result["streamed"])


def test_docker_top_and_stats(service, docker, busybox):
    ok(docker("run", "-d", "--name", "busy", busybox, "sleep", "600"))
    deadline = time.monotonic() + 60
    while "sleep 600" not in (top := ok(docker("top", "busy"))):  # until it has exec'd
        assert time.monotonic() < deadline, top
        time.sleep(0.3)
    assert top.splitlines()[0].split()[0] == "PID"
    assert "sleep 600" in ok(docker("top", "busy", "-o", "pid,args"))
    row = ok(docker("stats", "--no-stream", "--format",
                    "{{.Name}} {{.CPUPerc}} {{.MemUsage}}", "busy"))  # fmt: skip
    name, cpu, used, _, limit = row.split()
    assert name == "busy" and cpu.endswith("%") and used.endswith("MiB") and limit.endswith("MiB")
    assert float(used[:-3]) > 0
    status, _, body = service.request("GET", "/containers/busy/stats?stream=0&one-shot=1")
    once = json.loads(body)  # one reading: nothing before it
    assert status == 200 and once["cpu_stats"]["system_cpu_usage"] > 0
    assert once["precpu_stats"]["system_cpu_usage"] == 0 and once["preread"].startswith("0001")
    ok(docker("pause", "busy"))  # a frozen kernel cannot answer: no reading, at once
    status, _, body = service.request("GET", "/containers/busy/stats?stream=0")
    assert status == 200 and json.loads(body)["memory_stats"] == {}
    ok(docker("unpause", "busy"))
    ok(docker("stop", "-t", "0", "busy"))
    status, _, body = service.request("GET", "/containers/busy/stats?stream=0")
    assert status == 200 and json.loads(body)["memory_stats"] == {}  # not running: no reading
    status, _, body = service.request("GET", "/containers/busy/top")
    assert status == 409 and "is not running" in json.loads(body)["message"]


def test_sizes_disk_usage_and_prunes(service, docker, busybox, cocoon):
    write = "dd if=/dev/urandom of=/big bs=1M count=6 && sync && echo written; sleep 600"
    ok(docker("run", "-d", "--name", "sized", busybox, "sh", "-c", write))
    deadline = time.monotonic() + 120
    while "written" not in ok(docker("logs", "sized")):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    # Its own bytes: the blocks its disk holds over the image's; then with the image's.
    [own, virtual] = [docker_bytes(x) for x in
                      ok(docker("ps", "-s", "--format", "{{.Size}}")).replace("(virtual", "")
                      .rstrip(")\n").split()]  # fmt: skip
    assert 6e6 < own < virtual
    rows = {line.split()[0]: line.split()[1:] for line in ok(docker(
        "system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}}"
    )).splitlines()}  # fmt: skip
    # The store is the session's: other tests' images count too, one of them in use.
    status, _, body = service.request("GET", "/images/json?all=1")
    assert status == 200 and int(rows["Images"][0]) == len(json.loads(body))
    assert int(rows["Images"][1]) >= 1
    assert docker_bytes(rows["Images"][2]) > 0
    assert rows["Containers"][:2] == ["1", "1"] and docker_bytes(
        rows["Containers"][2]
    ) == pytest.approx(own, rel=0.01)
    # One image size for every face: the unpacked files, as docker images shows.
    status, _, body = service.request("GET", "/images/json")
    [listed] = [i["Size"] for i in json.loads(body) if busybox in i["RepoTags"]]
    assert int(ok(docker("image", "inspect", "-f", "{{.Size}}", busybox))) == listed
    [stored] = json.loads(ok(cocoon("image", "inspect", "--format", "json", busybox)))
    assert listed > sum(layer["size"] for layer in stored["Layers"])  # more than gzip's
    ok(docker("image", "prune", "-f"))  # untagged images only: busybox stays
    assert ok(docker("images", "-q"))
    refused = docker("image", "prune", "-a", "-f")
    assert refused.returncode == 1 and b"prunes only untagged images" in refused.stderr
    search = docker("search", "busybox")
    assert search.returncode == 1 and b"does not search registries" in search.stderr
    ok(docker("stop", "-t", "0", "sized"))
    sized = ok(docker("inspect", "-f", "{{.Id}}", "sized")).strip()
    # The same counts as cocoon system df: one library function behind both faces.
    [cli] = [r for r in json.loads(ok(cocoon("system", "df", "--format", "json")))
             if r["Type"] == "Containers"]  # fmt: skip
    status, _, body = service.request("GET", "/system/df")
    assert status == 200 and "BuildCache" in json.loads(body)
    assert sum(c["SizeRw"] for c in json.loads(body)["Containers"]) == cli["Size"]
    # Containers, networks, images and the build cache pruned, as dockerd does.
    pruned = docker("system", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert sized in pruned.stdout.decode().split(), pruned.stdout
    assert b"Total reclaimed space" in pruned.stdout
    assert ok(docker("ps", "-aq")) == ""
    ok(docker("builder", "prune", "-a", "-f"))


def docker_bytes(text: str) -> float:
    """The docker CLI's sizes ("6.3MB", "0B") in bytes, decimal units as it writes them."""
    for unit, factor in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9), ("B", 1)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise AssertionError(f"not a size: {text}")


def test_network_counters_and_no_new_card_while_running(cocoon, netns, busybox):
    with Service(cocoon, netns=netns) as svc:
        try:
            ok(svc.docker("run", "-d", "--name", "netted", busybox,
                          "httpd", "-f", "-p", "80", "-h", "/etc"))  # fmt: skip
            ip = ok(svc.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "netted")).strip()
            fetch = ["ip", "netns", "exec", netns, "busybox", "wget", "-qO-",
                     f"http://{ip}/hostname"]  # fmt: skip
            deadline = time.monotonic() + 60
            while subprocess.run(fetch, capture_output=True).returncode != 0:
                assert time.monotonic() < deadline
                time.sleep(0.3)
            # The page went out of the container, the request came in: both counted.
            net_io = ok(svc.docker("stats", "--no-stream", "--format", "{{.NetIO}}", "netted"))
            received, sent = (docker_bytes(x) for x in net_io.strip().split(" / "))
            assert received > 0 and sent > 0, net_io
            # cocoon stats reads the same counters (one library function behind both).
            argv = cocoon.argv("stats", "--no-stream", "--format", "json", "netted")
            mine = subprocess.run(["ip", "netns", "exec", netns, *argv], env=svc.env,
                                  capture_output=True)  # fmt: skip
            [row] = json.loads(ok(mine))
            assert row["network"]["eth0"]["rx_bytes"] >= 0.9 * received
            assert row["network"]["eth0"]["tx_bytes"] >= 0.9 * sent
            ok(svc.docker("network", "create", "second"))
            other = svc.docker("network", "disconnect", "second", "netted")
            assert other.returncode == 1 and b"not connected to network second" in other.stderr
            joined = svc.docker("network", "connect", "second", "netted")
            assert joined.returncode == 1 and b"running VM; stop it first" in joined.stderr
        finally:
            svc.docker("rm", "-f", "netted")
            svc.docker("network", "rm", "second")


def test_pause_rename_and_export(docker, busybox, tmp_path):
    ok(docker("run", "-d", "--name", "frozen", busybox, "sleep", "600"))
    ok(docker("pause", "frozen"))
    assert ok(docker("inspect", "-f", "{{.State.Status}}", "frozen")).strip() == "paused"
    assert ok(docker("ps", "--format", "{{.Status}}")).strip().endswith("(Paused)")
    again = docker("pause", "frozen")
    assert again.returncode == 1 and b"already paused" in again.stderr
    ok(docker("unpause", "frozen"))
    assert ok(docker("inspect", "-f", "{{.State.Status}}", "frozen")).strip() == "running"
    ok(docker("rename", "frozen", "thawed"))
    assert ok(docker("ps", "--format", "{{.Names}}")).split() == ["thawed"]
    ok(docker("export", "-o", str(tmp_path / "running.tar"), "thawed"))
    ok(docker("exec", "thawed", "sh", "-c", "echo kept > /made-here"))
    ok(docker("stop", "-t", "0", "thawed"))
    exported = docker("export", "thawed")  # stopped: its VM boots for the copy
    assert exported.returncode == 0, exported.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
        assert tar.extractfile("made-here").read() == b"kept\n"
        assert not [m for m in tar.getnames() if m.startswith("proc/")]  # other filesystems: empty
    with tarfile.open(tmp_path / "running.tar") as tar:
        assert "bin/busybox" in tar.getnames()


def test_docker_network_connect_and_disconnect(cocoon, netns, busybox):
    with Service(cocoon, netns=netns) as svc:
        try:
            ok(svc.docker("network", "create", "--subnet", "10.84.0.0/24", "dfront"))
            ok(svc.docker("network", "create", "--subnet", "10.85.0.0/24", "dback"))
            ok(svc.docker("run", "-d", "--name", "db", "--network", "dback", busybox,
                          "sleep", "600"))  # fmt: skip
            ok(svc.docker("create", "--name", "app", "--network", "dfront", busybox,
                          "sleep", "600"))  # fmt: skip
            ok(svc.docker("network", "connect", "--alias", "api", "dback", "app"))
            nets = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}"
            cards = ok(svc.docker("inspect", "-f", nets, "app")).split()
            assert sorted(c.split("=")[0] for c in cards) == ["dback", "dfront"]
            ok(svc.docker("start", "app"))
            ok(svc.docker("exec", "app", "ping", "-c", "1", "-W", "5", "db"))
            ok(svc.docker("exec", "db", "ping", "-c", "1", "-W", "5", "api"))
            # A running VM gets no new card (409, dockerd's error shape); its card
            # on dback is cut off.
            got = svc.docker("network", "connect", "bridge", "app")
            assert got.returncode != 0 and b"stop it first" in got.stderr, got
            ok(svc.docker("network", "disconnect", "dback", "app"))
            assert "dback" not in ok(svc.docker("inspect", "-f", nets, "app"))
            assert "app" not in ok(svc.docker("network", "inspect", "dback"))
            assert ok(svc.docker("exec", "app", "cat", "/sys/class/net/eth1/carrier")) == "0\n"
            ok(svc.docker("stop", "-t", "0", "app"))
            ok(svc.docker("network", "connect", "bridge", "app"))
            assert "cocoon0=192.168.64." in ok(svc.docker("inspect", "-f", nets, "app"))
        finally:
            svc.docker("rm", "-f", "app", "db")
            svc.docker("network", "rm", "dfront", "dback")
