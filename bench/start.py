"""Start-time and footprint benchmark: `make bench` (or `python bench/start.py`).

Prints medians over repeated runs, each figure with the accelerator, and the
same as JSON (``--json FILE``). The baseline is the floor this VMM and kernel
allow: QEMU booting cocoon's own kernel into a static init that powers off at
once. Everything cocoon adds is measured against it.
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(HERE.parent / "tests"))

from oci import busybox_layer, write_layout  # noqa: E402
from procs import monitors_of, vms_of  # noqa: E402

from cocoon.vm import accel as accelerators  # noqa: E402
from cocoon.vm import qemu  # noqa: E402
from cocoon.vm import template as templates  # noqa: E402
from cocoon.vm.artifacts import artifacts, initramfs_bytes  # noqa: E402
from cocoon.vm.machine import MachineSpec  # noqa: E402

IMAGE = "localhost/bench-busybox:latest"
# What works with Debian's podman on these cgroup-v1 hosts (../shared/ENVIRONMENT.md).
PODMAN = ["podman", "--cgroup-manager=cgroupfs"]
PODMAN_RUN = ["run", "--runtime", "runc", "--rm",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]  # fmt: skip


def median_of(fn, runs: int) -> tuple[float, list[float]]:
    samples = [fn() for _ in range(runs)]
    return statistics.median(samples), samples


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def paired_runs(
    baseline_cmd: list[str],
    run_cmd: list[str],
    envs: dict[str, dict[str, str]],
    work: Path,
    runs: int,
) -> dict[str, object]:
    """The baseline and a warm run of each mode in turn, so drift in the
    machine's speed hits all alike; each run's own account of its time."""
    timings_file = work / "timings.json"
    base: list[float] = []
    warm: dict[str, list[float]] = {m: [] for m in envs}
    ratios: dict[str, list[float]] = {m: [] for m in envs}
    overhead: dict[str, list[float]] = {m: [] for m in envs}
    phases: dict[str, list[dict[str, float]]] = {m: [] for m in envs}
    for _ in range(runs):
        base.append(timed(baseline_cmd))
        for mode, env in envs.items():
            warm[mode].append(timed(run_cmd, dict(env, COCOON_TIMINGS=str(timings_file))))
            ratios[mode].append(warm[mode][-1] / base[-1])
            phases[mode].append(json.loads(timings_file.read_text()))
            # The CLI's wall time less the time its VM existed: interpreter
            # start, imports, preparation, and cleanup after the VM is gone.
            overhead[mode].append(warm[mode][-1] - phases[mode][-1]["vm_alive"])
    result: dict[str, object] = {"baseline_vmm_s": statistics.median(base)}
    for mode in envs:
        result[mode] = {
            "warm_s": statistics.median(warm[mode]),
            "ratio_vs_baseline": statistics.median(ratios[mode]),
            "python_overhead_s": statistics.median(overhead[mode]),
            "phases_s": {k: statistics.median(p[k] for p in phases[mode]) for k in phases[mode][0]},
        }
    return result


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


def podman_run(layout: Path, runs: int) -> float | None:
    """Median `podman run --rm IMG true`, the same image loaded from its OCI layout."""
    if not shutil.which("podman"):
        return None
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
        return None
    image = loaded.stdout.strip()
    try:
        return median_of(lambda: timed([*PODMAN, *PODMAN_RUN, image, "true"]), runs)[0]
    except subprocess.CalledProcessError as e:
        print(f"podman run failed with exit code {e.returncode}", file=sys.stderr)
        return None
    finally:
        subprocess.run([*PODMAN, "rmi", "-f", image], capture_output=True)


def density(env: dict[str, str], state: Path, count: int) -> dict[str, object]:
    """Start ``count`` idle containers one after another; how long each start took,
    their host memory (QEMU and the container's monitor), and how many more
    would fit in what the host has free."""
    starts, ids = [], []
    try:
        for _ in range(count):
            t = time.perf_counter()
            out = subprocess.run(cocoon_cli("run", "-d", IMAGE, "sleep", "3600"), env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
            starts.append(time.perf_counter() - t)
            ids.append(out.stdout.strip())
        time.sleep(2)  # let the guests settle into idle
        qemu_pss = [pss_kib(pid) for pid in vms_of(state)]
        monitor_pss = [pss_kib(pid) for pid in monitors_of(state)]
        available = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemAvailable:")
        )
        per_container = (sum(qemu_pss) + sum(monitor_pss)) / count
        return {
            "count": count,
            "start_first_s": starts[0],
            "start_last_s": starts[-1],
            "start_median_s": statistics.median(starts),
            "qemu_pss_mean_kib": int(statistics.mean(qemu_pss)),
            "monitor_pss_mean_kib": int(statistics.mean(monitor_pss)) if monitor_pss else 0,
            "host_pss_per_container_kib": int(per_container),
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
        help="idle containers to start for the density figures (default 8; the issue asks 40)",
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
        run_true = cocoon_cli("run", "--rm", IMAGE, "true")
        modes = {
            "template": dict(env, COCOON_TEMPLATE="1"),
            "cold": dict(env, COCOON_TEMPLATE="0"),
        }
        results["cocoon_first_s"] = timed(run_true, modes["cold"])  # builds the rootfs disk
        results["template_build_s"] = template_build_s(modes["template"])
        results.update(paired_runs(baseline_cmd, run_true, modes, work, args.runs))
        results["python_start_s"], _ = median_of(
            lambda: timed([sys.executable, "-c", "import cocoon.cli.main, cocoon.container.run"]),
            args.runs,
        )

        results["podman_s"] = podman_run(work / "layout", args.runs)
        for mode, mode_env in modes.items():
            measured: dict = results[mode]  # type: ignore[assignment]
            measured["memory"] = idle_memory(mode_env, state)
            measured["density_1"] = density(mode_env, state, 1)
            measured["density"] = density(mode_env, state, args.density)
            if results["podman_s"]:
                measured["ratio_vs_podman"] = measured["warm_s"] / results["podman_s"]
        report(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(r: dict) -> None:
    a = r["accelerator"]
    print(f"cocoon start benchmark — accelerator {a}, network {r['network']},"
          f" medians of {r['runs']} runs")  # fmt: skip
    print(f"  baseline_vmm (QEMU + kernel + trivial init) {r['baseline_vmm_s']:.3f}s [{a}]")
    podman = f"{r['podman_s']:.3f}s" if r["podman_s"] else "n/a (podman not available)"
    print(f"  podman run --rm true (runc)               {podman}")
    print(f"  cocoon run --rm true, first (disk build)  {r['cocoon_first_s']:.3f}s [{a}]")
    build = r["template_build_s"]
    print(f"  memory template build                     "
          f"{f'{build:.3f}s' if build is not None else 'n/a'} [{a}]")  # fmt: skip
    print(f"  python start (imports)                    {r['python_start_s']:.3f}s")
    print(f"  {'':40}  {'template':>10}  {'cold':>10}")
    t, c = r["template"], r["cold"]

    def row(label: str, tv: str, cv: str) -> None:
        print(f"  {label:<40}  {tv:>10}  {cv:>10}")

    row("cocoon run --rm true, warm", f"{t['warm_s']:.3f}s", f"{c['warm_s']:.3f}s")
    row("ratio warm / baseline_vmm (paired)", f"{t['ratio_vs_baseline']:.2f}x",
        f"{c['ratio_vs_baseline']:.2f}x")  # fmt: skip
    if "ratio_vs_podman" in t:
        row("ratio warm / podman", f"{t['ratio_vs_podman']:.2f}x", f"{c['ratio_vs_podman']:.2f}x")
    row("python-side overhead", f"{t['python_overhead_s']:.3f}s", f"{c['python_overhead_s']:.3f}s")
    for name in t["phases_s"]:
        row(f"  phase {name}", f"{t['phases_s'][name]:.3f}s", f"{c['phases_s'].get(name, 0):.3f}s")
    tm, cm = t["memory"], c["memory"]
    row("idle (foreground run): QEMU PSS", f"{tm['qemu_pss_kib'] / 1024:.1f}M",
        f"{cm['qemu_pss_kib'] / 1024:.1f}M")  # fmt: skip
    row("idle (foreground run): cocoon PSS", f"{tm['cocoon_pss_kib'] / 1024:.1f}M",
        f"{cm['cocoon_pss_kib'] / 1024:.1f}M")  # fmt: skip
    row("idle: guest memory used", f"{tm['guest_used_kib'] / 1024:.1f}M",
        f"{cm['guest_used_kib'] / 1024:.1f}M")  # fmt: skip
    for key in ("density_1", "density"):
        td, cd = t[key], c[key]
        n = td["count"]
        row(f"{n} idle detached: host PSS each (QEMU+mon)",
            f"{td['host_pss_per_container_kib'] / 1024:.1f}M",
            f"{cd['host_pss_per_container_kib'] / 1024:.1f}M")  # fmt: skip
        row(f"{n} idle detached: QEMU PSS each", f"{td['qemu_pss_mean_kib'] / 1024:.1f}M",
            f"{cd['qemu_pss_mean_kib'] / 1024:.1f}M")  # fmt: skip
        row(f"{n} idle detached: median start", f"{td['start_median_s']:.3f}s",
            f"{cd['start_median_s']:.3f}s")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
