"""The native prefilter (hyperscan) against the Python screen: never a "no" where a detector
finds something, and the same masked results with and without it."""

from __future__ import annotations

import base64
import re
import struct
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking import prefilter
from engine.masking.detectors import ASSIGNMENT, BUILTIN, DIGITS, NATIVE_TRIGGERS, custom
from engine.masking.masker import ValueMasker, _loose
from engine.masking.pg import ResultMasker
from engine.pg.codec import cstr, message

FUZZ = settings(database=None, deadline=None, max_examples=300)

needs_hyperscan = pytest.mark.skipif(
    not prefilter.available(), reason="hyperscan is not installed (or GATEWATCH_NO_HYPERSCAN)")

# One of every detector's values, in each form the detectors read.
SEEDS = [
    "alice.smith@example.com", "a@b.co",
    "4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005",
    "3782 822463 10005", "4111111111111111.00", "4111111111111111e0",
    "4.111111111111111e+15", "$4,111,111,111,111,111.00", "5555555555554444",
    "-4111111111111111", "0000004111111111111111", "-4.111111111111111E+015",
    "41.11111111111111e14", "422222.2222222e7", "411111111111111100000e-5", "-123-45-6789",
    "ref_4012888888881881", "4012888888881881x", "4012.8888.8888.1881", "4012_8888_8888_1881",
    "4 0 1 2 8 8 8 8 8 8 8 8 1 8 8 1", "3782.822463.10005", "ssn_123-45-6789x",
    "4_0_1_2_8_8_8_8_8_8_8_8_1_8_8_1",
    "4012/8888/8888/1881", "(4012)888888881881", "4012|8888;8888#1881", "401288888888/1881",
    "3782/822463:10005", "4+0+1+2+8+8+8+8+8+8+8+8+1+8+8+1", "4242 4242-4242 4242",
    "DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
    "123-45-6789", "+14155552671", "+1 415 555 2671", "(415) 555-2671", "415-555-2671",
    "1-415-555-2671",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE",
    "password=hunter2", 'token: "abc def ghi"', "DB_PASSWORD='s3cr3t'", "api_key:xyz123",
    "Credentials = p@ss", "postgres://shop:Pa55w0rdX@10.1.2.3:5432/shop", "redis://:pw@c",
    "db_pass: Yaml0Pass",
    # Cards in runs of any grouping, glued to digits, in Unicode digits (round 11).
    "40128888/88881881", "40:12:88:88:88:88:18:81", "40-12-88-88-88-88-18-81",
    "4012\t8888\t8888\t1881", "401 288 888 888 1881", "40128888888818815", "-940128888888818815",
    "4012 8888 8888 18815", "12" * 21,
    "\uff14\uff10\uff11\uff12\uff18\uff18\uff18\uff18\uff18\uff18\uff18\uff18\uff11\uff18\uff18\uff11",
    "".join(chr(0x1D7CE + int(d)) for d in "4012888888881881"),
    "".join(chr(0x660 + int(d)) for d in "4012888888881881"),
    "4012\U0001d7d6\U0001d7d6\U0001d7d6\U0001d7d6888881881", "4012\u00a08888\u00a08888\u00a01881",
]
# What comes close to a value and is none.
NEAR_MISSES = [
    "4111111111111112", "411111111111", "123-45-678", "000-12-3456", "AKIA123", "user@host",
    "eyJ.x", "+0200", "2026-01-01 10:00:00+00", "10.0.0.1", "v10.12.4", "password",
    "key", "a = b", "YWJj", "deadbeef", "%zz", "%4", "DE00 0000", "ab12", "1,000,000",
    "12:30:45", "0000 0000 0000 0000", "2024/01/02 12:30:45", "1234.5678 9012.3456",
    "-----BEGIN CERTIFICATE-----", "+", "=", "@",
    "2024-05-02 09:14:03.123456+00", "4111111111111113", "\uff14\uff10\uff11", "caf\u00e9",
]


def _native() -> ValueMasker:
    """A masker with the built-in detectors whose prefilter is compiled (it compiles in a
    thread of its own)."""
    masker = ValueMasker()
    assert masker.prefilter is not None and masker.prefilter.wait(30)
    return masker


def _encodings(value: str) -> list[str]:
    raw = value.encode()
    return [
        value,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        raw.hex(),
        raw.hex().upper(),
        quote(value, safe=""),
        "\\x" + raw.hex(),  # a bytea's text form
        base64.encodebytes(raw * 3).decode(),  # wrapped at 76
        "".join(f"\\u{ord(c):04x}" for c in value),  # JSON string escapes
        "".join(f"\\u{ord(c):04X}" if i % 2 else c for i, c in enumerate(value)),
        "x\\n" + value.replace("/", "\\/"),  # the n was a letter right before the value
    ]


PIECES = [e for s in SEEDS for e in _encodings(s)] + NEAR_MISSES + [
    e for s in NEAR_MISSES for e in _encodings(s)[1:4]]

_filler = st.text(st.sampled_from("abcXYZ019 -+.,:=@%'\"()/\t_\n\x00é\uff14\u0668\u00a0"),
                  max_size=12)
value_text = st.lists(st.one_of(st.sampled_from(PIECES), _filler), max_size=5).map("".join)
# Sometimes long, so that the length bytes before a value are ASCII digits and letters, and
# the per-value screens take both of their paths (short values, long ones).
padded = st.tuples(value_text, st.integers(0, 130), st.sampled_from("x 9A=")).map(
    lambda t: t[0] + t[2] * t[1] if t[1] % 3 else t[2] * t[1] + t[0])

TEXT, VARCHAR, INT8, NUMERIC, BYTEA, JSON, USER = 25, 1043, 20, 1700, 17, 114, 20000


def _column(name: str, type_oid: int, fmt: int) -> bytes:
    return cstr(name) + struct.pack("!IhIhih", 0, 0, type_oid, -1, -1, fmt)


def _row(values: list[str | None]) -> bytes:
    body = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            body += struct.pack("!i", -1)
        else:
            raw = v.encode("utf-8", "surrogateescape")
            body += struct.pack("!i", len(raw)) + raw
    return message(b"D", body)


def _notice(text: str) -> bytes:
    return message(b"N", b"SNOTICE\x00C00000\x00M" + text.replace("\x00", "").encode()
                   + b"\x00\x00")


@st.composite
def results(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A description, and the rows (maybe a notice among them) and end of its result."""
    types = draw(st.lists(st.tuples(
        st.sampled_from([TEXT, TEXT, VARCHAR, INT8, NUMERIC, BYTEA, JSON, USER]),
        st.sampled_from([0, 0, 0, 1])), min_size=1, max_size=5))
    body = struct.pack("!h", len(types)) + b"".join(
        _column(f"c{i}", t, f if t in (TEXT, VARCHAR, JSON) else 0)
        for i, (t, f) in enumerate(types))
    out = b""
    for _ in range(draw(st.integers(1, 6))):
        out += _row([draw(st.one_of(st.none(), padded)) for _ in types])
        if draw(st.integers(0, 9)) == 0:
            out += _notice(draw(padded))
    return message(b"T", body), out + message(b"C", b"SELECT 1\x00")


@needs_hyperscan
@FUZZ
@given(results(), st.booleans())
def test_masked_results_are_the_same_with_and_without_the_prefilter(
        result: tuple[bytes, bytes], described: bool) -> None:
    description, rows = result
    # Without a description the detectors read every value as text.
    buf = description + rows if described else rows
    native, python = _native(), ValueMasker(native=False)
    assert python.prefilter is None
    a, counts_a = ResultMasker(native).rewrite(buf)
    b, counts_b = ResultMasker(python).rewrite(buf)
    assert a == b
    assert counts_a == counts_b


@needs_hyperscan
@settings(database=None, deadline=None, max_examples=60)
@given(st.integers(1, 120), st.dictionaries(st.integers(0, 119), padded, max_size=4))
def test_values_among_many_clean_rows_are_masked_the_same(
        count: int, seeded: dict[int, str]) -> None:
    """Long results are screened in runs and blocks of rows: the rows around a value pass
    whole, the value is masked as the Python screen masks it."""
    body = struct.pack("!h", 2) + _column("a", TEXT, 0) + _column("b", TEXT, 0)
    buf = message(b"T", body) + b"".join(
        _row([f"row {i} of {count}", seeded.get(i, "nothing here")]) for i in range(count)
    ) + message(b"C", b"SELECT 1\x00")
    native, python = _native(), ValueMasker(native=False)
    assert ResultMasker(native).rewrite(buf) == ResultMasker(python).rewrite(buf)


@needs_hyperscan
@FUZZ
@given(padded, st.binary(max_size=8), st.binary(max_size=8))
def test_the_prefilter_never_says_no_where_a_detector_finds(
        text: str, before: bytes, after: bytes) -> None:
    """Wherever the detectors (with encoded candidates) find something in a value, the
    prefilter finds a match in the value's bytes, also inside bytes around it (a row)."""
    masker = _native()
    assert masker.prefilter is not None
    if not ValueMasker(native=False).find(text):
        return
    raw = text.encode("utf-8", "surrogateescape")
    assert masker.prefilter.first(raw) >= 0
    row = before + raw + after
    hit = masker.prefilter.first(row, len(before), len(before) + len(raw))
    assert len(before) < hit <= len(before) + len(raw)
    assert masker.screen(raw) and masker.screen(row)


_NATIVE = sorted(NATIVE_TRIGGERS)
_ALPHABET = "0123456789 +()-,.=:@_%ABDEGZaexz\"'\t#/|;[~"


@needs_hyperscan
@FUZZ
@given(st.lists(st.one_of(st.sampled_from([s for s in SEEDS + NEAR_MISSES if s.isascii()]),
                          st.text(st.sampled_from(_ALPHABET), max_size=24)), max_size=4))
@pytest.mark.parametrize("trigger", _NATIVE)
def test_native_forms_match_inside_every_match_of_their_detectors(
        trigger: str, parts: list[str]) -> None:
    """A native form matches inside every match of each detector that uses its trigger (not
    validated: a superset), and wherever the trigger itself does, bar the look-behinds."""
    text = "".join(parts)
    raw = text.encode()
    native = prefilter.Prefilter([NATIVE_TRIGGERS[trigger]])
    users = [d for d in BUILTIN.values() if d.trigger == trigger]
    assert users
    for detector in users:
        for m in detector.pattern.finditer(text):
            # ASCII text: character offsets are byte offsets
            hit = native.first(raw, m.start(), m.end())
            assert m.start() < hit <= m.end(), (detector.name, text, m)
    if trigger in (DIGITS, ASSIGNMENT):
        for b in re.finditer(_loose(trigger).encode(), raw, re.VERBOSE):
            lo = max(0, b.start() - 4)  # where the look-behinds looked
            assert lo < native.first(raw, lo, b.end()) <= b.end(), (text, b)


@needs_hyperscan
def test_a_clean_result_is_answered_by_one_scan() -> None:
    """Rows without values pass without being parsed, also when their framing holds bytes a
    trigger has (a length of 64 is "@"); one value among them is found."""
    masker = _native()
    assert masker.prefilter is not None
    columns = [_column("customer_created_timestamp", TEXT, 0), _column("n", TEXT, 0)]
    description = message(b"T", struct.pack("!h", 2) + b"".join(columns))
    rows = b"".join(_row([f"Person {i}", "a b " * 16]) for i in range(500))
    end = message(b"C", b"SELECT 500\x00")
    assert masker.prefilter.first(rows) < 0
    results = ResultMasker(masker)
    buf = description + rows + end
    out, counts = results.rewrite(buf)
    assert out is buf and not counts
    dirty = description + rows + _row(["mail alice@example.com", "x"]) + rows + end
    out, counts = results.rewrite(dirty)
    assert counts == {("email", "customer_created_timestamp"): 1}
    assert out.replace(b"mail ****", b"mail alice@example.com") != dirty  # lengths changed
    assert b"alice@example.com" not in out


def test_without_hyperscan_the_python_screen_masks_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback: hyperscan turned off (as where it is not installed) leaves no prefilter,
    and masking is what it is with one."""
    monkeypatch.setenv(prefilter.DISABLE_ENV, "1")
    assert not prefilter.available()
    fallback = ValueMasker()
    assert fallback.prefilter is None
    assert ResultMasker(fallback)._first is None
    body = struct.pack("!h", 2) + _column("a", TEXT, 0) + _column("b", BYTEA, 0)
    buf = (message(b"T", body) + _row(["mail alice@example.com now", None])
           + _row(["ok", "\\x" + b"card 4111111111111111".hex()])
           + _row(["clean", "\\x00"]) + message(b"C", b"SELECT 3\x00"))
    out, counts = ResultMasker(fallback).rewrite(buf)
    assert b"alice@example.com" not in out and b"41111111" not in bytes.fromhex(
        re.search(rb"\\x([0-9a-f]+)", out).group(1).decode())  # type: ignore[union-attr]
    assert counts[("email", "a")] == 1 and counts[("payment_card", "b")] == 1
    monkeypatch.delenv(prefilter.DISABLE_ENV)
    if prefilter.available():
        assert ResultMasker(_native()).rewrite(buf) == (out, counts)


def test_a_custom_detector_keeps_the_python_screen() -> None:
    """A custom pattern has no trigger to compile: no prefilter (the Python screen runs it)."""
    masker = ValueMasker([BUILTIN["email"], custom("ticket", r"TICKET-\d+")])
    assert masker.prefilter is None
    assert masker.mask("see TICKET-42") == ("see ****", ["ticket"])


@needs_hyperscan
def test_while_the_prefilter_compiles_results_are_screened_in_python() -> None:
    """Compiling takes tens of milliseconds, off the event loop: meanwhile ``first`` answers
    "maybe" and the result masker and ``screen`` use the Python screen."""

    class Compiling(prefilter.Prefilter):
        def _compile(self) -> None:
            pass  # never done

    pending = Compiling(["@"])
    assert not pending.compiled and not pending.wait(0.01)
    assert pending.first(b"abc") == 3 and pending.first(b"abc", 1, 2) == 2
    assert pending.first(b"") == -1 and pending.first(b"abc", 2, 2) == -1
    masker = ValueMasker()
    masker.prefilter = pending
    python = ValueMasker(native=False)
    body = struct.pack("!h", 1) + _column("a", TEXT, 0)
    buf = (message(b"T", body) + b"".join(_row([f"row {i}"]) for i in range(50))
           + _row(["alice@example.com"]) + message(b"C", b"SELECT 51\x00"))
    assert ResultMasker(masker).rewrite(buf) == ResultMasker(python).rewrite(buf)
    assert masker.screen(buf) == python.screen(buf)
