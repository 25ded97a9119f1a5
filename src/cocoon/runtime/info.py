"""What the runtime reports: ``state``, ``ps``, ``list``, ``features``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cocoon.runtime import store
from cocoon.runtime.status import OCI_VERSION, Status, state, states, status

# Mount options the agent honours for binds and tmpfs (the rest are ignored).
MOUNT_OPTIONS = ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "size", "mode"]


def features() -> dict[str, Any]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": [],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["network"],
            "capabilities": [],
            "cgroup": {"v1": False, "v2": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"io.github.cocoon.vm": "qemu-microvm"},
    }


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def show(root: Path, args: argparse.Namespace) -> None:
    match args.verb:
        case "state":
            print(json.dumps(state(store.load(root, args.id)), indent=2))
        case "ps":
            entry = store.load(root, args.id)
            # The host sees one process per container: the one that owns its VM.
            pids = [entry.pid] if status(entry) is not Status.STOPPED else []
            if args.format == "json":
                print(json.dumps(pids))
            else:
                print(_table([["PID"], *[[str(p)] for p in pids]]))
        case "list":
            everything = states(root)
            if args.quiet:
                print("\n".join(s["id"] for s in everything))
            elif args.format == "json":
                print(json.dumps(everything))
            else:
                header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
                print(
                    _table(
                        [
                            header,
                            *[
                                [
                                    s["id"],
                                    str(s["pid"]),
                                    s["status"],
                                    s["bundle"],
                                    s["created"],
                                    s["owner"],
                                ]
                                for s in everything
                            ],
                        ]
                    )
                )
        case "features":
            print(json.dumps(features(), indent=2))


__all__ = ["features", "show"]
