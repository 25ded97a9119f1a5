"""The host side of docs/guest-protocol.md: framing and RUN encoding."""

import struct

import pytest

from cocoon.agent.protocol import (
    HEADER,
    MAX_PAYLOAD,
    Decoder,
    Field,
    GuestConfig,
    Msg,
    decode_header,
    encode,
    encode_run,
    exit_status,
)
from cocoon.agent.spec import ProcessSpec
from cocoon.errors import Corrupt, InvalidArgument


def test_round_trip_in_arbitrary_pieces():
    stream = encode(Msg.STDOUT, 1, b"hello") + encode(Msg.EXIT, 1, struct.pack(">Bi", 0, 7))
    decoder = Decoder()
    frames = [f for byte in stream for f in decoder.feed(bytes([byte]))]
    assert [(f.type, f.proc, f.payload) for f in frames] == [
        (Msg.STDOUT, 1, b"hello"),
        (Msg.EXIT, 1, b"\0\0\0\0\x07"),
    ]
    decoder.close()


def test_header_layout_is_big_endian():
    assert encode(Msg.READY, 0x01020304, b"ab") == b"\0\0\0\x02\x01\x01\x02\x03\x04ab"


def test_max_length_accepted_and_one_more_refused():
    assert decode_header(HEADER.pack(MAX_PAYLOAD, Msg.STDOUT, 1))[0] == MAX_PAYLOAD
    with pytest.raises(Corrupt, match="exceeds"):
        decode_header(HEADER.pack(MAX_PAYLOAD + 1, Msg.STDOUT, 1))
    with pytest.raises(InvalidArgument):
        encode(Msg.STDIN, 1, b"x" * (MAX_PAYLOAD + 1))


def test_unknown_type_is_corrupt():
    with pytest.raises(Corrupt, match="unknown frame type 0x7f"):
        Decoder().feed(HEADER.pack(0, 0x7F, 0))


def test_stream_cut_inside_a_frame_is_corrupt():
    decoder = Decoder()
    assert decoder.feed(encode(Msg.STDOUT, 1, b"abcdef")[:-2]) == []
    with pytest.raises(Corrupt, match="inside a frame"):
        decoder.close()


def _fields(payload: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i < len(payload):
        tag, n = struct.unpack(">BI", payload[i : i + 5])
        out.append((tag, payload[i + 5 : i + 5 + n]))
        i += 5 + n
    return out


def test_run_fields():
    spec = ProcessSpec(["sh", "-c", "exit 7"], ["A=1"], cwd="/w", user="app", tty=(24, 80))
    fields = _fields(encode_run(spec))
    assert fields == [
        (Field.ARG, b"sh"),
        (Field.ARG, b"-c"),
        (Field.ARG, b"exit 7"),
        (Field.ENV, b"A=1"),
        (Field.CWD, b"/w"),
        (Field.USER, b"app"),
        (Field.TTY, b"\0\x18\0\x50"),
    ]
    assert (Field.STDIN, b"") in _fields(encode_run(ProcessSpec(["cat"], [], stdin=True)))


def test_run_refuses_nul_and_empty_argv():
    with pytest.raises(InvalidArgument, match="NUL"):
        encode_run(ProcessSpec(["a\0b"], []))
    with pytest.raises(InvalidArgument, match="no command"):
        encode_run(ProcessSpec([], []))


def test_exit_status():
    assert exit_status(struct.pack(">Bi", 0, 3)) == (False, 3)
    assert exit_status(struct.pack(">Bi", 1, 9)) == (True, 9)
    with pytest.raises(Corrupt):
        exit_status(b"\0")
    with pytest.raises(Corrupt):
        exit_status(struct.pack(">Bi", 2, 0))


@pytest.mark.parametrize(
    "fields",
    [
        {"address": "192.168.64.300/24"},
        {"address": "10.0.0.2/33"},
        {"gateway": "::1"},
        {"dns": ["x"]},
    ],
)
def test_guest_config_refuses_what_is_not_ipv4(fields):
    with pytest.raises(InvalidArgument, match="IPv4"):
        GuestConfig(**fields).encode()
