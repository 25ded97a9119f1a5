"""The container state machine, record locking and lookup, and the output log format."""

from __future__ import annotations

import multiprocessing

import pytest

from cocoon.container import liveness, logs
from cocoon.container import record as records
from cocoon.container.state import Op, State, can, check
from cocoon.errors import InvalidArgument, InvalidState, NotFound


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COCOON_STATE_DIR", str(tmp_path))


def _new(name: str | None = None) -> records.Record:
    fields = {"image": "img", "image_id": "sha256:x", "command": ["true"], "created": 1.0}
    return records.create(fields, name)


@pytest.mark.parametrize(
    ("op", "allowed"),
    [
        (Op.START, {State.CREATED, State.EXITED}),
        (Op.STOP, {State.RUNNING}),
        (Op.EXEC, {State.RUNNING}),
        (Op.REMOVE, {State.CREATED, State.EXITED}),
        (Op.FORCE_REMOVE, set(State)),
    ],
)
def test_allowed_states(op, allowed):
    assert {s for s in State if can(op, s)} == allowed


def test_wrong_state_is_one_named_error():
    with pytest.raises(InvalidState, match="cannot remove container web, it is running: stop"):
        check(Op.REMOVE, "running", "web")
    check(Op.STOP, State.RUNNING, "web")


def _with_id(container_id: str, name: str) -> records.Record:
    """A record under a chosen id: random ids share a prefix only by chance."""
    rec = _new(name)
    records.folder(rec.id).rename(records.folder(container_id))
    rec.id = container_id
    records.save(rec)
    return rec


def test_find_by_name_id_and_prefix():
    a = _with_id("ab12" + "0" * 60, "alpha")
    b = _with_id("ab34" + "0" * 60, "beta")
    assert records.find("alpha").id == a.id
    assert records.find(b.id).name == "beta"
    assert records.find("ab1").id == a.id
    assert records.find("ab3").id == b.id
    with pytest.raises(NotFound, match="no such container: gamma"):
        records.find("gamma")
    with pytest.raises(InvalidArgument, match="container id prefix 'ab' is ambiguous"):
        records.find("ab")


def _bump(container_id: str, times: int) -> None:
    for _ in range(times):
        records.update(container_id, lambda r: r.command.append("x"))


def test_concurrent_updates_are_not_lost():
    rec = _new()
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_bump, args=(rec.id, 25)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(records.load(rec.id).command) == 1 + 100


def test_dead_owner_means_exited():
    rec = _new()
    records.update(rec.id, lambda r: setattr(r, "state", "running"))
    owner = liveness.hold(rec.id)
    assert liveness.reconcile(records.load(rec.id)).state == "running"
    with pytest.raises(InvalidState):
        liveness.hold(rec.id)
    owner.close()  # what the kernel does when the owner is SIGKILLed
    after = liveness.reconcile(records.load(rec.id))
    assert (after.state, after.error) == ("exited", liveness.OWNER_DIED)


def test_log_lines_streams_and_odd_bytes():
    rec = _new()
    writer = logs.Writer(rec.id)
    writer.write("stdout", b"one\ntw")
    writer.write("stderr", b"err\n")
    writer.write("stdout", b"o\n\xff\xfe partial")
    writer.close()
    entries = logs.read(rec.id)
    assert [(e.stream, e.data) for e in entries] == [
        ("stdout", b"one\n"),
        ("stderr", b"err\n"),
        ("stdout", b"two\n"),
        ("stdout", b"\xff\xfe partial"),
    ]
    assert [e.data for e in logs.read(rec.id, tail=1)] == [b"\xff\xfe partial"]
    assert [e.data for e in logs.follow(rec.id, 2, lambda: False)] == [
        b"two\n",
        b"\xff\xfe partial",
    ]
