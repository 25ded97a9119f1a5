"""The Docker API service's cost: `docker run --rm IMG true` through it vs `cocoon run`.

Runs the two in turn (paired, so drift in the machine's speed hits both
alike) against one private state folder and one service on a private
socket, and prints the medians and the median of the per-pair ratios
(target: at most 1.15). Debian's docker CLI (/usr/bin/docker) is the client.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from oci import busybox_layer, write_layout  # noqa: E402

IMAGE = "localhost/bench-busybox:latest"
DOCKER = "/usr/bin/docker"
TARGET = 1.15


def cocoon_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cocoon.cli.main", *args]


def timed(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def wait_for(sock: Path, env: dict[str, str], service: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while subprocess.run([DOCKER, "version"], env=env, capture_output=True).returncode != 0:
        if service.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the service on {sock} did not come up")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="pairs of runs (default 9)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cocoon-bench-svc-"))
    sock = work / "run" / "docker.sock"
    env = dict(os.environ, COCOON_STATE_DIR=str(work / "state"), COCOON_RUN_DIR=str(work / "run"),
               COCOON_NETWORK="none")  # fmt: skip
    docker_env = dict(env, DOCKER_HOST=f"unix://{sock}")
    service = None
    try:
        write_layout(work / "layout", [busybox_layer()], ref=IMAGE)
        subprocess.run(cocoon_cli("image", "load", str(work / "layout")), env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        service = subprocess.Popen(cocoon_cli("system", "service", "--socket", str(sock)),
                                   env=env, stderr=subprocess.DEVNULL)  # fmt: skip
        wait_for(sock, docker_env, service)
        direct = cocoon_cli("run", "--rm", IMAGE, "true")
        through = [DOCKER, "run", "--rm", IMAGE, "true"]
        timed(direct, env)  # the first run builds the image's root disk
        timed(through, docker_env)
        cli, api, ratios = [], [], []
        for _ in range(args.runs):
            cli.append(timed(direct, env))
            api.append(timed(through, docker_env))
            ratios.append(api[-1] / cli[-1])
        results = {
            "runs": args.runs,
            "cocoon_run_s": statistics.median(cli),
            "docker_run_via_service_s": statistics.median(api),
            "ratio_service_vs_cli": statistics.median(ratios),
            "target": TARGET,
        }
        print(f"cocoon run --rm IMG true            {results['cocoon_run_s']:.3f} s")
        print(f"docker run --rm IMG true (service)  {results['docker_run_via_service_s']:.3f} s")
        verdict = "met" if results["ratio_service_vs_cli"] <= TARGET else "NOT met"
        print(f"ratio (median of pairs)             {results['ratio_service_vs_cli']:.2f}x "
              f"(target <= {TARGET}x: {verdict})")  # fmt: skip
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        if service is not None:
            service.send_signal(signal.SIGTERM)
            service.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
