"""ValueMasker: whole values with several findings, overlaps, strategies and the pre-screen."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking.detectors import BUILTIN, custom
from engine.masking.masker import ValueMasker
from engine.masking.strategies import Strategy

FUZZ = settings(database=None, deadline=None, max_examples=200)
KEY = b"k" * 32

MASKER = ValueMasker(strategies={"payment_card": Strategy("partial", keep_last=4),
                                 "email": Strategy("hash")}, key=KEY)


def test_row_to_json_with_several_values() -> None:
    text = '{"email":"a@b.co","card":"4242 4242 4242 4242","note":"hi"}'
    masked, names = MASKER.mask(text)
    email = Strategy("hash").apply("a@b.co", KEY)
    assert masked == f'{{"email":"{email}","card":"**** **** **** 4242","note":"hi"}}'
    assert names == ["email", "payment_card"]


def test_one_name_per_masked_value_for_counts() -> None:
    masked, names = ValueMasker().mask("a@b.co, c@d.io and 123-45-6789")
    assert masked == "****, **** and ****"
    assert names == ["email", "email", "us_ssn"]


def test_nothing_to_mask_returns_the_same_text() -> None:
    text = "Alice Martin, 2024-05-02 09:14:03, 192.168.1.10"
    masked, names = MASKER.mask(text)
    assert masked is text and names == []


def test_same_span_goes_to_the_detector_listed_first() -> None:
    # A password that looks like a card is a password: redacted, not partly shown.
    masked, names = MASKER.mask("password=4242424242424242")
    assert (masked, names) == ("password=****", ["secret_assignment"])


def test_longest_wins_at_the_same_start() -> None:
    # The assignment value would stop at the space; the key block does not.
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"
    masked, names = ValueMasker().mask(f"private_key={pem}\nnext")
    assert (masked, names) == ("private_key=****\nnext", ["private_key"])


def test_overlapping_findings_are_merged_not_masked_twice() -> None:
    masker = ValueMasker([custom("left", "abc"), custom("right", "bcd")])
    assert masker.find("xabcdx")[0].detector == "left"
    assert masker.mask("xabcdx") == ("x****x", ["left"])


def test_contained_finding_is_dropped() -> None:
    masker = ValueMasker([custom("outer", "abcdef"), custom("inner", "cd")])
    assert masker.mask("abcdef") == ("****", ["outer"])


def test_null_falls_back_to_the_mask_inside_text() -> None:
    masker = ValueMasker(strategies={"email": Strategy("null", mask="<null>")})
    assert masker.mask("to a@b.co") == ("to <null>", ["email"])
    assert masker.strategy_for("email").kind == "null"


def test_default_strategy_and_subset_of_detectors() -> None:
    masker = ValueMasker([BUILTIN["email"]], default=Strategy("redact", mask="X"))
    assert masker.mask("a@b.co 123-45-6789") == ("X 123-45-6789", ["email"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"strategies": {"emial": Strategy("redact")}}, "'emial', which is not a detector"),
    ({"detectors": [BUILTIN["email"], custom("email", "x")]}, "defined twice"),
    ({"strategies": {"email": Strategy("hash")}}, "needs a secret key"),
    ({"default": Strategy("hash")}, "needs a secret key"),
])
def test_configuration_errors_are_one_sentence(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ValueMasker(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "could"), [
    (b"Alice Martin", False),
    (b"2024-05-02 09:14:03+00", True),  # 14 digits, one separator apart: read (cardruns)
    (b"2024-05-02T09:14:03+0200", False),
    (b"192.168.1.10 v1.2.3 12:30:45", False),
    (b"12345", False),
    (b"a@b.co", True),
    (b"\x00\x00\x00\x104242424242424242", True),
    (b"password: x", True),
    (b"-----BEGIN", True),
    (b"DE89", True),
    (b"AKIA", True),
])
def test_screen_a_whole_message(data: bytes, could: bool) -> None:
    masker = ValueMasker()
    assert masker.screen(data) is could
    assert masker.screen_text(data.decode()) is could


def test_screen_with_a_custom_detector_uses_its_pattern() -> None:
    masker = ValueMasker([custom("order", r"ORD-\d+")])
    assert masker.screen(b"ref ORD-12") and not masker.screen(b"ref ORD-")


ALPHABET = st.sampled_from([
    "a", "Z", "0", "4", "9", " ", "-", "@", ".", "=", ":", '"', "+", "(", ")", "\n", "é",
    "4242 4242 4242 4242", "a@b.co", "password", "DE89", "AKIA", "eyJ", "-----BEGIN",
    "123-45-6789", "+1 555", "secret_key",
])


@FUZZ
@given(st.lists(ALPHABET, max_size=12))
def test_screen_never_rejects_what_find_would_mask(parts: list[str]) -> None:
    text = "".join(parts)
    masker = ValueMasker()
    if masker.find(text):
        assert masker.screen_text(text)
        assert masker.screen(text.encode())


@FUZZ
@given(st.lists(ALPHABET, max_size=12))
def test_findings_are_ordered_and_disjoint(parts: list[str]) -> None:
    text = "".join(parts)
    findings = ValueMasker().find(text)
    for a, b in pairwise(findings):
        assert a.end <= b.start
    assert all(f.start < f.end for f in findings)


def test_a_length_byte_that_is_a_digit_does_not_hide_a_value_from_the_byte_screen() -> None:
    """Raw DataRow bytes put each value's length right before it; a length of 48-57 ends in
    an ASCII digit, which a digit-run trigger looking behind for "no digit" would take as
    part of the number (found in review: the SSN below was never masked)."""
    import struct

    from engine.masking.pg import ResultMasker

    value = b"123-45-6789 is the SSN of somebody named Johnny!!"
    assert len(value) == 49  # length bytes 00 00 00 31: the last one is "1"
    masker = ValueMasker()
    assert masker.screen(struct.pack("!i", len(value)) + value)
    field = b"note\x00" + struct.pack("!IhIhih", 0, 0, 25, -1, -1, 0)
    desc = struct.pack("!h", 1) + field
    row = struct.pack("!hi", 1, len(value)) + value
    done = b"SELECT 1\x00"
    messages = (b"T" + struct.pack("!i", len(desc) + 4) + desc
                + b"D" + struct.pack("!i", len(row) + 4) + row
                + b"C" + struct.pack("!i", len(done) + 4) + done)
    out, counts = ResultMasker(masker).rewrite(messages)
    assert b"123-45-6789" not in out and counts
