"""Start-time and footprint benchmark: `make bench` (or `python bench/start.py`).

Prints medians over repeated runs, each figure with the accelerator, and the
same as JSON (``--json FILE``, from which `make bench` rewrites README's
table). The baseline is the floor this VMM and kernel allow: QEMU booting
cocoon's own kernel into a static init that prints a marker on the serial
port and powers off; a boot without the marker stops the benchmark. Warm
runs are paired with baseline boots and with podman runs, alternating which
goes first, and the ratios are medians of the pairs' ratios. The cold start,
the idle container's memory and the density series are single samples, and
are labelled so (``single_samples`` in the JSON)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from oci import busybox_layer, write_layout  # noqa: E402
from procs import monitors_of, vms_of  # noqa: E402

from cocoon.vm import accel as accelerators  # noqa: E402
from cocoon.vm import qemu  # noqa: E402
from cocoon.vm import template as templates  # noqa: E402
from cocoon.vm.artifacts import artifacts, initramfs_bytes  # noqa: E402
from cocoon.vm.machine import MachineSpec  # noqa: E402

IMAGE = "localhost/bench-busybox:latest"
# Figures measured once per benchmark run, not medians: the report says so.
SINGLE_SAMPLES = ["cocoon_cold_s", "template_build_s", "memory", "density"]
# What works with Debian's podman on these cgroup-v1 hosts (../shared/ENVIRONMENT.md).
PODMAN = ["podman", "--cgroup-manager=cgroupfs"]
PODMAN_RUN = ["run", "--runtime", "runc", "--rm",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]  # fmt: skip


INIT_MARKER = b"cocoon-bench-init-ran"  # what trivial-init.c prints


def median_of(fn, runs: int) -> tuple[float, list[float]]:
    samples = [fn() for _ in range(runs)]
    return statistics.median(samples), samples


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def timed_boot(argv: list[str]) -> float:
    """A baseline boot, which counts only if its init ran: with panic=-1 and
    -no-reboot QEMU exits 0 on a kernel panic as well."""
    t = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, check=True)
    elapsed = time.perf_counter() - t
    if INIT_MARKER not in result.stdout:
        last = result.stdout.decode(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"the baseline VM never reached its init: {' / '.join(last)}")
    return elapsed


def paired(first: Callable[[], float], second: Callable[[], float], runs: int):
    """``runs`` pairs of the two, alternating which goes first, so drift in the
    machine's speed and any cost of going second hit both alike."""
    a: list[float] = []
    b: list[float] = []
    for i in range(runs):
        if i % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b


def ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median of the pairs' ratios: each pair ran under the same conditions."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


class WarmRun:
    """`cocoon run --rm IMG true`, keeping each run's account of where its time went."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.timings = work / "timings.json"
        self.env = dict(env, COCOON_TIMINGS=str(self.timings))
        self.phases: list[dict[str, float]] = []
        self.overhead: list[float] = []

    def __call__(self) -> float:
        elapsed = timed(cocoon_cli("run", "--rm", IMAGE, "true"), self.env)
        self.phases.append(json.loads(self.timings.read_text()))
        # The CLI's wall time less the time its VM existed: interpreter
        # start, imports, preparation, and cleanup after the VM is gone.
        self.overhead.append(elapsed - self.phases[-1]["vm_alive"])
        return elapsed


def against_baseline(baseline_cmd: list[str], warm: WarmRun, runs: int) -> dict[str, object]:
    base, runs_warm = paired(lambda: timed_boot(baseline_cmd), warm, runs)
    return {
        "baseline_vmm_s": statistics.median(base),
        "cocoon_warm_s": statistics.median(runs_warm),
        "ratio_warm_vs_baseline": ratio(runs_warm, base),
        "python_overhead_s": statistics.median(warm.overhead),
        "phases_s": {k: statistics.median(p[k] for p in warm.phases) for k in warm.phases[0]},
    }


def template_build_s(env: dict[str, str]) -> float | None:
    """Seconds to build the template of the measured shape, from cocoon's own
    account: the template is removed, then the next run builds it again."""
    first = subprocess.run(cocoon_cli("--debug", "run", "--rm", IMAGE, "true"), env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    key = re.search(r"starting from memory template ([0-9a-f]{16})", first.stderr)
    if key is None:
        print(f"no template: {first.stderr.strip()}", file=sys.stderr)
        return None
    shutil.rmtree(templates.folder() / key.group(1))
    again = subprocess.run(cocoon_cli("--debug", "run", "--rm", IMAGE, "true"), env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    built = re.search(r"built memory template [0-9a-f]{16} in ([0-9.]+)s", again.stderr)
    return float(built.group(1)) if built else None


def trivial_initrd(work: Path) -> Path:
    binary = work / "trivial-init"
    subprocess.run(
        ["musl-gcc", "-static", "-Os", "-s", "-o", str(binary), str(HERE / "trivial-init.c")],
        check=True,
    )
    initrd = work / "trivial.cpio"
    initrd.write_bytes(initramfs_bytes(binary.read_bytes()))
    return initrd


def cocoon_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cocoon.cli.main", *args]


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def idle_memory(env: dict[str, str], state: Path) -> dict[str, int]:
    """Host PSS of QEMU + the cocoon process for one idle container, and guest use."""
    script = "grep -E 'MemTotal|MemAvailable' /proc/meminfo; echo ready; sleep 60"
    proc = subprocess.Popen(
        cocoon_cli("run", "--rm", IMAGE, "sh", "-c", script),
        env=env,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline().decode() for _ in range(3)]
    meminfo = {line.split(":")[0]: int(line.split()[1]) for line in lines[:2]}
    time.sleep(2)  # let the guest settle into idle
    (qemu_pid,) = vms_of(state)
    figures = {
        "qemu_pss_kib": pss_kib(qemu_pid),
        "cocoon_pss_kib": pss_kib(proc.pid),
        "guest_used_kib": meminfo["MemTotal"] - meminfo["MemAvailable"],
        "guest_total_kib": meminfo["MemTotal"],
    }
    proc.terminate()
    proc.wait(60)
    return figures


@contextlib.contextmanager
def podman_image(layout: Path) -> Iterator[str | None]:
    """The benchmark's image in podman's store (None without a working podman)."""
    if not shutil.which("podman"):
        yield None
        return
    # podman names the image after the layout's path, which must then be a
    # valid reference: a temporary directory's random name may not be.
    link = Path(tempfile.gettempdir(), f"cocoon-bench-podman-{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(layout)
    try:
        loaded = subprocess.run([*PODMAN, "pull", "-q", f"oci:{link}"],
                                capture_output=True, text=True)  # fmt: skip
    finally:
        link.unlink()
    if loaded.returncode != 0:
        print(f"podman cannot load the image: {loaded.stderr.strip()}", file=sys.stderr)
        yield None
        return
    try:
        yield loaded.stdout.strip()
    finally:
        subprocess.run([*PODMAN, "rmi", "-f", loaded.stdout.strip()], capture_output=True)


def against_podman(layout: Path, warm: WarmRun, runs: int) -> dict[str, object]:
    """`podman run --rm IMG true` with runc on the same image, paired with warm runs."""
    with podman_image(layout) as image:
        if image is None:
            return {"podman_s": None}
        podman_run = [*PODMAN, *PODMAN_RUN, image, "true"]
        try:
            runs_warm, pod = paired(warm, lambda: timed(podman_run), runs)
        except subprocess.CalledProcessError as e:
            print(f"podman run failed with exit code {e.returncode}", file=sys.stderr)
            return {"podman_s": None}
    return {"podman_s": statistics.median(pod), "ratio_warm_vs_podman": ratio(runs_warm, pod)}


def density(env: dict[str, str], state: Path, count: int) -> dict[str, object]:
    """Start ``count`` idle containers one after another; how long each start took,
    their host memory, and how many would fit in what the host has free."""
    starts, ids = [], []
    try:
        for _ in range(count):
            t = time.perf_counter()
            out = subprocess.run(cocoon_cli("run", "-d", IMAGE, "sleep", "3600"), env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
            starts.append(time.perf_counter() - t)
            ids.append(out.stdout.strip())
        time.sleep(2)  # as for one idle container: the last to start settles first
        pss = [pss_kib(pid) for pid in vms_of(state)]
        monitors = [pss_kib(pid) for pid in monitors_of(state)]
        available = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemAvailable:")
        )
        monitor = statistics.mean(monitors) if monitors else None
        per_container = (statistics.mean(pss) if pss else 0) + (monitor or 0)
        return {
            "count": count,
            "start_first_s": starts[0],
            "start_last_s": starts[-1],
            "qemu_pss_mean_kib": int(statistics.mean(pss)) if pss else 0,
            "monitor_pss_mean_kib": None if monitor is None else int(monitor),
            "more_that_fit_by_memory": int(available / per_container) if per_container else None,
        }
    finally:
        if ids:
            subprocess.run(cocoon_cli("rm", "-f", *ids), env=env, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per figure (default 7)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--network", default="none", help="network mode of the measured containers (default none)"
    )
    parser.add_argument(
        "--density",
        type=int,
        default=8,
        metavar="N",
        help="idle containers to start for the density figures (default 8)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cocoon-bench-"))
    state = work / "state"
    # The benchmark keeps its own store; the library calls below see it too.
    os.environ.update(COCOON_STATE_DIR=str(state), COCOON_RUN_DIR=str(work / "run"))
    # The start path without a network: a bridge and NAT rules on the host
    # are not the benchmark's to create (--network chooses one to measure).
    os.environ["COCOON_NETWORK"] = args.network
    env = dict(os.environ)
    try:
        arts = artifacts()
        accel = accelerators.choose("auto", arts.kernel, arts.initrd)
        results: dict[str, object] = {
            "accelerator": accel,
            "network": args.network,
            "runs": args.runs,
        }

        baseline_cmd = qemu.command(
            MachineSpec(kernel=arts.kernel, initrd=trivial_initrd(work), accel=accel)
        )
        write_layout(work / "layout", [busybox_layer()], ref=IMAGE)
        subprocess.run(cocoon_cli("image", "load", str(work / "layout")), env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        # One sample by nature: only the first run builds the image's root disk.
        results["cocoon_cold_s"] = timed(cocoon_cli("run", "--rm", IMAGE, "true"), env)
        results.update(against_baseline(baseline_cmd, WarmRun(env, work), args.runs))
        # The same warm run booting its kernel, as before memory templates.
        cold = against_baseline(baseline_cmd, WarmRun(dict(env, COCOON_TEMPLATE="0"), work),
                                args.runs)  # fmt: skip
        results["cold_boot"] = {k: cold[k] for k in ("cocoon_warm_s", "ratio_warm_vs_baseline")}
        results["template_build_s"] = template_build_s(env)
        results["python_start_s"], _ = median_of(
            lambda: timed([sys.executable, "-c", "import cocoon.cli.main, cocoon.container.run"]),
            args.runs,
        )
        results.update(against_podman(work / "layout", WarmRun(env, work), args.runs))
        results["memory"] = idle_memory(env, state)
        results["density"] = density(env, state, args.density)
        results["single_samples"] = SINGLE_SAMPLES
        report(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(r: dict) -> None:
    a = r["accelerator"]
    print(f"cocoon start benchmark — accelerator {a}, network {r['network']},"
          f" medians of {r['runs']} runs, pairs alternating which goes first")  # fmt: skip
    print(f"  baseline_vmm (QEMU + kernel + trivial init) {r['baseline_vmm_s']:.3f}s [{a}]")
    print(f"  cocoon run --rm true, cold                {r['cocoon_cold_s']:.3f}s [{a}]"
          " (single sample)")  # fmt: skip
    print(f"  cocoon run --rm true, warm                {r['cocoon_warm_s']:.3f}s [{a}]")
    cold, build = r["cold_boot"], r["template_build_s"]
    print(f"  the same, cold-booting (no template)      {cold['cocoon_warm_s']:.3f}s [{a}],"
          f" {cold['ratio_warm_vs_baseline']:.2f}x the baseline")  # fmt: skip
    built = "n/a" if build is None else f"{build:.3f}s"
    print(f"  memory template build                     {built} [{a}] (single sample)")
    print(f"  python start (imports)                    {r['python_start_s']:.3f}s")
    print(f"  python-side overhead (warm CLI run minus the VM's lifetime) "
          f"{r['python_overhead_s']:.3f}s")  # fmt: skip
    print("  phases of a warm run (as the CLI timed them):")
    for name, value in r["phases_s"].items():
        print(f"    {name:<38}  {value:.3f}s [{a}]")
    podman = f"{r['podman_s']:.3f}s" if r["podman_s"] else "n/a (podman not available)"
    print(f"  podman run --rm true (runc)               {podman}")
    d = r["density"]
    print(f"  {d['count']} idle containers started one by one: first {d['start_first_s']:.3f}s,"
          f" last {d['start_last_s']:.3f}s [{a}] (one series)")  # fmt: skip
    monitor = d.get("monitor_pss_mean_kib") or 0
    print(f"    PSS each: QEMU {d['qemu_pss_mean_kib'] / 1024:.1f} MiB + monitor"
          f" {monitor / 1024:.1f} MiB; by free host memory"
          f" about {d['more_that_fit_by_memory']} more would fit")  # fmt: skip
    m = r["memory"]
    print(f"  idle container, host PSS: qemu {m['qemu_pss_kib'] / 1024:.1f} MiB"
          f" + cocoon {m['cocoon_pss_kib'] / 1024:.1f} MiB [{a}] (single sample)")  # fmt: skip
    print(f"  idle container, guest memory used: {m['guest_used_kib'] / 1024:.1f} MiB"
          f" of {m['guest_total_kib'] / 1024:.0f} MiB (single sample)")  # fmt: skip
    print(f"  ratio warm / baseline_vmm (median of paired runs): "
          f"{r['ratio_warm_vs_baseline']:.2f}x [{a}]")  # fmt: skip
    if "ratio_warm_vs_podman" in r:
        print(f"  ratio warm / podman (median of paired runs): "
              f"{r['ratio_warm_vs_podman']:.2f}x [{a}]")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
