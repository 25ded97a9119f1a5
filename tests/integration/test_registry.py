"""Pull and push against a real registry (Debian's docker-registry) started by the test.

Images go in with skopeo and come out with cocoon, and the other way round;
digests must survive both ways. Auth: none, htpasswd (basic) and token.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shlex
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from oci import Layer, busybox_layer, write_layout
from registries import (
    StallingRegistry,
    TokenServer,
    make_ca,
    running,
    server_certificate,
    skopeo_copy,
)
from vm_fixtures import Cocoon

from cocoon.image.registry import pull, push
from cocoon.image.store import ImageStore
from cocoon.rootfs.disks import disk_key


@pytest.fixture
def fresh(cocoon: Cocoon, tmp_path: Path) -> Cocoon:
    """cocoon with its own empty store and config dir (for credentials)."""
    env = dict(cocoon.env)
    env["COCOON_STATE_DIR"] = str(tmp_path / "state")
    env["COCOON_CONFIG_DIR"] = str(tmp_path / "config")
    return Cocoon(env)


@pytest.fixture(scope="module")
def registry():
    with running() as registry:
        yield registry


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> tuple[Path, str]:
    """A three-layer busybox image as an OCI layout, and its manifest digest."""
    out = tmp_path_factory.mktemp("layout") / "oci"
    digest = write_layout(
        out,
        [busybox_layer(), Layer().file("hello.txt", b"hello from the registry\n"),
         Layer().dir("data").file("data/x", os.urandom(300_000))],
    )  # fmt: skip
    return out, digest


def _skopeo_digest(ref: str, *extra: str) -> str:
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", *extra, f"docker://{ref}"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return json.loads(out)["Digest"]


def _store_is_empty(state: Path) -> bool:
    root = state / "images"
    blobs = list((root / "blobs" / "sha256").iterdir()) if root.exists() else []
    staged = list((root / ".ingest").iterdir()) if root.exists() else []
    index = json.loads((root / "index.json").read_text()) if (root / "index.json").exists() else {}
    # No disk either, whole or partial (lock files may stay: they are empty).
    disks = [p for p in (state / "rootfs").glob("*") if p.suffix != ".lock"]
    return not blobs and not staged and not index.get("manifests") and not disks


def _blob_files(state: Path) -> dict[str, tuple[int, int]]:
    """Each stored blob's inode and mtime: a blob written again would change both."""
    folder = state / "images" / "blobs" / "sha256"
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_pull_what_skopeo_pushed(fresh, registry, layout):
    folder, digest = layout
    ref = f"{registry.host}/skopeo/busybox:1"
    skopeo_copy(f"oci:{folder}:latest", f"docker://{ref}")
    result = fresh("image", "pull", ref)
    assert result.returncode == 0, result.stderr.decode()
    assert digest in result.stdout.decode()
    listed = json.loads(fresh("image", "ls", "--format", "json").stdout)
    assert [i["reference"] for i in listed] == [ref]
    inspected = json.loads(fresh("image", "inspect", "--format", "json", ref).stdout)
    assert inspected[0]["Digest"] == digest and len(inspected[0]["Layers"]) == 3
    # The pull built the image's disk: its first run unpacks nothing.
    key = disk_key(ImageStore(fresh.state / "images").resolve(ref))
    assert (fresh.state / "rootfs" / f"{key}.ext4").exists()
    assert (fresh.state / "rootfs" / f"{key}.qcow2").exists()
    assert listed[0]["size"] > 300_000  # unpacked, as docker shows it
    # Pulling again downloads nothing and changes nothing.
    before = _blob_files(fresh.state)
    again = fresh("image", "pull", "-q", ref)
    assert (again.returncode, again.stderr) == (0, b"")
    assert _blob_files(fresh.state) == before


def test_pull_by_digest(fresh, registry, layout):
    folder, digest = layout
    skopeo_copy(f"oci:{folder}:latest", f"docker://{registry.host}/bydigest:1")
    result = fresh("image", "pull", f"{registry.host}/bydigest@{digest}")
    assert result.returncode == 0, result.stderr.decode()
    assert fresh("image", "inspect", f"{registry.host}/bydigest@{digest}").returncode == 0


def test_wrong_blob_fails_and_leaves_nothing(fresh, layout):
    folder, digest = layout
    # A registry of its own: blobs are shared by all its repositories.
    with running() as registry:
        ref = f"{registry.host}/tampered:1"
        skopeo_copy(f"oci:{folder}:latest", f"docker://{ref}")
        manifest = json.loads((folder / "blobs/sha256" / digest.partition(":")[2]).read_text())
        victim = registry.blob_data(manifest["layers"][1]["digest"])
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, different content
        victim.write_bytes(bytes(data))
        result = fresh("image", "pull", ref)
    assert result.returncode == 125
    assert "does not match its digest" in result.stderr.decode()
    assert _store_is_empty(fresh.state)


def test_layer_refused_while_its_disk_is_built_leaves_nothing(fresh, registry, tmp_path):
    # The disk is built as the pull ends: a layer that cannot be unpacked
    # stops it half way, and neither the image nor a half-built disk stays.
    layers = [busybox_layer(), Layer().file("fine", b"ok").file("../escape", b"x")]
    write_layout(tmp_path / "oci", layers)
    ref = f"{registry.host}/half/disk:1"
    skopeo_copy(f"oci:{tmp_path / 'oci'}:latest", f"docker://{ref}")
    result = fresh("image", "pull", "-q", ref)
    assert result.returncode == 125
    assert result.stderr.decode().count("\n") == 1 and "escapes the root" in result.stderr.decode()
    assert _store_is_empty(fresh.state)
    assert not list(Path("/dev/shm").glob("cocoon-.build-*"))


def test_pull_missing_image_is_one_line(fresh, registry):
    result = fresh("image", "pull", f"{registry.host}/no/such:image")
    assert result.returncode == 125
    assert result.stderr.decode().count("\n") == 1 and "MANIFEST_UNKNOWN" in result.stderr.decode()


def test_push_is_readable_by_skopeo_with_same_digests(fresh, registry, tmp_path):
    copy = tmp_path / "named"
    write_layout(
        copy,
        [busybox_layer(), Layer().file("pushed.txt", b"pushed by cocoon\n")],
        ref="localhost/pushme:1",
    )
    assert fresh("image", "load", str(copy)).returncode == 0
    stored = json.loads(fresh("image", "inspect", "--format", "json", "localhost/pushme:1").stdout)
    target = f"{registry.host}/cocoon/pushed:1"
    result = fresh("image", "push", "localhost/pushme:1", target)
    assert result.returncode == 0, result.stderr.decode()
    assert _skopeo_digest(target) == stored[0]["Digest"]
    out = tmp_path / "back"
    skopeo_copy(f"docker://{target}", f"oci:{out}:x")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == stored[0]["Digest"]
    for layer in stored[0]["Layers"]:
        blob = (out / "blobs/sha256" / layer["digest"].partition(":")[2]).read_bytes()
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
    # A second push finds every blob there already.
    assert fresh("image", "push", "-q", "localhost/pushme:1", target).returncode == 0


def test_chunked_push_and_pull_back(registry, layout, tmp_path):
    folder, digest = layout
    store = ImageStore(tmp_path / "store")
    from cocoon.image.archive import load

    load(store, folder)
    untagged = store.images()[0].id
    target = f"{registry.host}/chunked/app:2"
    assert push(untagged, target, store=store, chunked_above=1000) == digest
    assert _skopeo_digest(target) == digest
    again = ImageStore(tmp_path / "again")
    assert pull(target, store=again).digest == digest


def test_index_platform_selection(fresh, registry, tmp_path):
    layout = tmp_path / "multi"
    amd = write_layout(layout, [busybox_layer(), Layer().file("arch", b"amd64\n")])
    arm_config = {"Labels": {"arch": "arm64"}}
    arm = write_layout(layout / "arm", [Layer().file("arch", b"arm64\n")], config=arm_config)
    # One layout holding both manifests, under an index naming their platforms.
    for blob in (layout / "arm/blobs/sha256").iterdir():
        (layout / "blobs/sha256" / blob.name).write_bytes(blob.read_bytes())

    def entry(digest: str, arch: str) -> dict:
        size = (layout / "blobs/sha256" / digest.partition(":")[2]).stat().st_size
        return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                "size": size, "platform": {"os": "linux", "architecture": arch}}  # fmt: skip

    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry(arm, "arm64"), entry(amd, "amd64")],
        }
    ).encode()
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    (layout / "blobs/sha256" / index_digest.partition(":")[2]).write_bytes(index)
    top = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": index_digest,
        "size": len(index),
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    ref = f"{registry.host}/multi:1"
    skopeo_copy(f"oci:{layout}:latest", f"docker://{ref}", "--all")
    assert fresh("image", "pull", "-q", ref).returncode == 0
    host = json.loads(fresh("image", "inspect", "--format", "json", ref).stdout)[0]
    assert (host["Digest"], host["ManifestDigest"]) == (index_digest, amd)
    result = fresh("image", "pull", "--platform", "linux/arm64", ref)
    assert result.returncode == 0, result.stderr.decode()
    other = json.loads(fresh("image", "inspect", "--format", "json", ref).stdout)[0]
    assert other["Digest"] == arm and other["Config"]["Labels"] == {"arch": "arm64"}
    before = _blob_files(fresh.state)
    missing = fresh("image", "pull", "--platform", "linux/s390x", ref)
    assert (missing.returncode, missing.stderr.decode()) == (
        125,
        f"cocoon: {ref}: index {index_digest} has no image for linux/s390x "
        "(it offers: linux/amd64, linux/arm64)\n",
    )
    assert _blob_files(fresh.state) == before


def test_basic_auth_login_logout(fresh, layout, tmp_path):
    folder, digest = layout
    with running(htpasswd=("alice", "s3cret")) as registry:
        ref = f"{registry.host}/private/busybox:1"
        skopeo_copy(f"oci:{folder}:latest", f"docker://{ref}", "--dest-creds", "alice:s3cret")
        denied = fresh("image", "pull", ref)
        assert (denied.returncode, denied.stderr.decode()) == (125, _login_first(registry.host))
        assert _store_is_empty(fresh.state)
        wrong = fresh("registry", "login", "-u", "alice", "-p", "nope", registry.host)
        assert (wrong.returncode, wrong.stderr.decode()) == (
            125,
            f"cocoon: registry {registry.host}: access denied for user 'alice': "
            "UNAUTHORIZED authentication required\n",
        )
        login = fresh("registry", "login", "-u", "alice", "--password-stdin", registry.host,
                      input=b"s3cret\n")  # fmt: skip
        assert login.returncode == 0, login.stderr.decode()
        auth_file = Path(fresh.env["COCOON_CONFIG_DIR"]) / "auth.json"
        assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
        assert registry.host in json.loads(auth_file.read_text())["auths"]
        assert fresh("image", "pull", ref).returncode == 0
        assert fresh("image", "push", ref, f"{registry.host}/private/copy:1").returncode == 0
        assert _skopeo_digest(f"{registry.host}/private/copy:1", "--creds", "alice:s3cret") == (
            digest
        )
        assert fresh("registry", "logout", registry.host).returncode == 0
        assert fresh("image", "rm", ref).returncode == 0
        logged_out = fresh("image", "pull", ref)
        assert (logged_out.returncode, logged_out.stderr.decode()) == (
            125,
            _login_first(registry.host),
        )


def _login_first(host: str) -> str:
    return (
        f"cocoon: registry {host}: authentication required "
        f"(log in with 'cocoon registry login {host}')\n"
    )


def test_token_auth(fresh, tmp_path):
    with TokenServer(tmp_path, "bob", "pw") as tokens, running(token=tokens) as registry:
        ref = f"{registry.host}/tok/busybox:1"
        # Anonymous tokens may pull but not push.
        copy = tmp_path / "named"
        write_layout(copy, [busybox_layer()], ref="localhost/tok:1")
        assert fresh("image", "load", str(copy)).returncode == 0
        anonymous = fresh("image", "push", "localhost/tok:1", ref)
        assert (anonymous.returncode, anonymous.stderr.decode()) == (
            125,
            _login_first(registry.host).replace("\n", ": UNAUTHORIZED authentication required\n"),
        )
        login = fresh("registry", "login", "-u", "bob", "-p", "pw", registry.host)
        assert login.returncode == 0, login.stderr.decode()
        bad = fresh("registry", "login", "-u", "bob", "-p", "bad", registry.host)
        assert (bad.returncode, bad.stderr.decode()) == (
            125,
            f"cocoon: registry {registry.host}: access denied for user 'bob'\n",
        )
        tokens.issued.clear()
        result = fresh("image", "push", "localhost/tok:1", ref)
        assert result.returncode == 0, result.stderr.decode()
        # One token for the push scope, reused by every blob and the manifest.
        assert len(tokens.issued) == 1
        assert tokens.issued[0][0] == "repository:tok/busybox:pull,push"
        assert fresh("registry", "logout", registry.host).returncode == 0
        assert fresh("image", "rm", "localhost/tok:1").returncode == 0
        pulled = fresh("image", "pull", ref)
        assert pulled.returncode == 0, pulled.stderr.decode()


@pytest.mark.vm
def test_run_pulls_a_missing_image(cocoon, registry, layout):
    folder, _ = layout
    ref = f"{registry.host}/busybox"
    skopeo_copy(f"oci:{folder}:latest", f"docker://{ref}:latest")
    result = cocoon("run", "--rm", ref, "sh", "-c", "echo hi; cat /hello.txt")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"hi\nhello from the registry\n"


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory, layout):
    """The Debian registry over HTTPS only, its certificate signed by a test CA."""
    folder = tmp_path_factory.mktemp("tls")
    ca = make_ca(folder, "cocoon-test-ca")
    with running(tls=server_certificate(folder, ca)) as registry:
        skopeo_copy(f"oci:{layout[0]}:latest", f"docker://{registry.host}/tls/busybox:1")
        yield registry, ca[0], folder


def _trust(fresh: Cocoon, host: str, ca: Path) -> None:
    target = Path(fresh.env["COCOON_CONFIG_DIR"]) / "certs.d" / host / "ca.crt"
    target.parent.mkdir(parents=True)
    target.write_bytes(ca.read_bytes())


def test_https_registry_with_its_own_ca(fresh, tls_registry, layout):
    registry, ca, _ = tls_registry
    _trust(fresh, registry.host, ca)
    result = fresh("image", "pull", "-q", f"{registry.host}/tls/busybox:1")
    assert result.returncode == 0, result.stderr.decode()
    assert f"Digest: {layout[1]}" in result.stdout.decode()


def test_https_registry_with_the_wrong_ca_is_refused_unless_insecure(fresh, tls_registry, layout):
    registry, _, folder = tls_registry
    # A CA configured for the registry means its certificate is checked, even on loopback.
    _trust(fresh, registry.host, make_ca(folder, "some-other-ca")[0])
    ref = f"{registry.host}/tls/busybox:1"
    refused = fresh("image", "pull", "-q", ref)
    stderr = refused.stderr.decode()
    assert refused.returncode == 125 and stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"cocoon: registry {registry.host}: GET https://{registry.host}/v2/")
    assert "CERTIFICATE_VERIFY_FAILED" in stderr and "or use --insecure)" in stderr
    assert _store_is_empty(fresh.state)
    insecure = fresh("image", "pull", "-q", "--insecure", ref)
    assert insecure.returncode == 0, insecure.stderr.decode()
    assert f"Digest: {layout[1]}" in insecure.stdout.decode()


def test_loopback_registry_over_https_without_a_ca(fresh, tls_registry, layout):
    # Loopback is insecure as for Docker: HTTPS unverified (this one speaks nothing else).
    registry, _, _ = tls_registry
    result = fresh("image", "pull", "-q", f"{registry.host}/tls/busybox:1")
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="root's default config dir is /etc/cocoon")
def test_credentials_default_to_etc_cocoon_for_root(fresh, layout, tmp_path):
    """Without COCOON_CONFIG_DIR, root's login lands in /etc/cocoon/auth.json.

    The real /etc is never written: the commands run in a mount namespace of
    their own, where /etc is an overlay whose changes land in the test's folder.
    """
    folder, _ = layout
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    env = {k: v for k, v in fresh.env.items() if k != "COCOON_CONFIG_DIR"}
    cocoon = shlex.join(fresh.argv())
    with running(htpasswd=("carol", "pa55")) as registry:
        ref = f"{registry.host}/etc/busybox:1"
        skopeo_copy(f"oci:{folder}:latest", f"docker://{ref}", "--dest-creds", "carol:pa55")
        script = (
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc"
            f" && {cocoon} registry login -u carol -p pa55 {registry.host} >/dev/null"
            f" && stat -c %a /etc/cocoon/auth.json && {cocoon} image pull -q {ref}"
        )
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "600"
    saved = json.loads((upper / "cocoon" / "auth.json").read_text())
    assert list(saved["auths"]) == [registry.host]


def test_interrupted_pull_leaves_nothing(fresh, tmp_path):
    layer_tar = Layer().file("noise", os.urandom(4 << 20)).tar()
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux",
         "rootfs": {"type": "layers", "diff_ids": [_sha(layer_tar)]}}
    ).encode()  # fmt: skip
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": _sha(config), "size": len(config)},
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                     "digest": _sha(layer), "size": len(layer)}]}
    ).encode()  # fmt: skip
    blobs = {_sha(config): config, _sha(layer): layer}
    with StallingRegistry(manifest, blobs) as registry:
        pull = fresh.popen("image", "pull", "-q", f"{registry.host}/stalls:1",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        try:
            assert registry.stalled.wait(60), "the pull never started downloading"
            pull.send_signal(signal.SIGINT)
            _, stderr = pull.communicate(timeout=30)
        finally:
            if pull.poll() is None:
                pull.kill()
                pull.wait()
    assert pull.returncode == 128 + signal.SIGINT, stderr.decode()
    assert _store_is_empty(fresh.state)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
