"""OCI runtime benchmark: `python bench/runtime.py` (or `make bench-runtime`).

The same `podman run --rm IMG true` three ways, in alternating pairs on one
machine state, with podman's store private to the run:

    cocoon-runtime   podman + conmon + cocoon's OCI runtime (a VM per container)
    runc             podman + conmon + runc (namespaces, no VM)
    cocoon run       `cocoon run --rm IMG true`, no podman at all

It prints medians and per-pair ratios, and the runtime's own cost per
container: driven as an engine drives it (create, start once the VM is up,
wait for the container's process, delete), each call timed, plus the time
the container's process takes before it starts the VMM. The VM's boot and
the guest's run are not in it: create returns while the VM boots, and
start is called once the boot has been reported.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from oci import busybox_layer, make_bundle, write_layout  # noqa: E402
from start import PODMAN, PODMAN_RUN, paired, ratio, timed  # noqa: E402

IMAGE = "localhost/bench-runtime:latest"
AGENT = HERE.parent / "guest" / "build" / "cocoon-agent"
PR_SET_CHILD_SUBREAPER = 36
# What the container's process logs once its VM is up (runtime/shim.py).
VMM_STARTED = re.compile(rb"VMM started ([\d.]+) s after this process")


def wrapper(folder: Path) -> Path:
    """The runtime as podman calls it, counting its calls in ``calls``."""
    path = folder / "cocoon-runtime"
    agent = f"export COCOON_AGENT={AGENT}\n" if AGENT.exists() else ""
    path.write_text(
        f'#!/bin/sh\n{agent}echo "$1" >> {folder / "calls"}\n'
        f'exec {sys.executable} -m cocoon.runtime.main --root {folder / "rt"} "$@"\n'
    )
    path.chmod(0o755)
    return path


def own_cost(runtime: Path, folder: Path, runs: int) -> dict[str, float]:
    """Medians of each call an engine makes per container, as a subreaper makes them."""
    # As conmon and containerd's shim: the container's process is ours to reap.
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)
    bundle = make_bundle(folder / "bundle", ["true"])
    pid_file = folder / "pid"
    calls: dict[str, list[float]] = {"create": [], "start": [], "delete": [], "before_vmm": []}
    for n in range(runs):
        cid = f"own{n}"
        calls["create"].append(timed([str(runtime), "create", "--bundle", str(bundle),
                                      "--pid-file", str(pid_file), cid]))  # fmt: skip
        booted = folder / "rt" / cid / "booted"
        while not (booted.exists() and booted.stat().st_size):
            time.sleep(0.002)
        calls["start"].append(timed([str(runtime), "start", cid]))
        os.waitpid(int(pid_file.read_text()), 0)
        log = (folder / "rt" / cid / "shim.log").read_bytes()
        calls["before_vmm"].append(float(m[1]) if (m := VMM_STARTED.search(log)) else 0.0)
        calls["delete"].append(timed([str(runtime), "delete", cid]))
    medians = {f"runtime_{k}_s": statistics.median(v) for k, v in calls.items()}
    medians["runtime_own_s"] = statistics.median(map(sum, zip(*calls.values(), strict=True)))
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6, help="pairs per comparison")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ccbr-", dir="/tmp"))
    env = {**os.environ, "COCOON_STATE_DIR": str(folder / "cocoon"),
           "COCOON_RUN_DIR": str(folder / "run"), "COCOON_NETWORK": "none"}  # fmt: skip
    if AGENT.exists():
        env["COCOON_AGENT"] = str(AGENT)
    podman = [*PODMAN, "--root", str(folder / "p-root"), "--runroot", str(folder / "p-run")]
    try:
        layout = folder / "layout"
        write_layout(layout, [busybox_layer()], ref=IMAGE)
        image = subprocess.run([*podman, "pull", "-q", f"oci:{layout}:{IMAGE}"], check=True,
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        cli = [sys.executable, "-m", "cocoon.cli.main"]
        subprocess.run([*cli, "image", "load", str(layout)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        runtime = wrapper(folder)
        # start.py's podman flags (runc needs the rlimits) with the runtime swapped.
        run = [*PODMAN_RUN, "--pull=never", "--network", "none", image, "true"]
        with_runc = [*podman, *run]
        with_cocoon = [*podman, *[str(runtime) if a == "runc" else a for a in run]]
        cocoon_run = [*cli, "run", "--rm", IMAGE, "true"]
        timed(with_cocoon)  # warm: the first run pays one-off costs
        (folder / "calls").unlink()
        timed(with_cocoon)
        calls = len((folder / "calls").read_text().split())
        timed(cocoon_run, env)
        rt, runc = paired(lambda: timed(with_cocoon), lambda: timed(with_runc), args.runs)
        rt2, cocoon = paired(lambda: timed(with_cocoon), lambda: timed(cocoon_run, env), args.runs)
        figures = {
            "podman_cocoon_runtime_s": statistics.median(rt + rt2),
            "podman_runc_s": statistics.median(runc),
            "cocoon_run_s": statistics.median(cocoon),
            "ratio_vs_runc": ratio(rt, runc),
            "ratio_vs_cocoon_run": ratio(rt2, cocoon),
            "runtime_calls_per_container": calls,
            **own_cost(runtime, folder, args.runs),
        }
    finally:
        subprocess.run([*podman, "rm", "--all", "--force"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:30} {value:.3f}" if isinstance(value, float) else f"{key:30} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
