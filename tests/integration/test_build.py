"""cocoon build with real build VMs (issue 14): stages, layers, whiteouts, the cache,
bad input, and the same filesystem as podman build makes."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from oci import busybox_layer
from vm_fixtures import ok

pytestmark = pytest.mark.vm

MULTI_STAGE = """\
ARG BASE=localhost/busybox:latest
FROM $BASE AS builder
ARG GREETING=hello
RUN mkdir -p /out && echo "$GREETING" > /out/greeting && echo gone > /out/gone
RUN rm /out/gone
COPY app/ /src/

FROM ${BASE}
ENV APP_HOME=/srv/app
WORKDIR $APP_HOME
COPY --from=builder /out/greeting ./greeting
COPY --from=builder /src/ ./src/
RUN rm /bin/vi && chown -R app /srv/app
USER app
LABEL org.example.kind=test
CMD ["sh", "-c", "id -u; pwd; echo $APP_HOME; cat greeting; ls src; ls /bin/vi 2>&1 || true"]
"""


def context(tmp: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    root = tmp / "ctx"
    root.mkdir(exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def app_context(tmp: Path, dockerfile: str = MULTI_STAGE) -> Path:
    return context(tmp, dockerfile, {
        "app/main.txt": "main\n",
        "app/secret.key": "do not ship\n",
        ".dockerignore": "app/*.key\n",
    })  # fmt: skip


def build(cc, root: Path, *args: str):
    return cc("build", *args, str(root), timeout=900)


def image_config(cc, ref: str, tmp: Path) -> dict:
    """The image's OCI config, from the archive ``image save`` writes."""
    with tarfile.open(save(cc, ref, tmp)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        return json.load(outer.extractfile(manifest["Config"]))


def no_build_leftovers(cc) -> None:
    """No VM folder, context copy or layer file of a build stays behind."""
    folder = cc.state / "build"
    left = [p.name for p in folder.iterdir() if p.name != ".active"] if folder.exists() else []
    assert not left, left


def flatten(archive: Path) -> dict[str, tuple]:
    """The filesystem of a saved image (docker-archive): path -> (kind, mode, uid, gid, data)."""
    files: dict[str, tuple] = {}
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for name in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                apply(files, layer)
    return files


def apply(files: dict[str, tuple], layer: tarfile.TarFile) -> None:
    def drop(prefix: str) -> None:
        for path in [p for p in files if p.startswith(prefix)]:
            del files[path]

    for m in layer:
        path = m.name.strip("/").removeprefix("./")
        parent, _, base = path.rpartition("/")
        if base == ".wh..wh..opq":
            drop(parent + "/")
        elif base.startswith(".wh."):
            gone = f"{parent}/{base[4:]}".strip("/")
            files.pop(gone, None)
            drop(gone + "/")
        elif m.islnk():
            files[path] = files[m.linkname.strip("/").removeprefix("./")]
        else:
            data = layer.extractfile(m).read() if m.isfile() else m.linkname
            if not m.isdir():
                drop(path + "/")
            files[path] = (m.type, m.mode & 0o7777, m.uid, m.gid, data)


def save(cc, ref: str, tmp: Path) -> Path:
    out = tmp / f"{ref.replace('/', '_').replace(':', '_')}.tar"
    if not out.exists():
        ok(cc("image", "save", ref, "-o", str(out)))
    return out


def saved(cc, ref: str, tmp: Path) -> dict[str, tuple]:
    return flatten(save(cc, ref, tmp))


def test_multi_stage_build_runs_with_its_user_workdir_and_env(cc, busybox, tmp_path):
    root = app_context(tmp_path)
    ok(build(cc, root, "-t", "localhost/built:1", "--build-arg", "GREETING=hi-there"))
    out = ok(cc("run", "--rm", "localhost/built:1"))
    assert out.split("\n")[:5] == ["1000", "/srv/app", "/srv/app", "hi-there", "main.txt"], out
    assert "No such file" in out  # /bin/vi removed by a RUN of the final stage
    config = image_config(cc, "localhost/built:1", tmp_path)["config"]
    assert config["User"] == "app"
    assert config["WorkingDir"] == "/srv/app"
    assert "APP_HOME=/srv/app" in config["Env"]
    assert config["Labels"] == {"org.example.kind": "test"}
    files = saved(cc, "localhost/built:1", tmp_path)
    assert "bin/vi" not in files and "bin/busybox" in files
    assert files["srv/app/greeting"][4] == b"hi-there\n"
    assert "srv/app/src/secret.key" not in files  # .dockerignore
    assert "out/gone" not in files and "src/main.txt" not in files  # builder stayed apart
    no_build_leftovers(cc)


def test_layers_whiteouts_and_history_are_docker_s(cc, busybox, tmp_path):
    dockerfile = (f"FROM {busybox}\nRUN echo a > /a && echo b > /b && mkdir /d && touch /d/x\n"
                  "ENV K=v\nRUN rm /a && rm -r /d && mkdir /d && touch /d/y\n")  # fmt: skip
    ok(build(cc, context(tmp_path, dockerfile), "-t", "localhost/wh:1"))
    out = tmp_path / "wh.tar"
    ok(cc("image", "save", "localhost/wh:1", "-o", str(out)))
    with tarfile.open(out) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        config = json.load(outer.extractfile(manifest["Config"]))
        with tarfile.open(fileobj=outer.extractfile(manifest["Layers"][-1])) as last:
            names = set(last.getnames())
    assert {".wh.a", "d/.wh..wh..opq", "d/y"} <= {n.removeprefix("./") for n in names}, names
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["Layers"]) == 3
    made = config["history"][-3:]
    assert [bool(h.get("empty_layer")) for h in made] == [False, True, False]
    assert made[1]["created_by"] == "ENV K=v"


def test_second_build_is_all_cache_and_a_context_change_misses(cc, busybox, tmp_path):
    dockerfile = (f"FROM {busybox}\nRUN cat /proc/sys/kernel/random/uuid > /stamp\n"
                  "COPY conf.txt /conf.txt\nRUN cat /stamp /conf.txt > /both\n")  # fmt: skip
    root = context(tmp_path, dockerfile, {"conf.txt": "one\n"})
    first = ok(build(cc, root, "-t", "localhost/cached:1"))
    again = build(cc, root, "-t", "localhost/cached:2", "--progress", "plain")
    assert again.returncode == 0, again.stderr.decode()
    assert again.stderr.decode().count("(cached)") == 3, again.stderr.decode()
    assert again.stdout == first.encode()  # the very same image id
    assert not cc.vms()
    (root / "conf.txt").write_text("two\n")
    changed = build(cc, root, "-t", "localhost/cached:3", "--progress", "plain")
    assert changed.returncode == 0, changed.stderr.decode()
    assert changed.stderr.decode().count("(cached)") == 1  # only the first RUN
    one = saved(cc, "localhost/cached:1", tmp_path)
    three = saved(cc, "localhost/cached:3", tmp_path)
    assert one["stamp"] == three["stamp"] and three["both"][4].endswith(b"two\n")
    nocache = build(cc, root, "--no-cache", "--progress", "plain")
    assert nocache.returncode == 0 and b"(cached)" not in nocache.stderr


def test_context_or_dockerfile_on_stdin(cc, busybox, tmp_path):
    root = context(tmp_path, f"FROM {busybox}\nCOPY a.txt /a.txt\n", {"a.txt": "a\n"})
    tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True)
    ok(cc("build", "-q", "-t", "localhost/stdin:1", "-", input=tar.stdout))
    assert saved(cc, "localhost/stdin:1", tmp_path)["a.txt"][4] == b"a\n"
    dockerfile = f"FROM {busybox}\nRUN echo from-stdin > /s\n".encode()
    ok(cc("build", "-q", "-t", "localhost/stdin:2", "-", input=dockerfile))
    assert saved(cc, "localhost/stdin:2", tmp_path)["s"][4] == b"from-stdin\n"


def test_target_stops_at_a_stage(cc, busybox, tmp_path):
    dockerfile = (f"FROM {busybox} AS first\nRUN echo first > /which\n"
                  "FROM first\nRUN false\n")  # fmt: skip
    ok(build(cc, context(tmp_path, dockerfile), "--target", "first", "-t", "localhost/first:1"))
    assert ok(cc("run", "--rm", "localhost/first:1", "cat", "/which")) == "first\n"


def test_a_failing_run_names_its_line_and_leaves_nothing(cc, busybox, tmp_path):
    before = ok(cc("image", "ls", "-q"))
    dockerfile = f"FROM {busybox}\nRUN echo ok\nRUN echo before-failing; exit 3\n"
    result = build(cc, context(tmp_path, dockerfile), "-t", "localhost/failed:1")
    err = result.stderr.decode()
    assert result.returncode == 125, err
    assert "Dockerfile:3" in err and "exited with code 3" in err and "before-failing" in err, err
    assert ok(cc("image", "ls", "-q")) == before
    no_build_leftovers(cc)


@pytest.mark.parametrize(
    ("dockerfile", "files", "needle"),
    [
        ("FROM {b}\nFOO bar\n", {}, "Dockerfile:2"),
        ("FROM {b}\nCOPY --from=nowhere /a /a\n", {}, "Dockerfile:2"),
        ("FROM {b}\nCOPY ../x /x\n", {}, "Dockerfile:2"),
        ("FROM {b}\nCOPY secret.key /x\n", {"secret.key": "k", ".dockerignore": "*.key"},
         "Dockerfile:2"),
        ("FROM {b}\nCOPY missing.txt /x\n", {}, "Dockerfile:2"),
        ("FROM 127.0.0.1:1/nothing:here\nRUN true\n", {}, "Dockerfile:1"),
        ("FROM {b}\nRUN <<EOF\necho never ends\n", {}, "Dockerfile:2"),
        ('FROM {b}\nENV A="unterminated\n', {}, "Dockerfile:2"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_line(cc, busybox, tmp_path, dockerfile, files, needle):
    before = ok(cc("image", "ls", "-q"))
    result = build(cc, context(tmp_path, dockerfile.format(b=busybox), files), "-q")
    err = result.stderr.decode()
    assert result.returncode == 125, err
    assert err.count("\n") == 1 and needle in err, err
    assert ok(cc("image", "ls", "-q")) == before
    no_build_leftovers(cc)


def test_library_and_client_build(cocoon, busybox, tmp_path):
    import cocoon as lib

    root = context(tmp_path, f"FROM {busybox}\nCOPY a.txt /a.txt\nCMD [\"cat\", \"/a.txt\"]\n",
                   {"a.txt": "from the library\n"})  # fmt: skip
    image = lib.build(root, tag="localhost/lib:1")
    assert "localhost/lib:1" in image.references
    built, logs = lib.Client().images.build(path=str(root), tag="localhost/lib:2")
    assert built.id == image.id  # the same steps, all cached
    assert any("(cached)" in entry["stream"] for entry in logs)
    result = lib.run("localhost/lib:2")
    assert result.stdout == b"from the library\n"


PODMAN_DOCKERFILE = """\
FROM localhost/withhistory:1 AS build
RUN mkdir -p /opt/tool && echo built > /opt/tool/out && chmod 0751 /opt/tool
FROM localhost/withhistory:1
COPY --from=build /opt/tool /opt/tool
COPY --chown=1000:1000 files/ /data/
COPY --chmod=0600 files/a.txt /secret.txt
RUN rm /bin/vi && mkdir -p /var/empty && ln -s /data/a.txt /link && ln /data/a.txt /hard \\
    && chown 1000:1000 /var/empty && chmod 0700 /var/empty
ENV PATH=/usr/local/bin:/usr/bin:/bin
"""


def test_same_filesystem_as_podman_build(cc, busybox, tmp_path):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    # podman's build wants a base whose history matches its layers (an import has one).
    (tmp_path / "root.tar").write_bytes(busybox_layer().tar())
    ok(cc("image", "import", str(tmp_path / "root.tar"), "localhost/withhistory:1"))
    root = context(tmp_path, PODMAN_DOCKERFILE, {"files/a.txt": "a\n", "files/sub/b.txt": "b\n"})
    ok(build(cc, root, "-t", "localhost/same:1"))
    ours = saved(cc, "localhost/same:1", tmp_path)
    base = save(cc, "localhost/withhistory:1", tmp_path)
    private = tempfile.mkdtemp(prefix="ccp-", dir="/tmp")
    podman = ["podman", "--cgroup-manager=cgroupfs", "--root", f"{private}/root",
              "--runroot", f"{private}/run"]  # fmt: skip
    try:
        subprocess.run([*podman, "load", "-i", str(base)], check=True, capture_output=True)
        built = subprocess.run(
            [*podman, "build", "--pull=never", "--runtime", "runc", "--ulimit",
             "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "-t", "localhost/same:1",
             str(root)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
        theirs_tar = tmp_path / "theirs.tar"
        subprocess.run([*podman, "save", "--format", "docker-archive", "-o", str(theirs_tar),
                        "localhost/same:1"], check=True, capture_output=True)  # fmt: skip
        theirs = flatten(theirs_tar)
        # And podman runs cocoon's image.
        subprocess.run([*podman, "load", "-i", str(save(cc, "localhost/same:1", tmp_path))],
                       check=True, capture_output=True)  # fmt: skip
        ran = subprocess.run(
            [*podman, "run", "--runtime", "runc", "--rm", "--network", "none", "--ulimit",
             "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "localhost/same:1",
             "cat", "/opt/tool/out"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert (ran.returncode, ran.stdout) == (0, "built\n"), ran.stderr
    finally:
        subprocess.run([*podman, "rmi", "-a", "-f"], capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", private], check=False)
    # Mount points podman's RUN leaves (hosts, resolv.conf) are not the image's files.
    for name in ("etc/hosts", "etc/resolv.conf", "etc/hostname", "run/.containerenv"):
        if name not in ours:
            theirs.pop(name, None)
    assert sorted(ours) == sorted(theirs)
    differ = {p: (ours[p], theirs[p]) for p in ours if ours[p] != theirs[p]}
    # One known difference: a folder COPY makes its destination with the source
    # folder's mode in Docker's BuildKit (which cocoon follows), 0755 in buildah.
    assert ours["opt/tool"][1] == 0o751 and theirs.get("opt/tool", (0, 0o755))[1] == 0o755
    differ.pop("opt/tool", None)
    assert not differ, differ


def test_docker_cli_builds_through_the_api(cocoon, busybox, tmp_path):
    from engine import DOCKER, Service

    if not Path(DOCKER).exists():
        pytest.skip("the docker CLI is not installed")
    root = context(tmp_path, f"FROM {busybox}\nARG WHO\nRUN echo hi-$WHO > /who\n"
                   "COPY f.txt /f.txt\n", {"f.txt": "f\n"})  # fmt: skip
    with Service(cocoon) as service:
        env = {**service.docker_env(), "DOCKER_BUILDKIT": "0"}
        built = subprocess.run(
            [DOCKER, "build", "-t", "localhost/viaapi:1", "--build-arg", "WHO=api", str(root)],
            env=env, capture_output=True, timeout=600,
        )  # fmt: skip
        out = built.stdout.decode()
        assert built.returncode == 0, out + built.stderr.decode()
        assert "Successfully tagged localhost/viaapi:1" in out
        failed = subprocess.run(
            [DOCKER, "build", "-q", "-"], input=f"FROM {busybox}\nRUN exit 5\n".encode(),
            env=env, capture_output=True, timeout=600,
        )  # fmt: skip
        assert failed.returncode != 0 and b"exited with code 5" in failed.stderr, failed
    assert ok(cocoon("run", "--rm", "localhost/viaapi:1", "cat", "/who", "/f.txt")) == "hi-api\nf\n"


def test_a_stage_on_an_earlier_one_sees_its_files_cached_or_not(cc, busybox, tmp_path):
    first = f"FROM {busybox} AS base\nRUN echo one > /one && rm /bin/vi\n"
    second = first + "FROM base AS second\nRUN cat /one > /two && test ! -e /bin/vi\n"
    scratch = second + "FROM scratch\nCOPY --from=1 /two /three\n"
    root = context(tmp_path, first)
    ok(build(cc, root))  # the first stage alone: cached for what follows
    (root / "Dockerfile").write_text(scratch)
    # Its layers come back from the cache into the VM for the second stage.
    out = build(cc, root, "--progress", "plain", "-t", "localhost/onbase:1")
    assert out.returncode == 0 and out.stderr.count(b"(cached)") == 1, out.stderr.decode()
    files = saved(cc, "localhost/onbase:1", tmp_path)
    assert set(files) == {"three"} and files["three"][4] == b"one\n"
    ok(build(cc, root, "--no-cache", "--target", "second", "-t", "localhost/onbase:2"))
    files = saved(cc, "localhost/onbase:2", tmp_path)
    assert files["two"][4] == b"one\n" and "bin/vi" not in files


def test_run_steps_have_a_network_only_when_asked(cc, busybox, tmp_path):
    # Nothing is sent anywhere: the step only reads its routing table.
    root = context(tmp_path, f"FROM {busybox}\nRUN cat /proc/net/route > /route\n")
    ok(build(cc, root, "--network", "default", "-t", "localhost/net:1"))
    routes = saved(cc, "localhost/net:1", tmp_path)["route"][4].decode()
    assert "eth0\t00000000\t0202000A" in routes, routes  # default via 10.0.2.2
    ok(build(cc, root, "--network", "none", "--no-cache", "-t", "localhost/net:2"))
    assert "eth0" not in saved(cc, "localhost/net:2", tmp_path)["route"][4].decode()


def test_a_killed_build_s_leftovers_go_with_the_next_build(cc, busybox, tmp_path):
    import signal
    import time

    root = context(tmp_path, f"FROM {busybox}\nRUN echo started; sleep 600\n")
    build = cc.popen("build", "--progress", "plain", str(root), stderr=subprocess.PIPE)
    try:
        for line in build.stderr:
            if line == b"started\n":
                break
        assert cc.vms(), "the build VM runs"
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait()
    deadline = time.monotonic() + 60
    while cc.vms() and time.monotonic() < deadline:  # the guest goes when its port closes
        time.sleep(0.2)
    assert not cc.vms()
    assert any(p.name.startswith("vm-") for p in (cc.state / "build").iterdir())
    ok(cc("build", "-q", str(context(tmp_path, f"FROM {busybox}\nCMD true\n"))))
    no_build_leftovers(cc)


def test_each_instruction_reaches_the_image(cc, busybox, tmp_path):
    parent = context(tmp_path, f"FROM {busybox}\nONBUILD RUN echo triggered > /onbuild\n")
    ok(build(cc, parent, "-t", "localhost/parent:1"))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "inside.txt").write_text("from a tar\n")
    dockerfile = """\
FROM localhost/parent:1
SHELL ["/bin/sh", "-c"]
COPY --chown=app:staff owned.txt /home/app/owned.txt
ADD pkg.tar.gz /unpacked/
RUN ["/bin/sh", "-c", "echo exec-form > /exec"]
RUN <<EOF
echo heredoc > /heredoc
EOF
USER app
RUN id -u > /tmp/uid
EXPOSE 8080/tcp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["cat"]
CMD ["/onbuild"]
WORKDIR /made/here
WORKDIR /tmp
WORKDIR /
"""
    (tmp_path / "child").mkdir()
    root = context(tmp_path / "child", dockerfile, {"owned.txt": "mine\n"})
    with tarfile.open(root / "pkg.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "pkg" / "inside.txt", "inside.txt")
    ok(build(cc, root, "-t", "localhost/child:1"))
    assert ok(cc("run", "--rm", "localhost/child:1")) == "triggered\n"
    files = saved(cc, "localhost/child:1", tmp_path)
    assert files["home/app/owned.txt"][2:] == (1000, 50, b"mine\n")
    assert files["unpacked/inside.txt"][4] == b"from a tar\n"
    assert files["exec"][4] == b"exec-form\n" and files["heredoc"][4] == b"heredoc\n"
    assert files["tmp/uid"][4] == b"1000\n" and files["tmp/uid"][2] == 1000
    config = image_config(cc, "localhost/child:1", tmp_path)["config"]
    assert config["ExposedPorts"] == {"8080/tcp": {}} and config["Volumes"] == {"/data": {}}
    assert config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert config["Entrypoint"] == ["cat"] and config["Cmd"] == ["/onbuild"]
    assert not config.get("OnBuild")  # triggers run once, in the child, and are not inherited
    # Docker makes a WORKDIR's folder even if nothing uses it (buildah does not):
    # a layer when it was missing, an empty_layer entry when it was there.
    assert files["made/here"][:4] == (tarfile.DIRTYPE, 0o755, 0, 0)
    history = image_config(cc, "localhost/child:1", tmp_path)["history"][-3:]
    assert [bool(h.get("empty_layer")) for h in history] == [False, True, True]


def test_what_a_run_leaves_running_ends_with_it(cc, busybox, tmp_path):
    dockerfile = (f"FROM {busybox}\nRUN sleep 600 & echo left-behind\n"
                  "RUN ps -o args | grep -c '^sleep 600' > /count || true\n")  # fmt: skip
    ok(build(cc, context(tmp_path, dockerfile), "-t", "localhost/leftover:1"))
    assert saved(cc, "localhost/leftover:1", tmp_path)["count"][4] == b"0\n"


def test_a_built_image_pushes_and_pulls_back_the_same(cc, busybox, tmp_path):
    from registries import running

    root = context(tmp_path, f'FROM {busybox}\nRUN echo pushed > /p\nCMD ["cat", "/p"]\n')
    built = ok(build(cc, root, "-q", "-t", "localhost/topush:1")).strip()
    elsewhere = dict(cc.env, COCOON_STATE_DIR=str(tmp_path / "elsewhere"))
    with running() as registry:
        ref = f"{registry.host}/built/topush:1"
        ok(cc("image", "push", "localhost/topush:1", ref))
        pulled = subprocess.run(cc.argv("image", "pull", ref), env=elsewhere, capture_output=True)
        assert pulled.returncode == 0, pulled.stderr.decode()
    again = subprocess.run(cc.argv("image", "ls", "--format", "json"), env=elsewhere,
                           capture_output=True, text=True)  # fmt: skip
    assert built in [i["id"] for i in json.loads(again.stdout)], (built, again.stdout)


def test_copy_into_a_folder_or_a_link_to_one_that_the_image_has(cc, busybox, tmp_path):
    dockerfile = (f"FROM {busybox}\nRUN mkdir -p /opt/real && ln -s /opt/real /opt/link\n"
                  "COPY tool.sh /usr/bin\nCOPY other.sh /opt/link\n"
                  "COPY plain.txt /new-name\n")  # fmt: skip
    files = {"tool.sh": "t\n", "other.sh": "o\n", "plain.txt": "p\n"}
    ok(build(cc, context(tmp_path, dockerfile, files), "-t", "localhost/into:1"))
    out = saved(cc, "localhost/into:1", tmp_path)
    assert out["usr/bin/tool.sh"][4] == b"t\n" and out["usr/bin"][0] == tarfile.DIRTYPE
    assert out["opt/real/other.sh"][4] == b"o\n" and out["opt/link"][0] == tarfile.SYMTYPE
    assert out["new-name"][4] == b"p\n"


def _started_build(cc, base: str, tmp_path: Path, *args: str) -> subprocess.Popen:
    """A build whose RUN step has printed ``started`` and then sleeps."""
    root = context(tmp_path, f"FROM {base}\nRUN echo started; sleep 600\n")
    build = cc.popen("build", "--progress", "plain", *args, str(root), stderr=subprocess.PIPE)
    for line in build.stderr:
        if line == b"started\n":
            return build
    build.kill()
    raise AssertionError(f"the RUN step never started: {build.wait()}")


def test_a_frozen_build_guest_fails_the_step_and_leaves_nothing(cc, busybox, tmp_path):
    from cocoon.agent.keepalive import DEAD_AFTER, SILENT
    from cocoon.vm.qmp import Qmp

    before = ok(cc("image", "ls", "-q"))
    build = _started_build(cc, busybox, tmp_path, "-t", "localhost/frozen:1")
    try:
        (sock,) = (cc.state / "build").glob("vm-*/vmm.sock")
        with Qmp(sock) as qmp:  # its vCPUs stop, as a hung guest kernel's do
            qmp.execute("stop")
        _, err = build.communicate(timeout=DEAD_AFTER + 60)
        err = err.decode()
        assert build.returncode == 125, err
    finally:
        if build.poll() is None:
            build.kill()
    assert f"cocoon: Dockerfile:2: RUN echo started; sleep 600: {SILENT}" in err, err
    assert not cc.vms()
    assert ok(cc("image", "ls", "-q")) == before
    no_build_leftovers(cc)


def test_an_interrupted_build_exits_130_and_leaves_nothing(cc, busybox, tmp_path):
    import signal

    before = ok(cc("image", "ls", "-q"))
    build = _started_build(cc, busybox, tmp_path, "-t", "localhost/interrupted:1")
    try:
        build.send_signal(signal.SIGINT)  # what Ctrl-C sends cocoon (the VM has its own session)
        _, err = build.communicate(timeout=120)
        assert build.returncode == 128 + signal.SIGINT, err.decode()
    finally:
        if build.poll() is None:
            build.kill()
    assert not cc.vms()
    assert ok(cc("image", "ls", "-q")) == before
    no_build_leftovers(cc)
