"""Build benchmark: `make bench-build` (or `python bench/build.py`).

A three-stage Dockerfile (a dependency stage, a build stage that copies from
it and from the context, a final stage with the result), built by
``cocoon build`` and by ``podman build`` from the same context and the same
base image, each with a private store:

- cold: no build cache (cocoon's cache folder emptied, podman ``--no-cache``);
  the base image is stored, its disk prepared, in both;
- cached: the same build again, every step a cache hit;
- one change: one source file edited, the steps from its COPY on run again.

The base is Debian bookworm (``debootstrap --variant=minbase`` from Debian's
mirror, cached by the content hash of its arguments under cocoon's cache
folder), or with ``--base busybox`` the busybox image of the tests. Prints
medians and cocoon's time as a ratio of podman's (below 1.0: cocoon is
faster); ``--json FILE`` records them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from oci import busybox_layer  # noqa: E402

from cocoon import paths  # noqa: E402

BASE = "localhost/bench-base:1"
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
# What works with Debian's podman on these cgroup-v1 hosts (../shared/ENVIRONMENT.md).
PODMAN_BUILD = ["build", "--runtime", "runc", "--network", "none", "--pull=never",
                "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]  # fmt: skip
DOCKERFILE = f"""\
FROM {BASE} AS deps
RUN mkdir -p /deps && i=0; while [ $i -lt 200 ]; do echo "dependency $i" > /deps/$i.txt; \\
    i=$((i+1)); done
RUN cat /deps/*.txt | sort > /deps/all.txt

FROM {BASE} AS build
COPY --from=deps /deps/all.txt /work/deps.txt
COPY src/ /work/src/
RUN cd /work && cat src/*.txt deps.txt | sort > build.out && wc -l build.out

FROM {BASE}
ENV APP=/app
WORKDIR /app
COPY --from=build /work/build.out ./build.out
RUN ls -l /app > /app/listing
CMD ["cat", "/app/build.out"]
"""


def debian_rootfs() -> Path:
    """A minbase Debian root as a tar, made once and cached by its recipe's hash."""
    recipe = f"debootstrap --variant=minbase {SUITE} {MIRROR}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    cached = paths.cache_dir() / "bench" / f"debian-{SUITE}-minbase-{key}.tar"
    if cached.exists():
        return cached
    if shutil.which("debootstrap") is None:
        sys.exit("bench/build.py: debootstrap is missing (apt-get install debootstrap)")
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as work:
        root = Path(work) / "root"
        print(f"making the Debian base once: {recipe}", file=sys.stderr)
        subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        partial = Path(work) / "root.tar"
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-cf",
                        str(partial), "."], check=True)  # fmt: skip
        partial.rename(cached)
    return cached


def busybox_rootfs(work: Path) -> Path:
    out = work / "busybox.tar"
    out.write_bytes(busybox_layer().tar())
    return out


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Cocoon:
    def __init__(self, work: Path) -> None:
        self.state = work / "cocoon-state"
        # The agent of this tree: build steps need its build mode.
        guest = HERE.parent / "guest"
        subprocess.run(["make", "-s", "-C", str(guest)], check=True)
        self.env = {**os.environ, "COCOON_STATE_DIR": str(self.state),
                    "COCOON_RUN_DIR": tempfile.mkdtemp(prefix="ccb-", dir="/tmp"),
                    "COCOON_AGENT": str(guest / "build" / "cocoon-agent")}  # fmt: skip

    def __call__(self, *args: str) -> None:
        argv = [sys.executable, "-m", "cocoon.cli.main", *args]
        result = subprocess.run(argv, env=self.env, capture_output=True)
        if result.returncode != 0:
            sys.exit(f"cocoon {' '.join(args)} failed: {result.stderr.decode()}")

    def build(self, context: Path) -> None:
        self("build", "-q", "-t", "localhost/bench-app:1", str(context))

    def forget_cache(self) -> None:
        shutil.rmtree(self.state / "build-cache", ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.env["COCOON_RUN_DIR"], ignore_errors=True)


class Podman:
    def __init__(self, work: Path) -> None:
        # podman wants a short runroot: private folders under /tmp.
        self.private = tempfile.mkdtemp(prefix="ccpb-", dir="/tmp")
        self.argv = ["podman", "--cgroup-manager=cgroupfs", "--root", f"{self.private}/root",
                     "--runroot", f"{self.private}/run"]  # fmt: skip

    def __call__(self, *args: str) -> None:
        result = subprocess.run([*self.argv, *args], capture_output=True)
        if result.returncode != 0:
            sys.exit(f"podman {' '.join(args)} failed: {result.stderr.decode()}")

    def build(self, context: Path, *extra: str) -> None:
        self(*PODMAN_BUILD, *extra, "-q", "-t", "localhost/bench-app:1", str(context))

    def close(self) -> None:
        subprocess.run([*self.argv, "rmi", "-a", "-f"], capture_output=True, timeout=300)
        subprocess.run(["rm", "-rf", self.private], check=False)


def context(work: Path) -> Path:
    root = work / "context"
    (root / "src").mkdir(parents=True)
    (root / "Dockerfile").write_text(DOCKERFILE)
    for i in range(20):
        (root / "src" / f"{i}.txt").write_text(f"source file {i}\n" * 50)
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--base", choices=("debian", "busybox"), default="debian")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cocoon-bench-build-"))
    ours, theirs = Cocoon(work), Podman(work)
    try:
        rootfs = debian_rootfs() if args.base == "debian" else busybox_rootfs(work)
        ours("image", "import", str(rootfs), BASE)  # one layer with its history entry
        ours("run", "--rm", "--network", "none", BASE, "true")  # its disk, as a pull makes it
        archive = work / "base.tar"
        ours("image", "save", BASE, "-o", str(archive))
        theirs("load", "-i", str(archive))
        root = context(work)
        edited = root / "src" / "0.txt"
        figures: dict[str, dict[str, list[float]]] = {}

        def cold_ours() -> None:
            ours.forget_cache()
            ours.build(root)

        def edit() -> None:
            edited.write_text(edited.read_text() + f"edit {time.time_ns()}\n")

        for name, run_ours, run_theirs in (
            ("cold", cold_ours, lambda: theirs.build(root, "--no-cache")),
            ("cached", lambda: ours.build(root), lambda: theirs.build(root)),
        ):
            figures[name] = {"cocoon": [timed(run_ours) for _ in range(args.runs)],
                             "podman": [timed(run_theirs) for _ in range(args.runs)]}  # fmt: skip
        changed: dict[str, list[float]] = {"cocoon": [], "podman": []}
        for _ in range(args.runs):
            edit()
            changed["cocoon"].append(timed(lambda: ours.build(root)))
            changed["podman"].append(timed(lambda: theirs.build(root)))
        figures["one change"] = changed
    finally:
        ours.close()
        theirs.close()
        shutil.rmtree(work, ignore_errors=True)
    size = rootfs.stat().st_size >> 20 if args.base == "debian" else 0
    print(f"base: {args.base}{f' ({size} MiB tar)' if size else ''}; 3 stages, "
          f"{DOCKERFILE.count('RUN ')} RUN and {DOCKERFILE.count('COPY ')} COPY steps")  # fmt: skip
    report = {}
    for name, pair in figures.items():
        a, b = statistics.median(pair["cocoon"]), statistics.median(pair["podman"])
        report[name] = {"cocoon": round(a, 3), "podman": round(b, 3), "ratio": round(a / b, 2)}
        print(f"{name:<11} cocoon {a:7.3f}s  podman {b:7.3f}s  ratio {a / b:.2f}  "
              f"runs {[round(t, 2) for t in pair['cocoon']]} / "
              f"{[round(t, 2) for t in pair['podman']]}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"base": args.base, **report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
