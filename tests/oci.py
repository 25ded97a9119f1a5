"""Build real OCI image layouts for tests (and `make example-image`).

Images are made from Debian's busybox-static: no registry needed. Layers are
gzip tarballs with exact digests, so every loader and rootfs code path that
handles registry images handles these too.

    python tests/oci.py busybox OUT_DIR   # writes localhost/busybox:latest
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cocoon.image.model import Image
    from cocoon.image.store import ImageStore

BUSYBOX = Path("/bin/busybox")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = """root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
staff:x:50:app
app:x:1000:
nogroup:x:65534:
"""


@dataclass
class Layer:
    """A layer described as tar members, in order."""

    members: list[tuple[tarfile.TarInfo, bytes | None]] = field(default_factory=list)

    def _add(self, info: tarfile.TarInfo, data: bytes | None = None) -> Layer:
        info.mtime = info.mtime or 1_700_000_000
        self.members.append((info, data))
        return self

    def dir(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Layer:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, gid
        return self._add(info)

    def file(self, name: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Layer:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), mode, uid, gid
        return self._add(info, data)

    def symlink(self, name: str, target: str) -> Layer:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        return self._add(info)

    def hardlink(self, name: str, target: str) -> Layer:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.LNKTYPE, target
        return self._add(info)

    def whiteout(self, name: str) -> Layer:
        parent, _, base = name.rstrip("/").rpartition("/")
        return self.file(f"{parent}/.wh.{base}" if parent else f".wh.{base}", b"")

    def opaque(self, directory: str) -> Layer:
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq", b"")

    def tar(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in self.members:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


def busybox_layer() -> Layer:
    """A minimal root: busybox, its applet links, users and the usual folders."""
    layer = Layer()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "dev",
              "proc", "sys", "var", "run"):  # fmt: skip
        layer.dir(d, 0o700 if d == "root" else 0o755)
    layer.dir("tmp", 0o1777)
    layer.dir("home/app", 0o755, uid=1000, gid=1000)
    layer.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in sorted(set(applets)):
        if applet != "bin/busybox":
            layer.symlink(applet, "/bin/busybox")
    layer.file("etc/passwd", PASSWD.encode())
    layer.file("etc/group", GROUP.encode())
    return layer


def _zstd(raw: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(raw)


_COMPRESS = {"gzip": lambda raw: gzip.compress(raw, mtime=0), "zstd": _zstd, "none": bytes}


def _blob(blobs: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_layout(
    out: Path,
    layers: list[Layer],
    *,
    ref: str = "latest",
    config: dict[str, object] | None = None,
    compression: str = "gzip",
) -> str:
    """Write an OCI image layout to ``out``; return the manifest digest.

    ``compression`` of the layers: gzip (the usual), zstd (podman's and
    buildah's option) or none.
    """
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layer_descs, diff_ids = [], []
    for layer in layers:
        raw = layer.tar()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        desc = _blob(blobs, _COMPRESS[compression](raw))
        suffix = "" if compression == "none" else f"+{compression}"
        layer_descs.append({"mediaType": f"application/vnd.oci.image.layer.v1.tar{suffix}", **desc})
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [f"PATH={PATH}"], "Cmd": ["sh"], **(config or {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_desc = _blob(blobs, json.dumps(image_config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": layer_descs,
    }
    manifest_desc = _blob(blobs, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest_desc,
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    (out / "index.json").write_text(json.dumps(index))
    return str(manifest_desc["digest"])


def store_unchecked(store: ImageStore, layer: Layer, ref: str) -> Image:
    """An image put straight into a store, as one stored before loads checked layers did."""
    from cocoon.image.model import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Manifest, dumps

    raw = layer.tar()
    blob = store.put_bytes(raw, OCI_LAYER)
    config = {"architecture": "amd64", "os": "linux", "config": {"Env": [f"PATH={PATH}"]},
              "rootfs": {"type": "layers", "diff_ids": [blob.digest]}}  # fmt: skip
    manifest = Manifest(OCI_MANIFEST, store.put_bytes(dumps(config), OCI_CONFIG), (blob,))
    store.tag(ref, store.put_bytes(dumps(manifest.to_json()), OCI_MANIFEST))
    return store.resolve(ref)


def make_bundle(folder: Path, args: list[str], **config: object) -> Path:
    """An OCI runtime bundle (config.json and a busybox root) running ``args``."""
    root = folder / "rootfs"
    root.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(busybox_layer().tar())) as tar:
        tar.extractall(root, filter="fully_trusted")  # our own layer
    spec = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {
            "args": args,
            "cwd": "/",
            "env": [f"PATH={PATH}"],
            "user": {"uid": 0, "gid": 0},
        },
        "hostname": "bundle",
        "linux": {"namespaces": [{"type": "network"}, {"type": "pid"}]},
        **config,
    }
    (folder / "config.json").write_text(json.dumps(spec))
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "busybox":
        sys.exit("usage: tests/oci.py busybox OUT_DIR")
    write_layout(Path(sys.argv[2]), [busybox_layer()], ref="localhost/busybox:latest")
