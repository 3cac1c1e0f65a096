"""Framing (``MessageReader``), the untagged startup packet, and the builders' round trips."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.pg import codec
from engine.pg.codec import MessageReader, ProtocolViolation
from engine.pg.messages import error_fields

FUZZ = settings(database=None, deadline=None, max_examples=300)

MESSAGES = [(ord("Q"), b"SELECT 1\x00"), (ord("S"), b""), (ord("d"), bytes(range(256)) * 3)]
STREAM = b"".join(codec.message(bytes([t]), body) for t, body in MESSAGES)


def frame(tag: bytes, length: int, body: bytes = b"") -> bytes:
    """A message with a length field that need not match its body."""
    return tag + struct.pack("!i", length) + body


# --- MessageReader ---------------------------------------------------------------------------


def test_reader_returns_complete_messages_in_order() -> None:
    reader = MessageReader(1 << 20)
    assert reader.feed(STREAM) == MESSAGES
    assert reader.pending == 0


def test_reader_gives_the_same_messages_fed_one_byte_at_a_time() -> None:
    reader = MessageReader(1 << 20)
    out = []
    for i in range(len(STREAM)):
        out += reader.feed(STREAM[i : i + 1])
    assert out == MESSAGES
    assert reader.pending == 0


@pytest.mark.parametrize("cut", [1, 4, 5, 6, 10, 13])
def test_half_read_message_stays_pending(cut: int) -> None:
    reader = MessageReader(1 << 20)
    data = codec.message(b"Q", b"SELECT 1\x00")  # 14 bytes
    assert reader.feed(data[:cut]) == []
    assert reader.pending == cut
    assert reader.feed(data[cut:]) == [(ord("Q"), b"SELECT 1\x00")]
    assert reader.pending == 0


def test_complete_messages_come_out_while_a_later_one_is_half_read() -> None:
    reader = MessageReader(1 << 20)
    second = codec.message(b"Q", b"SELECT 2\x00")
    assert reader.feed(codec.message(b"S") + second[:7]) == [(ord("S"), b"")]
    assert reader.pending == 7
    assert reader.feed(second[7:]) == [(ord("Q"), b"SELECT 2\x00")]


@pytest.mark.parametrize("length", [0, 1, 3, -1, -(2**31)])
def test_length_below_four_is_a_violation(length: int) -> None:
    reader = MessageReader(1 << 20)
    with pytest.raises(ProtocolViolation) as info:
        reader.feed(frame(b"Q", length, b"xxxx"))
    assert info.value.sqlstate == "08P01"
    assert "invalid message length" in str(info.value)


def test_length_above_max_size_is_refused_before_buffering() -> None:
    reader = MessageReader(100)
    assert reader.feed(frame(b"d", 104, b"x" * 100)) == [(ord("d"), b"x" * 100)]
    # Only the header of the oversize message has arrived: it is refused all the same.
    with pytest.raises(ProtocolViolation) as info:
        reader.feed(frame(b"d", 105))
    assert info.value.sqlstate == "54000"
    assert "exceeds the limit of 100 bytes" in str(info.value)


def test_unprintable_tag_is_shown_in_hex() -> None:
    with pytest.raises(ProtocolViolation, match="0x01"):
        MessageReader(10).feed(frame(b"\x01", 2))


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_fuzz_reader_only_raises_protocol_violation(chunks: list[bytes]) -> None:
    reader = MessageReader(1 << 16)
    try:
        for chunk in chunks:
            for tag, body in reader.feed(chunk):
                assert 0 <= tag < 256
                assert isinstance(body, bytes)
    except ProtocolViolation:
        pass


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=10),
    st.data(),
)
def test_fuzz_valid_stream_cut_anywhere_reassembles_exactly(
    messages: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(codec.message(bytes([t]), body) for t, body in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    reader = MessageReader(300)
    out: list[tuple[int, bytes]] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        out += reader.feed(stream[last:cut])
        last = cut
    assert out == messages
    assert reader.pending == 0


# --- the untagged startup packet -------------------------------------------------------------


def test_startup_message_round_trip() -> None:
    params = {"user": "alice", "database": "shop", "application_name": "psql é"}
    packet = codec.startup_message(params)
    length = codec.parse_startup_header(packet[:4])
    assert length == len(packet)
    code = int.from_bytes(packet[4:8], "big")
    assert code == codec.PROTOCOL_3_0
    assert codec.parse_startup_params(packet[8:]) == params


@pytest.mark.parametrize("code", [codec.SSL_REQUEST, codec.GSSENC_REQUEST])
def test_untagged_requests_have_length_eight(code: int) -> None:
    packet = codec.untagged(code)
    assert codec.parse_startup_header(packet[:4]) == 8
    assert int.from_bytes(packet[4:], "big") == code


def test_cancel_request_layout() -> None:
    packet = codec.untagged(codec.CANCEL_REQUEST, struct.pack("!ii", 42, -7))
    assert codec.parse_startup_header(packet[:4]) == 16
    assert struct.unpack("!iii", packet[4:]) == (codec.CANCEL_REQUEST, 42, -7)


@pytest.mark.parametrize("length", [8, 9, 10_000])
def test_startup_header_accepts_sane_lengths(length: int) -> None:
    assert codec.parse_startup_header(struct.pack("!i", length)) == length


@pytest.mark.parametrize("length", [-1, 0, 4, 7, 10_001, 2**31 - 1])
def test_startup_header_refuses_bad_lengths(length: int) -> None:
    with pytest.raises(ProtocolViolation, match="invalid startup packet length"):
        codec.parse_startup_header(struct.pack("!i", length))


@pytest.mark.parametrize(
    ("payload", "params"),
    [
        (b"\x00", {}),
        (b"user\x00alice\x00\x00", {"user": "alice"}),
        (b"user\x00\x00\x00", {"user": ""}),
        (b"a\x001\x00b\x002\x00\x00", {"a": "1", "b": "2"}),
        ("user\x00zoë\x00\x00".encode(), {"user": "zoë"}),
    ],
)
def test_startup_params_valid(payload: bytes, params: dict[str, str]) -> None:
    assert codec.parse_startup_params(payload) == params


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "terminator"),
        (b"user\x00alice", "terminator"),
        (b"user\x00alice\x00", "unterminated"),  # the list's own terminator is missing
        (b"user\x00\x00", "odd number"),
        (b"user\x00alice\x00database\x00\x00", "odd number"),
        (b"\x00alice\x00\x00", "empty parameter name"),
    ],
)
def test_startup_params_malformed(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolViolation, match=reason):
        codec.parse_startup_params(payload)


@pytest.mark.parametrize("payload", [b"user\x00\xff\xfe\x00\x00", b"\xc3\x28\x00x\x00\x00"])
def test_startup_params_not_utf8(payload: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="UTF-8"):
        codec.parse_startup_params(payload)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_startup_params_only_raise_protocol_violation(payload: bytes) -> None:
    try:
        params = codec.parse_startup_params(payload)
    except ProtocolViolation:
        return
    assert all(isinstance(k, str) and k for k in params)


# --- builders through the reader -------------------------------------------------------------


def read_one(data: bytes) -> tuple[int, bytes]:
    reader = MessageReader(1 << 20)
    messages = reader.feed(data)
    assert len(messages) == 1
    assert reader.pending == 0
    return messages[0]


def test_error_response_fields_are_readable() -> None:
    tag, body = read_one(
        codec.error_response(
            "permission denied", "42501", "FATAL", hint="Ask the operator.", detail="row 3"
        )
    )
    assert tag == ord("E")
    assert error_fields(body) == {
        "S": "FATAL",
        "V": "FATAL",
        "C": "42501",
        "M": "permission denied",
        "D": "row 3",
        "H": "Ask the operator.",
    }


def test_error_response_without_hint_or_detail() -> None:
    _, body = read_one(codec.error_response("no", "08P01"))
    assert error_fields(body) == {"S": "ERROR", "V": "ERROR", "C": "08P01", "M": "no"}
    assert body.endswith(b"\x00\x00")


def test_notice_response_fields() -> None:
    tag, body = read_one(codec.notice_response("careful", hint="really"))
    assert tag == ord("N")
    assert error_fields(body) == {
        "S": "WARNING",
        "V": "WARNING",
        "C": "01000",
        "M": "careful",
        "H": "really",
    }


@pytest.mark.parametrize(
    ("data", "tag", "body"),
    [
        (codec.ready_for_query(b"T"), b"Z", b"T"),
        (codec.ready_for_query(), b"Z", b"I"),
        (
            codec.auth_request(10, b"SCRAM-SHA-256\x00\x00"),
            b"R",
            b"\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00",
        ),
        (codec.auth_request(0), b"R", b"\x00\x00\x00\x00"),
        (codec.backend_key_data(1234, -5), b"K", struct.pack("!ii", 1234, -5)),
        (codec.parameter_status("TimeZone", "UTC"), b"S", b"TimeZone\x00UTC\x00"),
        (codec.password_message(b"md5abc\x00"), b"p", b"md5abc\x00"),
        (codec.TERMINATE, b"X", b""),
        (
            codec.negotiate_protocol_version(0, ["_pq_.a", "_pq_.b"]),
            b"v",
            struct.pack("!ii", 0, 2) + b"_pq_.a\x00_pq_.b\x00",
        ),
    ],
)
def test_builders_round_trip(data: bytes, tag: bytes, body: bytes) -> None:
    assert read_one(data) == (tag[0], body)


def test_cstr_is_utf8_with_terminator() -> None:
    assert codec.cstr("é") == b"\xc3\xa9\x00"
