"""Pull benchmark: `make bench-pull` (or `python bench/pull.py`).

Pulls a multi-layer image from a local docker-registry (127.0.0.1, started
here) into an empty cocoon store, and copies the same image with
``skopeo copy`` into an empty OCI layout: both download, verify and write
every blob. Prints the medians and cocoon's time as a ratio of skopeo's
(below 1.0: cocoon is faster).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from oci import Layer, busybox_layer, write_layout  # noqa: E402
from registries import running, skopeo_copy  # noqa: E402

from cocoon.image.registry import pull  # noqa: E402
from cocoon.image.store import ImageStore  # noqa: E402


def image_layers(count: int, size: int) -> list[Layer]:
    """busybox plus ``count`` layers of ``size`` incompressible bytes each."""
    rng = random.Random(0)
    layers = [busybox_layer()]
    for i in range(count):
        layers.append(Layer().file(f"data/{i}.bin", rng.randbytes(size)))
    return layers


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layers", type=int, default=6, help="data layers besides busybox")
    parser.add_argument("--layer-mib", type=float, default=8.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cocoon-bench-pull-"))
    try:
        layout = work / "layout"
        write_layout(layout, image_layers(args.layers, int(args.layer_mib * (1 << 20))))
        with running() as registry:
            ref = f"{registry.host}/bench/multi:1"
            skopeo_copy(f"oci:{layout}:latest", f"docker://{ref}")

            def cocoon_pull() -> None:
                target = Path(tempfile.mkdtemp(dir=work))
                pull(ref, store=ImageStore(target))
                shutil.rmtree(target)

            def skopeo_pull() -> None:
                target = Path(tempfile.mkdtemp(dir=work))
                skopeo_copy(f"docker://{ref}", f"oci:{target / 'oci'}:x")
                shutil.rmtree(target)

            cocoon_times = [timed(cocoon_pull) for _ in range(args.runs)]
            skopeo_times = [timed(skopeo_pull) for _ in range(args.runs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours, theirs = statistics.median(cocoon_times), statistics.median(skopeo_times)
    total = args.layers * args.layer_mib
    print(f"image: busybox + {args.layers} layers x {args.layer_mib:g} MiB ({total:g} MiB)")
    print(f"cocoon pull   median {ours:.3f}s  runs {[round(t, 3) for t in cocoon_times]}")
    print(f"skopeo copy   median {theirs:.3f}s  runs {[round(t, 3) for t in skopeo_times]}")
    print(f"ratio cocoon/skopeo: {ours / theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
