"""Mutation check (`make mutate`): does each feature's test go red when the feature breaks?

Each mutation breaks one thing in a copy of the working tree (the files git
knows, committed or not) and runs the tests that should notice, with this
worktree's venv but the copy's ``src`` first on PYTHONPATH, and with the
copy's agent when the mutation is in ``guest/``. A mutation the tests
survive, or one whose text is no longer found exactly once (the code moved
on), makes the check fail, so the list cannot rot silently.

    python tests/mutate.py [-k SUBSTRING] [--list] [--no-baseline]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


RUN = "tests/integration/test_run.py::"
NET = "tests/integration/test_network.py::"
MULTI = "tests/integration/test_multinet.py::"
ROOTED = "tests/integration/test_rooted.py::"
LIFE = "tests/integration/test_lifecycle.py::"
CMDS = "tests/integration/test_commands.py::"
ACCEL = "tests/unit/test_accel.py::"
SILENT = "tests/security/test_silent_guest.py::"
SERVICE = "tests/integration/test_service.py::"
FLAGS = "tests/integration/test_run_flags.py::"
VERBS = "tests/integration/test_verbs.py::"
BUILD = "tests/integration/test_build.py::"

MUTATIONS = [
    Mutation(
        "a silent guest is never declared dead",
        "src/cocoon/agent/keepalive.py",
        "            if quiet >= self.dead_after:\n",
        "            if False:\n",
        (SILENT + "test_a_frozen_guest_ends_a_detached_container_and_its_exec",),
    ),
    Mutation(
        "a second interrupt is forwarded like the first",
        "src/cocoon/cli/terminal.py",
        "            if interrupted:\n                raise KeyboardInterrupt\n",
        "",
        (SILENT + "test_a_second_interrupt_gets_the_user_out_of_a_frozen_guest",),
    ),
    Mutation(
        "hostnames are not checked",
        "src/cocoon/container/spec.py",
        "    if len(name) > limit or not _HOSTNAME.match(name):\n",
        "    if False:\n",
        ("tests/unit/test_spec.py",),
    ),
    Mutation(
        "the root filesystem is not grown to its disk",
        "guest/src/mounts.c",
        "\tint r = ioctl(dir, EXT4_IOC_RESIZE_FS, &blocks);\n",
        "\tint r = 0;\n",
        ("tests/integration/test_storage.py",),
    ),
    Mutation(
        "a killed run --rm is not finished by the next command",
        "src/cocoon/container/liveness.py",
        "    return record.remove and record.state == State.EXITED and not owner_alive(",
        "    return False and (",
        ("tests/integration/test_owner_death.py",),
    ),
    Mutation(
        "SIGINT is not forwarded to the container",
        "src/cocoon/cli/terminal.py",
        "    signal.SIGINT,\n    signal.SIGTERM,\n",
        "    signal.SIGTERM,\n",
        (RUN + "test_sigint_reaches_the_container",),
    ),
    Mutation(
        "an ambiguous id prefix picks a container",
        "src/cocoon/container/record.py",
        "    if len(matches) > 1:\n",
        "    if False:\n",
        ("tests/unit/test_lifecycle_state.py::test_find_by_name_id_and_prefix",),
    ),
    Mutation(
        "a published port's host IP is ignored",
        "src/cocoon/network/ports.py",
        "sock.bind((spec.host_ip, spec.host_port))",
        'sock.bind(("0.0.0.0", spec.host_port))',
        (NET + "test_published_ports_honour_the_host_ip_and_relay_udp",),
    ),
    Mutation(
        "published ports default to loopback only",
        "src/cocoon/network/ports.py",
        'host_ip, (host, container) = "0.0.0.0", parts',
        'host_ip, (host, container) = "127.0.0.1", parts',
        (NET + "test_published_ports_honour_the_host_ip_and_relay_udp",),
    ),
    Mutation(
        "the UDP relay is dropped",
        "src/cocoon/network/ports.py",
        'serve = self._tcp if spec.protocol == "tcp" else self._udp',
        "serve = self._tcp",
        (NET + "test_published_ports_honour_the_host_ip_and_relay_udp",),
    ),
    Mutation(
        "user-mode forwards ignore the host IP",
        "src/cocoon/vm/qemu.py",
        'f",hostfwd={f.protocol}:{f.host_ip}:{f.host_port}-:{f.guest_port}"',
        'f",hostfwd={f.protocol}::{f.host_port}-:{f.guest_port}"',
        (NET + "test_user_mode_forwards_tcp_and_udp_on_the_host_ip",),
    ),
    Mutation(
        "the NAT rule does not masquerade",
        "src/cocoon/network/nat.py",
        "ip daddr != {subnet} masquerade comment",
        "ip daddr != {subnet} accept comment",
        (NET + "test_outbound_nat_forwarding_and_lease_across_restart",),
    ),
    Mutation(
        "IP forwarding is not switched on",
        "src/cocoon/network/nat.py",
        '    FORWARD.write_text("1")\n',
        "    FORWARD.read_text()\n",
        (NET + "test_outbound_nat_forwarding_and_lease_across_restart",),
    ),
    Mutation(
        "the agent reports a killed process as exited 0",
        "guest/src/agent.c",
        "send_exit(p->id, 1, WTERMSIG(status));",
        "send_exit(p->id, 0, 0);",
        (RUN + "test_exit_codes",),
    ),
    Mutation(
        "teardown leaves IP forwarding on",
        "src/cocoon/network/nat.py",
        '            FORWARD.write_text("0")\n',
        "            FORWARD.read_text()\n",
        (NET + "test_outbound_nat_forwarding_and_lease_across_restart",),
    ),
    Mutation(
        "--debug does not say the network mode",
        "src/cocoon/container/network.py",
        '    log.debug("network mode %s for %s", settings.mode, rec.name)\n',
        "",
        (RUN + "test_debug_logs_the_network_mode",),
    ),
    Mutation(
        "exec -t gives no terminal",
        "src/cocoon/cli/container.py",
        "tty=terminal.size(sys.stdout.fileno()) if args.tty else None,",
        "tty=None,",
        (CMDS + "test_ps_stats_stream_and_exec_tty",),
    ),
    Mutation(
        "the cached accelerator verdict is ignored",
        "src/cocoon/vm/accel.py",
        "verdict = json.loads(cache.read_text())",
        'verdict = json.loads("")',
        (ACCEL + "test_the_verdict_is_cached_per_host",),
    ),
    Mutation(
        "a successful KVM probe is ignored",
        "src/cocoon/vm/accel.py",
        '"accel": "kvm" if ok else "tcg"',
        '"accel": "tcg"',
        (ACCEL + "test_auto_uses_kvm_when_a_probe_boot_reaches_the_agent",),
    ),
    Mutation(
        "without /dev/kvm, auto still probes",
        "src/cocoon/vm/accel.py",
        "    if not _kvm_usable():\n        log.debug(",
        "    if False:\n        log.debug(",
        (ACCEL + "test_without_access_to_dev_kvm_auto_is_tcg_unprobed",),
    ),
    Mutation(
        "an unprivileged user defaults to a bridge network",
        "src/cocoon/container/network.py",
        'return ipam.DEFAULT if netdev.can_admin() else "user"',
        "return ipam.DEFAULT",
        (CMDS + "test_unprivileged_user_runs_on_user_networking",),
    ),
    Mutation(
        "logs -n is off by one",
        "src/cocoon/container/logs.py",
        "found = iter(read(container_id, tail))",
        "found = iter(read(container_id, tail and tail + 1))",
        (LIFE + "test_logs_tail_and_follow",),
    ),
    Mutation(
        "logs -f stops at the end of what is written",
        "src/cocoon/container/logs.py",
        "lambda: liveness.owner_alive(container_id)",
        "lambda: False",
        (LIFE + "test_logs_tail_and_follow",),
    ),
    Mutation(
        "a terminal resize is not relayed",
        "src/cocoon/cli/terminal.py",
        "process.resize(*size(size_fd))",
        "process.resize(24, 80)",
        (RUN + "test_terminal_resize_reaches_the_container",),
    ),
    Mutation(
        "stats does not stream",
        "src/cocoon/cli/container.py",
        "        if args.no_stream:\n            return 0\n",
        "        return 0\n",
        (CMDS + "test_ps_stats_stream_and_exec_tty",),
    ),
    Mutation(
        "free page reporting is off",
        "src/cocoon/vm/qemu.py",
        'reporting = "off" if spec.memory_file is not None else "on"',
        'reporting = "off"',
        (RUN + "test_freed_guest_memory_returns_to_the_host",),
    ),
    Mutation(
        "an archive PUT unpacks as a file what is no folder",
        "src/cocoon/service/archive.py",
        'else path).rstrip("/") + "/."',
        'else path).rstrip("/") or "/"',
        (SERVICE + "test_docker_cp_running_and_stopped",),
    ),
    Mutation(
        "a stopped container's copy fails while the last copy's VM powers off",
        "src/cocoon/container/copy.py",
        "            if time.monotonic() > deadline:\n                raise\n",
        "            raise\n",
        (SERVICE + "test_docker_cp_running_and_stopped",),
    ),
    Mutation(
        "stats answers one reading where the CLI needs two",
        "src/cocoon/service/stats.py",
        "        return view(rec, _read(rec) or before, before)",
        "        return view(rec, before, None)",
        (SERVICE + "test_docker_py_archive_top_and_stats",),
    ),
    Mutation(
        "a clone's read-only volume is mounted writable",
        "guest/src/mounts.c",
        "\t\t\tdisk_ro |= disk_attached_readonly(all, n, i);\n",
        "",
        (
            "tests/integration/test_templates.py::test_containers_with_volumes_are_clones_that_see_only_their_own",
        ),
    ),
    Mutation(
        "a clone is not told its root disk's size",
        "src/cocoon/container/boot.py",
        "                root_size=templates.root_size(spec),\n",
        "",
        # A rooted template's guest grew the root before it was saved: only
        # a new container cloned from its shape's template needs the size.
        (ROOTED + "test_a_rooted_template_that_cannot_be_built_falls_back_to_the_shapes",),
    ),
    Mutation(
        "a clone of a rooted template keeps its own untouched disk",
        "src/cocoon/vm/template.py",
        "        _give_root(spec, template)\n",
        "",
        (ROOTED + "test_a_new_container_resumes_its_images_rooted_template_with_its_own_disk",),
    ),
    Mutation(
        "a rooted template's namespaces serve a read-only root",
        "guest/src/agent.c",
        "\tif (ns_ready && (cfg.readonly_root || cfg.nmounts)) {\n",
        "\tif (0) {\n",
        (ROOTED + "test_read_only_root_and_a_volume_from_rooted_templates",),
    ),
    Mutation(
        "resolv.conf gets no search or options without a name server",
        "guest/src/net.c",
        "\tif (cfg->ndns == 0 && cfg->nsearch == 0 && cfg->noptions == 0)\n",
        "\tif (cfg->ndns == 0)\n",
        (FLAGS + "test_dns_search_options_and_shm_size_reach_the_guest",),
    ),
    Mutation(
        "/dev/shm keeps the kernel's size",
        "guest/src/agent.c",
        "\tif (shm_resize(cfg.shm_size, err, sizeof(err)) < 0)\n",
        "\tif (0)\n",
        (FLAGS + "test_dns_search_options_and_shm_size_reach_the_guest",),
    ),
    Mutation(
        "a fractional --cpus gets no CPU quota",
        "src/cocoon/vm/qemu.py",
        "        if self.spec.cpu_quota is not None:\n",
        "        if False:\n",
        (FLAGS + "test_fractional_cpus_round_up_and_become_a_quota",),
    ),
    Mutation(
        "network aliases are not given to peers",
        "src/cocoon/container/network.py",
        "        ipam.set_aliases(container_id, aliases)\n",
        "        pass\n",
        (NET + "test_network_alias_resolves_for_peers",),
    ),
    Mutation(
        "a start is not an event",
        "src/cocoon/container/lifecycle.py",
        '            events.emit("start", self.rec)\n',
        "",
        (VERBS + "test_events_stream_what_the_cli_does",),
    ),
    Mutation(
        "update does not reach a running VM's balloon",
        "src/cocoon/container/monitor.py",
        '            machine.set_memory(int(req["memory_mib"]))\n',
        "            pass\n",
        (VERBS + "test_update_shrinks_a_running_vm_through_its_balloon",),
    ),
    Mutation(
        "a build step's removals are not whiteouts in its layer",
        "guest/src/tar.c",
        "\tif (S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0)) {\n",
        "\tif (0) {\n",
        (BUILD + "test_layers_whiteouts_and_history_are_docker_s",),
    ),
    Mutation(
        "what a build step leaves running lives on",
        "guest/src/agent.c",
        "\tif (p->step)\n\t\tkill(-p->pid, SIGKILL);\n",
        "",
        (BUILD + "test_what_a_run_leaves_running_ends_with_it",),
    ),
    Mutation(
        "the build cache is never read",
        "src/cocoon/builder/executor.py",
        "        hit = None if self.opts.no_cache else self.cache.get(key)\n",
        "        hit = None\n",
        (BUILD + "test_second_build_is_all_cache_and_a_context_change_misses",),
    ),
    Mutation(
        "the cards after eth0 are left unconfigured",
        "guest/src/net.c",
        "\t\t\tiface_setup(s, name, cfg->nics[i].mac, cfg->nics[i].address,\n"
        "\t\t\t\t    cfg->nics[i].prefix);\n",
        "\t\t\t(void)name;\n",
        (MULTI + "test_a_container_on_two_networks_reaches_a_peer_on_each_by_name",),
    ),
    Mutation(
        "/etc/hosts lists the peers of the first network only",
        "src/cocoon/container/network.py",
        "    for network in settings.networks():\n",
        "    for network in settings.networks()[:1]:\n",
        (MULTI + "test_a_container_on_two_networks_reaches_a_peer_on_each_by_name",),
    ),
    Mutation(
        "a running container's disconnect leaves its TAP on the bridge",
        "src/cocoon/container/network.py",
        "    netdev.detach(tap_name(container_id, index), ipam.get(network).bridge)\n",
        "    pass\n",
        (MULTI + "test_disconnect_of_a_running_container_cuts_its_card_off",),
    ),
    Mutation(
        "connect is let through on a running VM",
        "src/cocoon/container/network.py",
        "            raise InvalidState(RUNNING_CONNECT)\n",
        "            pass\n",
        (MULTI + "test_connect_and_disconnect_change_a_created_containers_next_boot",),
    ),
    Mutation(
        "a silent build guest is not watched",
        "src/cocoon/builder/vm.py",
        "        self._watchdog = Watchdog(self.channel, self.machine.kill).start()\n",
        "        self._watchdog = None\n",
        (BUILD + "test_a_frozen_build_guest_fails_the_step_and_leaves_nothing",),
    ),
    Mutation(
        "more mounts than device slots are found only at boot",
        "src/cocoon/container/volumes.py",
        "        _check_room(mounts, nics)\n",
        "",
        ("tests/integration/test_mounts.py::test_as_many_mounts_as_the_vm_has_slots",),
    ),
]


def tree_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    return [name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


@contextlib.contextmanager
def copied_tree() -> Iterator[Path]:
    """A copy of the working tree, removed after."""
    with tempfile.TemporaryDirectory(prefix="cocoon-mutate-") as tmp:
        target = Path(tmp)
        target.chmod(0o755)  # some tests run cocoon as another user
        for name in tree_files():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
        yield target


def apply(tree: Path, m: Mutation) -> str | None:
    """Apply ``m`` in ``tree``; why not, if its text is not there exactly once."""
    path = tree / m.path
    if not path.is_file():
        return f"{m.path} does not exist"
    text = path.read_text()
    if text.count(m.old) != 1:
        return f"its text occurs {text.count(m.old)} times in {m.path}"
    path.write_text(text.replace(m.old, m.new))
    return None


def run_tests(tree: Path, tests: tuple[str, ...], agent: bool) -> tuple[int, str]:
    """pytest's exit code and the end of its report."""
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    if agent:
        subprocess.run(["make", "-s", "-C", str(tree / "guest")], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        env["COCOON_AGENT"] = str(tree / "guest" / "build" / "cocoon-agent")
    where = subprocess.run(
        [sys.executable, "-c", "import cocoon; print(cocoon.__file__)"],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if not where.startswith(str(tree)):
        raise SystemExit(f"the copy's cocoon is not the one imported ({where.strip()})")
    argv = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    return done.returncode, "\n".join(done.stdout.splitlines()[-15:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", metavar="SUBSTRING", help="only mutations whose name has this")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip running the tests on the unmutated copy"
    )
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.k or args.k in m.name]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.path} -> {' '.join(m.tests)}")
        return 0
    if not args.no_baseline:
        # A selection that fails unmutated would count every mutation as caught.
        with copied_tree() as tree:
            tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            agent = any(m.path.startswith("guest/") for m in chosen)
            code, said = run_tests(tree, tests, agent)
            if code != 0:
                print(f"{said}\nthe tests fail without any mutation (pytest exit {code})")
                return 1
    bad = 0
    for m in chosen:
        with copied_tree() as tree:
            if why := apply(tree, m):
                verdict = f"STALE ({why})"
            else:
                code, said = run_tests(tree, m.tests, m.path.startswith("guest/"))
                # pytest: 1 = tests failed; anything else is not a catch.
                verdict = {0: "SURVIVED", 1: "caught"}.get(code, f"ERROR (pytest exit {code})")
                if code not in (0, 1):
                    print(said)
        print(f"{verdict:<10} {m.name}", flush=True)
        bad += verdict != "caught"
    print(f"{len(chosen) - bad} of {len(chosen)} mutations caught")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
