"""docs/guest-protocol.md is enforced: its tables, protocol.py and the C header agree,
and the shared vectors decode as the C agent's tests say they do."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from cocoon.agent.channel import MAX_EMPTY_FRAMES, Channel
from cocoon.agent.protocol import (
    HEADER,
    MAX_PAYLOAD,
    TAR_KEEP_KINDS,
    VERSION,
    ConfigField,
    Decoder,
    Field,
    GuestConfig,
    GuestMount,
    MountFlag,
    MountKind,
    Msg,
    TarOp,
    encode,
    encode_run,
    guest_text,
)
from cocoon.agent.spec import ProcessSpec
from cocoon.errors import Corrupt

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "guest-protocol.md").read_text()
HEADER_C = (ROOT / "guest" / "src" / "protocol.h").read_text()
VECTORS = ROOT / "docs" / "guest-protocol-vectors.txt"


def doc_table(heading: str) -> dict[str, int]:
    """NAME -> code of the table under a heading (first column hex, second `NAME`)."""
    section = DOC.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| (0x[0-9a-f]{2}) \| `([A-Z_]+)` \|", section, re.MULTILINE)
    return {name: int(code, 16) for code, name in rows}


def c_enum(name: str, prefix: str) -> dict[str, int]:
    body = re.search(rf"enum {name} \{{(.*?)\}};", HEADER_C, re.DOTALL).group(1)
    return {n: int(v, 16) for n, v in re.findall(rf"{prefix}(\w+) = (0x[0-9a-f]+)", body)}


def test_message_tables_match_the_code():
    doc = doc_table("### Guest → host") | doc_table("### Host → guest")
    assert doc == {m.name: int(m) for m in Msg}
    assert doc == c_enum("msg_type", "MSG_")


def test_field_tables_match_the_code():
    assert doc_table("### `RUN` fields") == {f.name: int(f) for f in Field}
    assert doc_table("### `RUN` fields") == c_enum("run_tag", "TAG_")
    assert doc_table("### `CONFIG` fields") == {f.name: int(f) for f in ConfigField}
    assert doc_table("### `CONFIG` fields") == c_enum("config_tag", "CFG_")


def test_constants_match_the_code():
    assert f"# cocoon guest protocol, version {VERSION}\n" in DOC
    assert f"protocol version as one byte ({VERSION})" in DOC
    assert f"#define PROTO_VERSION {VERSION}\n" in HEADER_C
    assert f"at most 4 MiB ({MAX_PAYLOAD})" in DOC
    assert "#define FRAME_MAX_PAYLOAD (4u << 20)" in HEADER_C and MAX_PAYLOAD == 4 << 20
    assert f"#define FRAME_HDR_LEN {HEADER.size}\n" in HEADER_C
    assert f"Every message is a frame: a {HEADER.size}-byte header" in DOC


def vectors(kind: str) -> dict[str, tuple[str, bytes]]:
    found = {}
    for line in VECTORS.read_text().splitlines():
        if line and not line.startswith("#"):
            k, name, result, data = line.split()
            if k == kind:
                found[name] = (result, b"" if data == "-" else bytes.fromhex(data))
    return found


@pytest.mark.parametrize(("name", "vector"), sorted(vectors("frame").items()))
def test_frame_vectors(name, vector):
    result, data = vector
    decoder = Decoder()
    if result == "ok":
        [frame] = decoder.feed(data)
        assert encode(frame.type, frame.proc, frame.payload) == data
        decoder.close()
    elif result == "need-more":
        assert decoder.feed(data) == []
        with pytest.raises(Corrupt, match="ended inside a frame"):
            decoder.close()
    else:
        message = {"too-long": "exceeds", "unknown-type": "unknown frame type"}[result]
        with pytest.raises(Corrupt, match=message):
            decoder.feed(data)


def test_encoders_produce_the_shared_vectors():
    config = GuestConfig(
        hostname="web-1",
        time_ns=1700000000123456789,
        address="192.168.64.2/24",
        gateway="192.168.64.1",
        dns=["192.168.64.1", "1.1.1.1"],
    )
    assert vectors("config")["basic"] == ("ok", config.encode())
    assert vectors("config")["empty"] == ("ok", GuestConfig().encode())
    mounts = [
        GuestMount(MountKind.EXT4, "/data", "cocoon-vol0", flags=MountFlag.COPY_UP),
        GuestMount(MountKind.NINEP, "/etc/app.conf", "cocoon.m0", "app.conf", MountFlag.RDONLY),
        GuestMount(MountKind.TMPFS, "/run", flags=MountFlag.NOEXEC, mode=0o1777, size=65536),
    ]
    assert vectors("config")["mounts"] == ("ok", GuestConfig(mounts=mounts, readonly=True).encode())
    resolver = GuestConfig(
        dns_search=["example.com", "corp"], dns_options=["ndots:2", "edns0"], shm_size=64 << 20
    )
    assert vectors("config")["dns-search-options-shm"] == ("ok", resolver.encode())
    spec = ProcessSpec(
        args=["sh", "-c", "echo hi"],
        env=["PATH=/bin"],
        cwd="/tmp",
        user="1000:1000",
        tty=(24, 80),
        stdin=True,
    )
    assert vectors("run")["basic"] == ("ok", encode_run(spec))
    unlimited = (1 << 64) - 1
    rlimits = (("nofile", 1024, 4096), ("core", unlimited, unlimited))
    limited = ProcessSpec(args=["sh"], env=[], groups=("audio", "4000"), rlimits=rlimits)
    assert vectors("run")["limits"] == ("ok", encode_run(limited))
    step = ProcessSpec(args=["sh"], env=[], root=("/b/2", "/b/1"))
    assert vectors("run")["root"][1][7:] in encode_run(step)  # after its ARG field
    nics = GuestConfig(nics=[("02:42:c0:a8:41:02", "192.168.65.2/24"),
                             ("02:42:c0:a8:42:03", "192.168.66.3/24")])  # fmt: skip
    assert vectors("config")["nics"] == ("ok", nics.encode())
    keep = ProcessSpec(args=["tar"], env=[], tar=(TarOp.EXTRACT, TAR_KEEP_KINDS, "/x"))
    result, payload = vectors("run")["tar-extract-keep-kinds"]
    assert result == "ok" and payload[8:] in encode_run(keep)  # after its ARG field
    assert vectors("config")["build"] == ("ok", GuestConfig(build=True).encode())
    assert vectors("frame")["config"] == ("ok", encode(Msg.CONFIG, 0, config.encode()))


def test_guest_text_strips_what_a_terminal_would_act_on():
    raw = b"a\x1b[31mred\x1b[0m\tb\r\nc\x07\x1b]0;title\x07d\xc2\x9be\x7f"
    assert guest_text(raw) == "ared\tbcde"


def test_a_flood_of_empty_frames_is_corrupt():
    host, guest = socket.socketpair()
    with host, guest:
        channel = Channel(host)
        guest.sendall(encode(Msg.STDOUT, 1, b"x") + encode(Msg.STDOUT, 1) * MAX_EMPTY_FRAMES)
        frames = [channel.recv(5) for _ in range(MAX_EMPTY_FRAMES + 1)]
        assert frames[0].payload == b"x" and not frames[-1].payload
        guest.sendall(encode(Msg.STDOUT, 1))
        with pytest.raises(Corrupt, match="empty frames"):
            channel.recv(5)
