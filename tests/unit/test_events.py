"""The container event journal: appended, trimmed, followed and filtered; no VMs."""

from __future__ import annotations

import threading
import time

import pytest

from cocoon.container import events
from cocoon.container.record import Record
from cocoon.errors import InvalidArgument


def record(cid: str, name: str) -> Record:
    return Record(id=cid, name=name, image="localhost/busybox", image_id="sha256:x",
                  command=["true"], created=time.time())  # fmt: skip


def test_emitted_events_are_read_back_in_order_and_filtered():
    start = time.time()
    events.emit("create", record("a" * 64, "web"))
    events.emit("die", record("a" * 64, "web"), exitCode="3")
    events.emit("create", record("b" * 64, "db"))
    seen = list(events.follow(start - 1, time.time() + 0.2, {}))
    assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in seen] == [
        ("create", "web"), ("die", "web"), ("create", "db")]  # fmt: skip
    assert seen[1]["Actor"]["Attributes"]["exitCode"] == "3"
    only = list(events.follow(start - 1, time.time() + 0.2, {"container": ["web"],
                                                              "event": ["die"]}))  # fmt: skip
    assert [e["Action"] for e in only] == ["die"]
    by_prefix = list(events.follow(start - 1, time.time() + 0.2, {"container": ["bbbb"]}))
    assert [e["Actor"]["Attributes"]["name"] for e in by_prefix] == ["db"]


def test_a_follower_gets_events_written_after_it_started():
    got: list[str] = []
    since = time.time()

    def follow() -> None:
        for event in events.follow(since, None, {}, stopped=lambda: bool(got)):
            got.append(event["Action"])

    reader = threading.Thread(target=follow)
    reader.start()
    time.sleep(0.3)
    events.emit("start", record("c" * 64, "late"))
    reader.join(30)
    assert not reader.is_alive() and got == ["start"]


def test_the_journal_keeps_its_newest_half_past_its_limit(monkeypatch):
    monkeypatch.setattr(events, "KEEP_BYTES", 4096)
    start = time.time()
    for i in range(40):
        events.emit("rename", record("d" * 64, f"n{i}"))
    assert events.journal().stat().st_size <= 4096 + 1024
    names = [e["Actor"]["Attributes"]["name"] for e in events.follow(start - 1, time.time(), {})]
    assert (
        names[-1] == "n39"
        and "n0" not in names
        and names == sorted(names, key=lambda n: int(n[1:]))
    )


@pytest.mark.parametrize("text", ["1700000000", "1700000000.5", "2023-11-14T22:13:20Z", "10m"])
def test_times_as_docker_takes_them(text):
    assert 1.6e9 < events.parse_time(text, "--since") <= time.time()


def test_bad_times_and_filters_are_refused():
    with pytest.raises(InvalidArgument, match="--until"):
        events.parse_time("tomorrow", "--until")
    with pytest.raises(InvalidArgument, match="invalid filter"):
        list(events.follow(None, 0, {"colour": ["red"]}))
