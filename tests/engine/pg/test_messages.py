"""Decoders of message bodies: valid layouts, malformed ones, and fuzzing."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.pg import messages
from engine.pg.codec import ProtocolViolation
from tests.engine.pg.build import bind_body

FUZZ = settings(database=None, deadline=None, max_examples=500)


def h(n: int) -> bytes:
    return struct.pack("!h", n)


def i(n: int) -> bytes:
    return struct.pack("!i", n)


# --- Query -----------------------------------------------------------------------------------


def test_query_text() -> None:
    assert messages.query_text(b"SELECT 'x'; SELECT 2\x00") == b"SELECT 'x'; SELECT 2"


@pytest.mark.parametrize("body", [b"", b"SELECT 1", b"SELECT 1\x00junk", b"SELECT 1\x00\x00"])
def test_query_text_malformed(body: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="Query"):
        messages.query_text(body)


def test_query_text_is_bytes_for_the_session_encoding_to_decode() -> None:
    assert messages.query_text(b"SELECT '\xff'\x00") == b"SELECT '\xff'"


# --- Parse -----------------------------------------------------------------------------------


def test_parse_unnamed() -> None:
    assert messages.parse(b"\x00SELECT 1\x00" + h(0)) == messages.Parse(b"", b"SELECT 1")


def test_parse_named_with_parameter_types() -> None:
    body = b"s1\x00SELECT $1, $2\x00" + h(2) + i(23) + i(0)
    parsed = messages.parse(body)
    assert parsed == messages.Parse(b"s1", b"SELECT $1, $2", (23, 0))
    assert not parsed.user_typed  # int4 and unspecified: PostgreSQL's own


def test_parse_with_a_user_type_says_so() -> None:
    body = b"\x00SELECT $1\x00" + h(1) + i(16384)
    assert messages.parse(body).user_typed


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"s1",  # unterminated name
        b"s1\x00SELECT 1",  # unterminated query
        b"s1\x00SELECT 1\x00",  # no type count
        b"s1\x00SELECT 1\x00\x00",  # half a type count
        b"s1\x00SELECT 1\x00" + h(1),  # one type announced, none given
        b"s1\x00SELECT 1\x00" + h(1) + i(23) + b"x",  # trailing byte
        b"s1\x00SELECT 1\x00" + h(-1),  # negative count
    ],
)
def test_parse_malformed(body: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="Parse"):
        messages.parse(body)


# --- Bind ------------------------------------------------------------------------------------


def test_bind_names_and_no_params() -> None:
    expected = messages.Bind(b"p1", b"s1", None)
    assert messages.bind(bind_body(portal="p1", statement="s1")) == expected


def test_bind_text_params_preview() -> None:
    body = bind_body([b"42", b"O'Brien", None])
    assert messages.bind(body).params == "'42', \"O'Brien\", NULL"


def test_bind_null_is_distinct_from_the_text_null() -> None:
    assert messages.bind(bind_body([None, b"NULL"])).params == "NULL, 'NULL'"


def test_bind_long_text_is_truncated_to_64_chars() -> None:
    exact = messages.bind(bind_body([b"a" * 64])).params
    assert exact == repr("a" * 64)
    longer = messages.bind(bind_body([b"b" * 65])).params
    assert longer == repr("b" * 64 + "…")
    huge = messages.bind(bind_body([b"c" * 100_000])).params
    assert huge == repr("c" * 64 + "…")


def test_bind_multibyte_text_truncates_by_characters() -> None:
    assert messages.bind(bind_body(["€".encode() * 64])).params == repr("€" * 64)
    # 65 four-byte characters: more than the bytes read for a preview.
    assert messages.bind(bind_body(["😀".encode() * 65])).params == repr("😀" * 64 + "…")


def test_bind_binary_params_are_hex() -> None:
    body = bind_body([b"\x00\x01\xff", b"\xab" * 40], formats=(1,))
    short, long_ = messages.bind(body).params.split(", ")  # type: ignore[union-attr]
    assert short == "\\x0001ff (binary; type not said)"
    assert long_ == "\\x" + "ab" * 32 + "… (binary; type not said)"


def test_bind_per_parameter_formats() -> None:
    body = bind_body([b"\x00\x2a", b"text", None, b"\x01\xff\x00"], formats=(1, 0, 1, 1))
    assert messages.bind(body).params == (
        "binary (2 bytes; type not said; read as int2 42), 'text', NULL, "
        "\\x01ff00 (binary; type not said)")


def test_binary_parameters_are_shown_as_what_they_hold() -> None:
    """Outside attack on issue 14: a card sent as binary text or as an int8 was recorded as
    hex, which no detector reads."""
    card = 4012888888881881
    body = bind_body([str(card).encode(), card.to_bytes(8, "big")], formats=(1, 1))
    assert messages.bind(body).params == (
        f"binary (16 bytes; type not said; read as '{card}'), binary (8 bytes; type not said;"
        f" read as int8 {card} or float8 1.982630540574589e-308)")


@pytest.mark.parametrize(("value", "shown"), [
    # text the statement stored, which an int8 reading alone called 72340173916095300
    (b"\x01\x01\x01\x01ABCD", "binary (8 bytes; type not said; read as int8 "
     "72340173916095300 or float8 7.748605930752249e-304)"),
    # an int4 the statement compared, which a text reading alone called '0001' (id 1)
    (b"0001", "binary (4 bytes; type not said; read as '0001' or int4 808464433 or float4 "
     "6.409691111208815e-10)"),
    (b"ABCDEFGH", "binary (8 bytes; type not said; read as 'ABCDEFGH' or int8 "
     "4702394921427289928 or float8 2393736.541207228)"),
])
def test_a_binary_parameter_of_a_type_the_bind_does_not_say_is_never_one_reading_alone(
        value: bytes, shown: str) -> None:
    """Outside attack on issue 12: the record told an approver and the store one reading of a
    binary parameter as its value, the wrong one (the type is the statement's)."""
    assert messages.bind(bind_body([value], formats=(1,))).params == shown


def test_bind_control_characters_are_escaped() -> None:
    # The preview ends up in a terminal UI: raw escape sequences must not survive.
    preview = messages.bind(bind_body([b"\x1b[2Jboom\n"])).params
    assert preview is not None
    assert "\x1b" not in preview and "\n" not in preview


def test_bind_more_than_16_params_are_summarised() -> None:
    values: list[bytes | None] = [str(n).encode() for n in range(20)]
    values[18] = None
    preview = messages.bind(bind_body(values)).params
    assert preview == ", ".join(repr(str(n)) for n in range(16)) + ", … 4 more"


def test_bind_exactly_16_params_are_all_shown() -> None:
    preview = messages.bind(bind_body([b"x"] * 16)).params
    assert preview == ", ".join(["'x'"] * 16)


def test_bind_result_formats_are_accepted() -> None:
    body = bind_body([b"1"], results=(1, 0))
    assert messages.bind(body).params == "'1'"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"p",
        b"p\x00s",
        b"p\x00s\x00",  # no format count
        b"p\x00s\x00" + h(-1),
        b"p\x00s\x00" + h(2) + h(0),  # two formats announced, one given
        b"p\x00s\x00" + h(0),  # no parameter count
        b"p\x00s\x00" + h(2) + h(0) + h(0) + h(1) + i(1) + b"x" + h(0),  # 2 formats, 1 param
        b"p\x00s\x00" + h(0) + h(-1) + h(0),
        b"p\x00s\x00" + h(0) + h(1),  # parameter length missing
        b"p\x00s\x00" + h(0) + h(1) + i(-2) + h(0),
        b"p\x00s\x00" + h(0) + h(1) + i(10) + b"short" + h(0),
        b"p\x00s\x00" + h(0) + h(1) + i(1) + b"x",  # no result format count
        b"p\x00s\x00" + h(0) + h(0) + h(-1),
        b"p\x00s\x00" + h(0) + h(0) + h(2) + h(0),  # result formats short
        b"p\x00s\x00" + h(0) + h(0) + h(0) + b"trailing",
    ],
)
def test_bind_malformed(body: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="Bind"):
        messages.bind(body)


def test_bind_malformed_beyond_the_preview_is_still_refused() -> None:
    good = bind_body([b"x"] * 20)
    # Claim 30 bytes for the last parameter, which is not previewed, without sending them.
    head, tail = good[: -(2 + 4 + 1)], good[-2:]
    with pytest.raises(ProtocolViolation, match="truncated parameter"):
        messages.bind(head + i(30) + b"x" + tail)


# --- Execute, Describe, Close ----------------------------------------------------------------


def test_execute_portal() -> None:
    assert messages.execute_portal(b"\x00" + i(0)) == b""
    assert messages.execute_portal(b"cur\x00" + i(50)) == b"cur"


@pytest.mark.parametrize(
    "body", [b"", b"cur", b"cur\x00", b"cur\x00\x00\x00\x00", b"\x00" + i(0) + b"x"]
)
def test_execute_malformed(body: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="Execute"):
        messages.execute_portal(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b"S\x00", ("S", b"")), (b"Ps1\x00", ("P", b"s1")), (b"Sstmt 2\x00", ("S", b"stmt 2")),
     (b"S\xfe\x00", ("S", b"\xfe"))],
)
def test_describe_or_close(body: bytes, expected: tuple[str, bytes]) -> None:
    assert messages.describe_or_close(body, "Describe") == expected


@pytest.mark.parametrize("body", [b"", b"X\x00", b"S", b"Sname", b"S\x00extra", b"\x00"])
def test_describe_or_close_malformed(body: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="Close"):
        messages.describe_or_close(body, "Close")


# --- CommandComplete, ErrorResponse (backend) ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"SELECT 3\x00", ("SELECT 3", 3)),
        (b"INSERT 0 5\x00", ("INSERT 0 5", 5)),
        (b"UPDATE 0\x00", ("UPDATE 0", 0)),
        (b"COPY 100000\x00", ("COPY 100000", 100000)),
        (b"CREATE TABLE\x00", ("CREATE TABLE", None)),
        (b"BEGIN\x00", ("BEGIN", None)),
        (b"\x00", ("", None)),
        (b"", ("", None)),
        (b"SELECT -1\x00", ("SELECT -1", None)),
        (b"SELECT \xff\x00", ("SELECT \ufffd", None)),
    ],
)
def test_command_rows(body: bytes, expected: tuple[str, int | None]) -> None:
    assert messages.command_rows(body) == expected


def test_error_fields() -> None:
    body = b"SERROR\x00VERROR\x00C22012\x00Mdivision by zero\x00Fint.c\x00\x00"
    assert messages.error_fields(body) == {
        "S": "ERROR",
        "V": "ERROR",
        "C": "22012",
        "M": "division by zero",
        "F": "int.c",
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", {}),
        (b"\x00", {}),
        (b"C42601\x00Mtext", {"C": "42601"}),  # unterminated last field is dropped
        (b"C42601", {}),
        (b"Mbad \xff\x00\x00", {"M": "bad \ufffd"}),
    ],
)
def test_error_fields_tolerates_damaged_bodies(body: bytes, expected: dict[str, str]) -> None:
    # The target's errors are relayed to the client as they are; reading them is best effort.
    assert messages.error_fields(body) == expected


# --- fuzzing ---------------------------------------------------------------------------------

DECODERS: list[tuple[str, Callable[[bytes], Any]]] = [
    ("query_text", messages.query_text),
    ("parse", messages.parse),
    ("bind", messages.bind),
    ("execute_portal", messages.execute_portal),
    ("describe", lambda b: messages.describe_or_close(b, "Describe")),
    ("command_rows", messages.command_rows),
    ("error_fields", messages.error_fields),
]


@pytest.mark.parametrize(("name", "decode"), DECODERS, ids=[n for n, _ in DECODERS])
@FUZZ
@given(body=st.binary(max_size=120))
def test_fuzz_decoders_raise_only_protocol_violation(
    name: str, decode: Callable[[bytes], Any], body: bytes
) -> None:
    try:
        decode(body)
    except ProtocolViolation:
        pass


@st.composite
def bind_bodies(draw: st.DrawFn) -> bytes:
    """Bodies that are nearly valid Binds: the interesting part of the input space."""
    params = draw(st.lists(st.one_of(st.none(), st.binary(max_size=80)), max_size=20))
    nfmt = draw(st.sampled_from([0, 1, len(params)]))
    formats = tuple(draw(st.lists(st.integers(0, 1), min_size=nfmt, max_size=nfmt)))
    body = bind_body(params, formats=formats)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.binary(max_size=6))
    return body


@FUZZ
@given(bind_bodies())
def test_fuzz_bind_near_valid_bodies(body: bytes) -> None:
    try:
        result = messages.bind(body)
    except ProtocolViolation:
        return
    assert result.params is None or isinstance(result.params, str)


def test_a_binary_jsonb_parameter_is_read_in_the_session_s_encoding() -> None:
    """Outside attack on issue 12 (round 12): jsonb's binary text is in the client encoding;
    read as UTF-8 in a LATIN1 session, the approver saw another key than the server."""
    raw = b"\x01" + '{"Ã©": "a"}'.encode("latin-1")
    shown = messages.bind(bind_body([raw], formats=(1,)), "latin-1", (3802,)).params
    assert shown == repr('{"Ã©": "a"}') + " (binary jsonb)", shown


# --- ParameterDescription ----------------------------------------------------------------------


def test_parameter_description() -> None:
    assert messages.parameter_types(h(2) + struct.pack("!II", 701, 23)) == (701, 23)
    assert messages.parameter_types(h(0)) == ()


@pytest.mark.parametrize("body", [b"", b"\x00", h(-1), h(2) + struct.pack("!I", 701),
                                  h(1) + struct.pack("!I", 701) + b"\x00"])
def test_a_malformed_parameter_description_gives_no_types(body: bytes) -> None:
    assert messages.parameter_types(body) is None
