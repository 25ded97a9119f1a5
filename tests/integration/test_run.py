"""`cocoon run` end to end: every test here boots a real VM."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ptys import Terminal
from vm_fixtures import ok

import cocoon as cocoon_lib

pytestmark = pytest.mark.vm


def test_echo_hello(cocoon, busybox):
    result = cocoon("run", "--rm", busybox, "echo", "hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hello\n", b"")
    assert not list((cocoon.state / "containers").glob("*/container.json"))


@pytest.mark.parametrize(("command", "code"), [("exit 7", 7), ("kill -9 $$", 137), ("true", 0)])
def test_exit_codes(cocoon, busybox, command, code):
    assert cocoon("run", "--rm", busybox, "sh", "-c", command).returncode == code


def test_stdout_and_stderr_stay_apart(cocoon, busybox):
    result = cocoon("run", "--rm", busybox, "sh", "-c", "echo out; echo err >&2; echo out2")
    assert (result.stdout, result.stderr) == (b"out\nout2\n", b"err\n")


def test_stdin_is_piped_with_i(cocoon, busybox):
    data = os.urandom(300_000)
    result = cocoon("run", "--rm", "-i", busybox, "md5sum", input=data)
    assert result.stdout.split()[0].decode() == hashlib.md5(data).hexdigest()
    assert cocoon("run", "--rm", "-i", busybox, "cat", input=b"hi\n").stdout == b"hi\n"


def test_stdin_without_i_is_empty(cocoon, busybox):
    assert cocoon("run", "--rm", busybox, "cat", input=b"ignored").stdout == b""


def test_large_output_intact(cocoon, busybox):
    result = cocoon("run", "--rm", busybox, "sh", "-c", "yes 0123456789abcdef | head -c 10000000")
    assert result.returncode == 0
    assert result.stdout == (b"0123456789abcdef\n" * 600_000)[:10_000_000]


def test_env_workdir_hostname(cocoon, busybox, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=1\n# comment\nA=file\n")
    result = cocoon(
        "run", "--rm", "-e", "A=flag", "--env-file", str(env_file), "-w", "/data/x",
        "--hostname", "box1", busybox, "sh", "-c",
        'echo "$A $FROM_FILE $PATH"; pwd; hostname; cat /etc/hostname',
    )  # fmt: skip
    lines = result.stdout.decode().splitlines()
    assert lines == [
        "flag 1 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "/data/x",
        "box1",
        "box1",
    ]


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("app", "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"),
        ("1234:50", "uid=1234 gid=50(staff) groups=50(staff)"),
        (None, "uid=0(root) gid=0(root) groups=0(root)"),
    ],
)
def test_user(cocoon, busybox, user, expected):
    flags = ["-u", user] if user else []
    result = cocoon("run", "--rm", *flags, busybox, "id")
    assert result.stdout.decode().strip() == expected


def test_ulimit_and_group_add_reach_the_process_and_its_execs(cc, busybox):
    flags = ["--ulimit", "nofile=512:1024", "--ulimit", "core=-1", "--group-add", "nogroup",
             "--group-add", "4242", "-u", "app"]  # fmt: skip
    script = "ulimit -n; ulimit -H -n; ulimit -c; id -G"
    result = cc("run", "--rm", *flags, busybox, "sh", "-c", script)
    lines = ok(result).splitlines()
    assert lines[:3] == ["512", "1024", "unlimited"]
    assert sorted(lines[3].split(), key=int) == ["50", "1000", "4242", "65534"]
    # An exec'd process gets the container's limits and extra groups, as in Docker.
    name = ok(cc("run", "-d", *flags, busybox, "sleep", "1000")).strip()
    limit, *groups = ok(cc("exec", name, "sh", "-c", "ulimit -n; id -G")).split()
    assert (limit, sorted(groups, key=int)) == ("512", ["50", "1000", "4242", "65534"])


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--ulimit", "bogus=1"], "unknown limit 'bogus'"),
        (["--ulimit", "nofile=10:5"], "soft limit exceeds the hard limit"),
        (["--group-add", "no-such-group"], "unable to find group no-such-group"),
    ],
)
def test_bad_ulimit_or_group_is_one_clear_error(cc, busybox, flags, says):
    result = cc("run", "--rm", *flags, busybox, "true")
    assert result.returncode in (125, 126), result.stderr
    assert says in result.stderr.decode() and result.stderr.decode().count("\n") == 1
    assert cc("ls", "-a", "-q").stdout == b""


def test_home_from_passwd(cocoon, busybox):
    assert cocoon("run", "--rm", "-u", "app", busybox, "sh", "-c", "echo $HOME").stdout == (
        b"/home/app\n"
    )


def test_entrypoint_override(cocoon, busybox):
    result = cocoon("run", "--rm", "--entrypoint", "/bin/echo", busybox, "a", "b")
    assert result.stdout == b"a b\n"


def test_command_not_found_is_127(cocoon, busybox):
    result = cocoon("run", "--rm", busybox, "no-such-command")
    assert result.returncode == 127
    assert result.stderr == b'cocoon: exec "no-such-command": executable file not found in $PATH\n'


def test_missing_image_is_125_one_line(cocoon):
    result = cocoon("run", "--rm", "localhost/nope:1", "true")
    assert result.returncode == 125
    # No such image here, and no registry on localhost: said once, not retried.
    assert result.stderr.decode() == (
        "cocoon: image localhost/nope:1 not found locally, and pulling it failed: "
        "cannot connect to localhost:443 (connection refused)\n"
    )


def test_guest_filesystems(cocoon, busybox):
    result = cocoon("run", "--rm", busybox, "cat", "/proc/mounts")
    mounts = {line.split()[1]: line.split()[2] for line in result.stdout.decode().splitlines()}
    assert mounts["/"] == "ext4"
    expected = {"/proc": "proc", "/sys": "sysfs", "/dev": "devtmpfs", "/dev/pts": "devpts",
                "/dev/shm": "tmpfs"}  # fmt: skip
    for path, fstype in expected.items():
        assert mounts.get(path) == fstype, (path, mounts)
    assert "/tmp" not in mounts  # the image's own folder, as in Docker


def test_writes_stay_in_the_container(cocoon, busybox):
    first = cocoon("run", "--rm", busybox, "sh", "-c", "echo x > /etc/marker && cat /etc/marker")
    assert first.stdout == b"x\n"
    second = cocoon("run", "--rm", busybox, "ls", "/etc/marker")
    assert (second.returncode, second.stdout) == (1, b"")
    assert second.stderr == b"ls: /etc/marker: No such file or directory\n"


def test_cpus_and_memory(cocoon, busybox):
    result = cocoon("run", "--rm", "--cpus", "2", "--memory", "256m", busybox, "sh", "-c",
                    "nproc; grep MemTotal /proc/meminfo")  # fmt: skip
    nproc, meminfo = result.stdout.decode().splitlines()
    assert nproc == "2"
    assert 150_000 < int(meminfo.split()[1]) <= 262_144


def test_container_record_kept_without_rm(cocoon, busybox):
    result = cocoon("run", "--name", "kept", busybox, "sh", "-c", "exit 3")
    assert result.returncode == 3
    records = [p.read_text() for p in (cocoon.state / "containers").glob("*/container.json")]
    assert any('"name": "kept"' in r and '"exit_code": 3' in r for r in records)
    clash = cocoon("run", "--name", "kept", busybox, "true")
    assert (clash.returncode, clash.stderr) == (
        125,
        b"cocoon: the container name 'kept' is already in use\n",
    )


def test_tty(cocoon, busybox):
    term = Terminal(cocoon, "run", "--rm", "-t", busybox, "sh", "-c", "tty; stty size; exit 5")
    code, lines = term.finish()
    assert code == 5
    assert lines[0].startswith("/dev/pts/")
    assert lines[1] == "40 100"


LOOP = "echo ready; while :; do sleep 0.2; done"


def test_terminal_resize_reaches_the_container(cocoon, busybox):
    term = Terminal(cocoon, "run", "--rm", "-t", busybox, "sh", "-c",
                    f'trap "stty size; exit 6" WINCH; {LOOP}')  # fmt: skip
    term.expect(b"ready")
    term.resize(33, 77)
    code, lines = term.finish()
    assert (code, lines) == (6, ["ready", "33 77"])


def test_ctrl_c_under_tty_reaches_the_container(cocoon, busybox):
    term = Terminal(cocoon, "run", "--rm", "-i", "-t", busybox, "sh", "-c",
                    f'trap "echo got-int; exit 4" INT; {LOOP}')  # fmt: skip
    term.expect(b"ready")
    term.type(b"\x03")  # Ctrl-C, as a key: the CLI's terminal is raw
    code, lines = term.finish()
    assert code == 4
    assert lines[0] == "ready"
    assert lines[-1] in ("got-int", "^Cgot-int")  # the guest's terminal may echo the key


def test_typed_ahead_input_reaches_the_process(cocoon, busybox):
    term = Terminal(cocoon, "run", "--rm", "-it", busybox, "sh", "-c",
                    'read -t 60 line; echo "got:$line"')  # fmt: skip
    term.type(b"early\n")  # while the VM boots, before cocoon puts the terminal in raw mode
    code, lines = term.finish()
    assert code == 0
    assert lines[-1] == "got:early", lines


def test_sigterm_reaches_the_container(cocoon, busybox):
    proc = cocoon.popen(
        "run", "--rm", busybox, "sh", "-c",
        'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.2; done',
        stdout=-1, stderr=-1,
    )  # fmt: skip
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (3, b"got-term\n")


def test_sigint_reaches_the_container(cocoon, busybox):
    """The container's trap answers: the CLI's own Ctrl-C path would exit 130 without it."""
    proc = cocoon.popen(
        "run", "--rm", busybox, "sh", "-c",
        'trap "echo got-int; exit 4" INT; echo ready; while :; do sleep 0.2; done',
        stdout=-1, stderr=-1,
    )  # fmt: skip
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (4, b"got-int\n", b"")


def test_library_run(cocoon, busybox):
    result = cocoon_lib.run(busybox, ["sh", "-c", "echo hi; echo oops >&2; exit 2"])
    assert (result.exit_code, result.stdout, result.stderr) == (2, b"hi\n", b"oops\n")
    assert cocoon_lib.run(busybox, ["cat"], stdin=b"piped").stdout == b"piped"


def test_dead_vm_is_a_one_line_error(cocoon, busybox):
    records = cocoon.state / "containers"
    before = set(records.glob("*/container.json"))
    proc = cocoon.popen("run", "--rm", busybox, "sh", "-c", "echo up; sleep 1000",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout.readline() == b"up\n"
    (vm,) = cocoon.vms()
    os.kill(vm, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 125
    assert err.decode().count("\n") == 1 and "VM stopped" in err.decode()
    assert set(records.glob("*/container.json")) == before  # --rm cleaned up


def test_agent_port_is_not_in_the_containers_dev(cocoon, busybox):
    result = cocoon("run", "--rm", busybox, "ls", "/dev")
    assert result.returncode == 0 and b"null" in result.stdout
    assert b"vport" not in result.stdout


def test_debug_logs_the_network_mode(cocoon, busybox):
    result = cocoon("--debug", "run", "--rm", "--network", "none", busybox, "true")
    assert (result.returncode, result.stdout) == (0, b"")
    assert re.search(r"^cocoon: network mode none for \w+$", result.stderr.decode(), re.M)


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))


def test_freed_guest_memory_returns_to_the_host(cocoon, busybox):
    """tmpfs pages are guest memory; once the file is gone, free page reporting hands them back.

    Only a cold-booted VM reports: a clone of a memory template must never
    discard into the template's file, so its reporting is off (README).
    """
    script = ("dd if=/dev/zero of=/dev/shm/fill bs=1M count=160 2>/dev/null; echo filled; read x; "
              "rm /dev/shm/fill; echo freed; read x; exit 0")  # fmt: skip
    proc = cocoon.popen("run", "--rm", "-i", "--no-template", busybox, "sh", "-c", script,
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout.readline() == b"filled\n"
        (vm,) = cocoon.vms()
        full = _rss_kib(vm)
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"freed\n"
        deadline = time.monotonic() + 60
        while _rss_kib(vm) > full - 100 * 1024 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _rss_kib(vm) <= full - 100 * 1024, (full, _rss_kib(vm))
    finally:
        proc.stdin.close()
        proc.wait(60)
    assert proc.returncode == 0
