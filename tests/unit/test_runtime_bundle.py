"""cocoon-runtime without a VM: reading bundles, ids, signals, and how errors are reported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cocoon.errors import InvalidArgument, Unsupported
from cocoon.runtime import bundle, main, store
from cocoon.signals import parse_signal
from cocoon.volume.mounts import BindMount, TmpfsMount


def write(folder: Path, **config: object) -> Path:
    (folder / "rootfs").mkdir(exist_ok=True)
    spec = {"ociVersion": "1.0.2-dev", "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/"}, **config}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(spec))
    return folder


def test_what_a_vm_takes_from_config_json(tmp_path: Path) -> None:
    b = bundle.load(write(
        tmp_path,
        process={"args": ["sh", "-c", "x"], "env": ["A=1"], "cwd": "/w", "terminal": True,
                 "user": {"uid": 1000, "gid": 50}, "consoleSize": {"height": 30, "width": 90}},
        hostname="box",
        mounts=[
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
            {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "mode=755", "size=65536"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
        ],
        linux={"resources": {"memory": {"limit": 256 << 20},
                             "cpu": {"quota": 150000, "period": 100000}},
               "namespaces": [{"type": "pid"}, {"type": "network"}]},
        annotations={"a": "b"},
    ))  # fmt: skip
    assert b.process.args == ["sh", "-c", "x"] and b.process.user == "1000:50"
    assert b.process.tty == (30, 90) and b.terminal and b.process.stdin
    assert (b.hostname, b.memory_mib, b.network) == ("box", 256, "none")
    assert b.cpus == min(2, os.cpu_count() or 1)  # 1.5 CPUs rounded up, at most the host's
    assert b.mounts == [BindMount("/srv", "/data", readonly=True),
                        TmpfsMount("/run", 65536, 0o755, ("nosuid",))]  # fmt: skip
    assert b.annotations == {"a": "b"}


def test_rlimits_and_additional_gids_reach_the_process(tmp_path: Path) -> None:
    b = bundle.load(write(tmp_path, process={
        "args": ["sh"],
        "user": {"uid": 1, "gid": 2, "additionalGids": [10, 20, 10]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
                    {"type": "RLIMIT_CORE", "soft": 0, "hard": (1 << 64) - 1}],
    }))  # fmt: skip
    assert b.process.groups == ("10", "20")
    assert b.process.rlimits == (("nofile", 1024, 4096), ("core", 0, (1 << 64) - 1))


def test_host_network_and_namespace_paths(tmp_path: Path) -> None:
    assert bundle.load(write(tmp_path, linux={"namespaces": [{"type": "pid"}]})).network == "user"
    netns = {"namespaces": [{"type": "network", "path": "/run/netns/x"}]}
    joined = bundle.load(write(tmp_path, linux=netns))
    assert (joined.network, joined.netns) == ("netns", "/run/netns/x")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ociVersion": "2.0.0"}, "ociVersion"),
        ({"ociVersion": 1}, "ociVersion"),
        ({"process": {"args": []}}, "process.args is empty"),
        ({"process": {"args": "sh"}}, "'args' must be a list"),
        ({"process": {"args": ["sh"], "cwd": "rel"}}, "not absolute"),
        ({"process": {"args": ["sh"], "user": {"uid": -1}}}, "out of range"),
        ({"root": {"path": "nope"}}, "is not a folder"),
        ({"linux": {"resources": {"memory": {"limit": 1 << 20}}}}, "at least 64 MiB"),
        ({"mounts": [{"destination": "rel", "type": "tmpfs"}]}, "not absolute"),
        ({"mounts": "x"}, "'mounts' must be a list"),
        (
            {
                "process": {
                    "args": ["sh"],
                    "rlimits": [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}],
                }
            },
            "unknown rlimit type 'RLIMIT_FOO'",
        ),
        (
            {
                "process": {
                    "args": ["sh"],
                    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 1}],
                }
            },
            "soft limit exceeds the hard",
        ),
        (
            {
                "process": {
                    "args": ["sh"],
                    "rlimits": [{"type": "RLIMIT_CORE", "soft": -1, "hard": 1}],
                }
            },
            "out of range",
        ),
        ({"process": {"args": ["sh"], "user": {"additionalGids": ["wheel"]}}}, "group ids"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, config: dict, message: str) -> None:
    with pytest.raises((InvalidArgument, Unsupported), match=message):
        bundle.load(write(tmp_path, **config))


def test_unreadable_bundles(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"no config\.json"):
        bundle.load(tmp_path)
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(InvalidArgument, match="not a JSON object"):
        bundle.load(tmp_path)


def test_ids_and_signals() -> None:
    assert store.check_id("abc-1.2_x+y") == "abc-1.2_x+y"
    for bad in ("", "..", "a/b", "a b"):
        with pytest.raises(InvalidArgument):
            store.check_id(bad)
    assert (parse_signal("9"), parse_signal("TERM"), parse_signal("SIGKILL")) == (9, 15, 9)
    for bad in ("SIGNOPE", "0", "999"):
        with pytest.raises(InvalidArgument):
            parse_signal(bad)


def test_errors_go_to_stderr_and_the_json_log(tmp_path: Path, capsys, monkeypatch) -> None:
    # The runtime points cocoon's state into its root: undone after the test.
    for key in ("COCOON_STATE_DIR", "COCOON_RUN_DIR"):
        monkeypatch.setenv(key, "")
    log = tmp_path / "log.json"
    argv = ["--root", str(tmp_path / "rt"), "--log", str(log), "--log-format", "json"]
    assert main.main([*argv, "state", "missing"]) == 1
    assert "container missing does not exist" in capsys.readouterr().err
    line = json.loads(log.read_text())
    assert line["level"] == "error" and "does not exist" in line["msg"]
    assert main.main([*argv, "delete", "--force", "missing"]) == 0
    assert main.main(["--version"]) == 0
    # A host error (here: a --root that is a file) is one line too, not a traceback.
    (tmp_path / "file").write_text("")
    bad = ["--root", str(tmp_path / "file"), "create", "--bundle", str(write(tmp_path)), "c1"]
    assert main.main(bad) == 1
    assert capsys.readouterr().err == f"cocoon-runtime: File exists: {tmp_path / 'file'}\n"
