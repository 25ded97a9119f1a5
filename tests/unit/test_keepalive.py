"""The watchdog over the agent connection, against a peer on a real socket."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from cocoon.agent.channel import MAX_EMPTY_FRAMES, Channel
from cocoon.agent.keepalive import SILENT, Watchdog
from cocoon.agent.protocol import Decoder, Msg, encode
from cocoon.errors import Corrupt


def _agent(sock: socket.socket, answer: bool, stop: threading.Event) -> None:
    """A peer that answers every PING with a PONG, or stays silent."""
    decoder = Decoder()
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return
        if not data:
            return
        for frame in decoder.feed(data):
            if frame.type is Msg.PING and answer:
                sock.sendall(encode(Msg.PONG, 0))


@pytest.fixture
def pair():
    host, guest = socket.socketpair()
    yield Channel(host), guest
    host.close()
    guest.close()


def _watch(channel: Channel, silent: threading.Event) -> Watchdog:
    return Watchdog(channel, silent.set, ping_after=0.2, dead_after=1.0).start()


def test_an_answering_guest_is_never_declared_dead(pair):
    channel, guest = pair
    stop, silent = threading.Event(), threading.Event()
    threading.Thread(target=_agent, args=(guest, True, stop), daemon=True).start()
    reader = threading.Thread(target=channel.recv, daemon=True)  # takes the PONGs
    reader.start()
    dog = _watch(channel, silent)
    try:
        assert not silent.wait(3.0)
        assert channel.lost is None
    finally:
        dog.stop()
        stop.set()


def test_a_silent_guest_is_declared_dead_and_the_reader_told_why(pair):
    channel, guest = pair
    stop, silent = threading.Event(), threading.Event()
    threading.Thread(target=_agent, args=(guest, False, stop), daemon=True).start()
    dog = _watch(channel, silent)
    try:
        assert silent.wait(5.0)
        assert channel.lost == SILENT
    finally:
        dog.stop()
        stop.set()


def test_output_waiting_unread_means_alive(pair):
    """A host too slow to read (its own stdout blocked) must not kill a talking guest."""
    channel, guest = pair
    silent = threading.Event()
    guest.sendall(encode(Msg.STDOUT, 1, b"x"))
    dog = _watch(channel, silent)
    try:
        feeder_stop = time.monotonic() + 3.0
        while time.monotonic() < feeder_stop:
            guest.sendall(encode(Msg.STDOUT, 1, b"x"))
            time.sleep(0.1)
        assert not silent.is_set()
    finally:
        dog.stop()


def test_unasked_pongs_count_as_empty_frames(pair):
    channel, guest = pair
    guest.sendall(encode(Msg.PONG, 0) * (MAX_EMPTY_FRAMES + 1))
    with pytest.raises(Corrupt, match="empty frames"):
        while True:
            channel.recv(timeout=5)


def test_answered_pings_are_not_delivered(pair):
    channel, guest = pair
    channel.ping()
    guest.sendall(encode(Msg.PONG, 0) + encode(Msg.STDOUT, 1, b"hi"))
    frame = channel.recv(timeout=5)
    assert (frame.type, frame.payload) == (Msg.STDOUT, b"hi")
