"""Storage benchmark: `make bench-mounts` (or `python bench/mounts.py`).

In one container, the same work on four places, so their ratios come from
one run on one machine state:

    host     the host folder itself, no VM (the floor)
    bind     that folder bind-mounted over virtio-9p (-v)
    volume   a named volume: its own ext4 disk (virtio-blk)
    root     the container's root disk (ext4 on a qcow2 overlay)

The work: write then read a 200 MB file (dd; the read after dropping the
guest's page cache), and find + stat over 10,000 small files. Then the cost
of one -v at start: a warm `cocoon run --rm IMAGE true` with and without it,
alternated, medians. Prints a table and, with --json FILE, the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from oci import busybox_layer, write_layout  # noqa: E402

IMAGE = "localhost/bench-mounts:latest"
SIZE_MB = 200
FILES = 10_000
# One shell script for every place: prints "PLACE WHAT SECONDS" lines. Times
# come from the guest's own clock (10 ms steps), so the CLI's start-up is not in them.
WORK = r"""
t() { cut -d' ' -f1 /proc/uptime; }
place=$1 dir=$2
mkdir -p "$dir/bench" && cd "$dir/bench"
a=$(t); dd if=/dev/zero of=big bs=1M count={size} conv=fsync 2>/dev/null; b=$(t)
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
c=$(t); dd if=big of=/dev/null bs=1M 2>/dev/null; d=$(t)
mkdir -p small; i=0
while [ $i -lt {files} ]; do : > small/f$i; i=$((i+1)); done
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
e=$(t); find small -type f -exec stat -c %s {{}} + > /dev/null; f=$(t)
cd / && rm -rf "$dir/bench"
awk "BEGIN {{ print \"$place write\", $b - $a; print \"$place read\", $d - $c;
             print \"$place stat\", $f - $e }}"
""".replace("{size}", str(SIZE_MB)).replace("{files}", str(FILES))


def cocoon(env: dict[str, str], *args: str, timeout: float = 1800) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "cocoon.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise SystemExit(f"cocoon {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def on_host(folder: Path) -> dict[str, float]:
    """The same work with the host's own tools, straight on the folder."""
    bench = folder / "bench"
    bench.mkdir()
    t = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={bench / 'big'}", "bs=1M", f"count={SIZE_MB}", "conv=fsync"],
        check=True,
        capture_output=True,
    )
    write = time.perf_counter() - t
    fd = os.open(bench / "big", os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # as the guest drops its cache
    os.close(fd)
    t = time.perf_counter()
    subprocess.run(["dd", f"if={bench / 'big'}", "of=/dev/null", "bs=1M"], check=True,
                   capture_output=True)  # fmt: skip
    read = time.perf_counter() - t
    small = bench / "small"
    small.mkdir()
    for i in range(FILES):
        (small / f"f{i}").touch()
    t = time.perf_counter()
    subprocess.run(f"find {small} -type f -exec stat -c %s {{}} + > /dev/null", shell=True,
                   check=True)  # fmt: skip
    stat = time.perf_counter() - t
    shutil.rmtree(bench)
    return {"write": write, "read": read, "stat": stat}


def in_guest(env: dict[str, str], folder: Path) -> dict[str, dict[str, float]]:
    volume = "bench-mounts-vol"
    cocoon(env, "volume", "create", "--opt", "size=1g", volume)
    try:
        script = " ; ".join(
            f"sh /bench.sh {place} {path}"
            for place, path in (("bind", "/bind"), ("volume", "/vol"), ("root", "/rootdir"))
        )
        mounts = [
            "-v", f"{folder}:/bind", "-v", f"{volume}:/vol",
            "-v", f"{folder / 'work.sh'}:/bench.sh:ro",
        ]  # fmt: skip
        out = cocoon(env, "run", "--rm", "-m", "1g", *mounts, IMAGE, "sh", "-c", script)
    finally:
        cocoon(env, "volume", "rm", "-f", volume)
    figures: dict[str, dict[str, float]] = {}
    for line in out.split("\n"):
        parts = line.split()
        if len(parts) == 3:
            figures.setdefault(parts[0], {})[parts[1]] = float(parts[2])
    return figures


def start_cost(env: dict[str, str], folder: Path, runs: int) -> dict[str, float]:
    plain, bound = [], []
    base = ["run", "--rm", IMAGE, "true"]
    with_bind = ["run", "--rm", "-v", f"{folder}:/data", IMAGE, "true"]
    # Warm both: the image's disk is built once, and a share is part of a
    # memory template's shape, so each kind has its own template to build.
    cocoon(env, *base)
    cocoon(env, *with_bind)
    for _ in range(runs):
        t = time.perf_counter()
        cocoon(env, *base)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        cocoon(env, *with_bind)
        bound.append(time.perf_counter() - t)
    ratios = [b / p for b, p in zip(bound, plain, strict=True)]
    return {
        "warm_s": statistics.median(plain),
        "warm_with_bind_s": statistics.median(bound),
        "ratio": statistics.median(ratios),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="start-time pairs (default 5)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    parser.add_argument("--start-only", action="store_true", help="only the cost of -v at start")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cocoon-bench-mounts-"))
    env = dict(os.environ, COCOON_STATE_DIR=str(work / "state"), COCOON_NETWORK="none")
    try:
        layout = work / "layout"
        write_layout(layout, [busybox_layer()], ref=IMAGE)
        cocoon(env, "image", "load", str(layout))
        folder = work / "shared"
        folder.mkdir()
        (folder / "work.sh").write_text(WORK)
        places = {} if args.start_only else {"host": on_host(folder), **in_guest(env, folder)}
        start = start_cost(env, folder, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if places:
        print(f"{'place':8} {'write 200MB':>12} {'read 200MB':>12} {'stat 10k':>10}   (s; x host)")
        host = places["host"]
        for place, f in places.items():
            cells = [f"{f[k]:6.2f} {f[k] / host[k]:4.1f}x" for k in ("write", "read", "stat")]
            print(f"{place:8} " + " ".join(f"{c:>12}" for c in cells))
    print(
        f"start: warm {start['warm_s']:.2f}s, with one -v {start['warm_with_bind_s']:.2f}s "
        f"({start['ratio']:.2f}x)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"places": places, "start": start}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
