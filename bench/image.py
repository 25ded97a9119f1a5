"""Image disk benchmark: `make bench-image` (or `python bench/image.py`).

The image is Debian-based, made from the packages in apt's cache (python3.11,
perl, numpy, openssl, pandas: about 220 MB unpacked, in four layers), served
by a local docker-registry on 127.0.0.1. Three figures:

- pull to first run done: `cocoon image pull` then `cocoon run --rm IMG true`
  from an empty store, against `podman pull` then `podman run --rm IMG true`
  with an empty private store (podman unpacks while it pulls);
- the disk build alone, in seconds per 100 MB of unpacked layers; with
  ``--baseline REV`` the same for cocoon at git revision REV, and the ratio;
- disk bytes used by the base image and N images made FROM it (each adds a
  small layer with a whiteout), against the base's own disk.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from oci import Layer, busybox_layer, write_layout  # noqa: E402
from registries import running, skopeo_copy  # noqa: E402

APT_CACHE = "/var/cache/apt/archives"
# Two layers of packages, as a Dockerfile's `apt-get install` steps would add them.
PACKAGES = (
    ("libpython3.11-minimal", "libpython3.11-stdlib", "python3.11-minimal", "python3.11",
     "libpython3.11", "perl-base", "perl-modules-5.36", "libperl5.36", "libssl3",
     "python3.11-doc"),
    ("python3-numpy", "python3-pandas-lib", "python3-pandas"),
)  # fmt: skip
# What works with Debian's podman on these cgroup-v1 hosts (../shared/ENVIRONMENT.md).
PODMAN_RUN = ["run", "--runtime", "runc", "--rm", "--network", "none",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]  # fmt: skip
# The build at a git revision, timed in a process of its own (its own code on sys.path).
_BASELINE = """
import sys, time
from cocoon.image.store import ImageStore
from cocoon.rootfs.disks import image_disk
store = ImageStore()
image = store.resolve(sys.argv[1])
t = time.perf_counter()
image_disk(store, image)
print(time.perf_counter() - t)
"""


def deb_layer(packages: tuple[str, ...]) -> Layer:
    """The files of Debian packages (from apt's cache), as one layer."""
    layer = Layer()
    seen: set[str] = set()  # packages share folders; a layer names each path once
    for package in packages:
        found = sorted(glob.glob(f"{APT_CACHE}/{package}_*_*.deb"))
        if not found:
            sys.exit(f"bench/image.py: {package} is not in {APT_CACHE} (apt-get download it)")
        argv = ["dpkg-deb", "--fsys-tarfile", found[-1]]
        data = subprocess.run(argv, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                name = member.name.removeprefix("./").rstrip("/")
                if name in seen:
                    continue
                seen.add(name)
                content = tar.extractfile(member) if member.isreg() else None
                layer.members.append((member, content.read() if content else None))
    return layer


def unpacked(layers: list[Layer]) -> int:
    return sum(len(data or b"") for layer in layers for _, data in layer.members)


def child_layer(i: int) -> Layer:
    """What a small Dockerfile step adds: a file, a changed file, a deleted file."""
    rng = random.Random(i)
    layer = Layer().file(f"app/{i}.bin", rng.randbytes(1 << 20)).file("etc/app.conf", b"%d\n" % i)
    return layer.whiteout("usr/share/doc/python3.11")


def cocoon(*args: str) -> list[str]:
    return [sys.executable, "-m", "cocoon.cli.main", *args]


def timed(*argvs: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    for argv in argvs:
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def podman(root: Path) -> list[str]:
    return ["podman", "--cgroup-manager=cgroupfs", "--root", str(root / "root"),
            "--runroot", str(root / "run")]  # fmt: skip


def first_run(ref: str, work: Path, runs: int) -> tuple[list[float], list[float]]:
    """Pull then run `true`, from an empty store each time: cocoon's and podman's."""
    ours, theirs = [], []
    for i in range(runs):
        env = dict(os.environ, COCOON_STATE_DIR=str(work / f"pull{i}"), COCOON_NETWORK="none",
                   COCOON_RUN_DIR=str(work / "run"))  # fmt: skip
        ours.append(timed(cocoon("image", "pull", "-q", "--insecure", ref),
                          cocoon("run", "--rm", ref, "true"), env=env))  # fmt: skip
        shutil.rmtree(work / f"pull{i}")
        if shutil.which("podman"):
            root = work / f"podman{i}"
            pull = [*podman(root), "pull", "-q", "--tls-verify=false", ref]
            try:
                theirs.append(timed(pull, [*podman(root), *PODMAN_RUN, ref, "true"]))
            finally:
                subprocess.run([*podman(root), "rmi", "-af"], capture_output=True)
                # podman bind-mounts its overlay folder onto itself, and may leave it.
                subprocess.run(["umount", str(root / "root" / "overlay")], capture_output=True)
                shutil.rmtree(root, ignore_errors=True)
    return ours, theirs


def disk_build(layout: Path, ref: str, work: Path, runs: int, revision: str | None) -> dict:
    """Seconds to build the disk of an image loaded without one; at ``revision`` too."""
    figures: dict[str, list[float]] = {"now": [], "baseline": []}
    old_src = None
    if revision:
        old_src = work / "baseline"
        old_src.mkdir()
        archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", revision, "src"],
                                 capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
    for i in range(runs):
        state = work / f"build{i}"
        env = dict(os.environ, COCOON_STATE_DIR=str(state), PYTHONDONTWRITEBYTECODE="1")
        from cocoon.image.archive import load
        from cocoon.image.store import ImageStore
        from cocoon.rootfs.disks import image_disk

        os.environ["COCOON_STATE_DIR"] = str(state)
        store = ImageStore()
        (image,) = load(store, layout, prepare=False)
        t = time.perf_counter()
        image_disk(store, image)
        figures["now"].append(time.perf_counter() - t)
        shutil.rmtree(state)
        if old_src is not None:
            old_env = dict(env, PYTHONPATH=str(old_src / "src"))
            subprocess.run(cocoon("image", "load", str(layout)), env=old_env, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            took = subprocess.run([sys.executable, "-c", _BASELINE, ref], env=old_env,
                                  capture_output=True, text=True, check=True).stdout  # fmt: skip
            figures["baseline"].append(float(took))
            shutil.rmtree(state)
    return figures


def sharing(layouts: list[Path], work: Path) -> tuple[int, int]:
    """Disk bytes of the first image alone, and of all of them loaded in turn."""
    from cocoon.image.archive import load
    from cocoon.image.store import ImageStore

    os.environ["COCOON_STATE_DIR"] = str(work / "sharing")
    store = ImageStore()
    folder = work / "sharing" / "rootfs"
    sizes = []
    for layout in layouts:
        load(store, layout)
        # Each file once: a child's KEY.parent is a hard link to its parent's disk.
        files = {p.stat().st_ino: p.stat().st_blocks * 512 for p in folder.iterdir()}
        sizes.append(sum(files.values()))
    return sizes[0], sizes[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--children", type=int, default=4, help="images FROM the base")
    parser.add_argument("--baseline", metavar="REV", help="also time the disk build at REV")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cocoon-bench-image-"))
    try:
        base = [busybox_layer(), *(deb_layer(p) for p in PACKAGES)]
        size = unpacked(base)
        write_layout(work / "base", base, ref="localhost/bench/deb:1")
        children = []
        for i in range(args.children):
            children.append(work / f"child{i}")
            write_layout(children[-1], [*base, child_layer(i)], ref=f"localhost/bench/app{i}:1")
        with running() as registry:
            ref = f"{registry.host}/bench/deb:1"
            skopeo_copy(f"oci:{work / 'base'}:localhost/bench/deb:1", f"docker://{ref}")
            ours, theirs = first_run(ref, work, args.runs)
        builds = disk_build(work / "base", "localhost/bench/deb:1", work, args.runs, args.baseline)
        alone, together = sharing([work / "base", *children], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"image: Debian packages, {len(base)} layers, {size / 1e6:.0f} MB unpacked")
    cocoon_s = statistics.median(ours)
    print(f"pull + first run, cocoon   median {cocoon_s:.2f}s  runs {[round(t, 2) for t in ours]}")
    if theirs:
        podman_s = statistics.median(theirs)
        print(f"pull + first run, podman   median {podman_s:.2f}s  runs "
              f"{[round(t, 2) for t in theirs]}")  # fmt: skip
        print(f"  ratio cocoon/podman: {cocoon_s / podman_s:.2f}")
    now = statistics.median(builds["now"])
    per_100 = now / (size / 100e6)
    print(f"disk build   median {now:.2f}s  ({per_100:.2f}s per 100 MB unpacked)")
    if builds["baseline"]:
        then = statistics.median(builds["baseline"])
        print(f"disk build at {args.baseline}  median {then:.2f}s  "
              f"ratio now/then: {now / then:.2f}")  # fmt: skip
    print(f"disk bytes: base alone {alone / 1e6:.0f} MB; base + {args.children} images FROM it "
          f"{together / 1e6:.0f} MB  (ratio {together / alone:.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
