"""Cards in runs of digits of any grouping, with digits glued on, and in Unicode digits (outside
attack on issue 14, round 11: ``pg_lsn`` and ``macaddr8`` output, ``cat k.txt suffix``,
fullwidth and mathematical digits). Property tests over the classes, through the value
masker, the stream masker and the native prefilter; and the false positives the class keeps
away (timestamps)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking import cardruns, prefilter
from engine.masking.detectors import luhn_valid
from engine.masking.masker import ValueMasker
from engine.masking.strategies import Strategy
from engine.masking.stream import StreamMasker
from engine.masking.unidigits import fold

FUZZ = settings(database=None, deadline=None, max_examples=300)
MASKER = ValueMasker()
PYTHON = ValueMasker(native=False)
SEPARATORS = [" ", "\t", "-", ".", "_", "/", ":"]


def _luhn_completed(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


cards = st.integers(12, 18).flatmap(
    lambda n: st.text(st.sampled_from("0123456789"), min_size=n, max_size=n)).map(
    _luhn_completed).filter(lambda c: len(set(c)) > 1)


@st.composite
def grouped(draw: st.DrawFn, card: str) -> str:
    """``card`` cut into groups of any size, with one separator (any) between groups."""
    out = card[0]
    for ch in card[1:]:
        if draw(st.integers(0, 3)) == 0:
            out += draw(st.sampled_from(SEPARATORS))
        out += ch
    return out


def _digits(text: str) -> str:
    return "".join(ch for ch in fold(text) if ch.isdigit())


@FUZZ
@given(st.data(), cards, st.sampled_from(["", "card ", "x=", "(", "-", "id_"]),
       st.sampled_from(["", " end", "x", ";", ")", "\n"]))
def test_a_card_in_any_grouping_is_masked(data: st.DataObject, card: str, before: str,
                                          after: str) -> None:
    text = before + data.draw(grouped(card)) + after
    masked, names = MASKER.mask(text)
    assert card not in _digits(masked), (text, masked)
    assert "payment_card" in names


@FUZZ
@given(cards, st.text(st.sampled_from("0123456789"), max_size=12),
       st.text(st.sampled_from("0123456789"), max_size=12), st.sampled_from(["", "-", "x "]))
def test_digits_glued_to_a_card_mask_the_whole_run(card: str, head: str, tail: str,
                                                   sign: str) -> None:
    run = head + card + tail
    masked, _ = MASKER.mask(f"{sign}{run}\n")
    assert masked == f"{sign}****\n", (run, masked)


@FUZZ
@given(st.data(), cards)
def test_a_card_in_unicode_digits_is_masked_in_its_own_characters(data: st.DataObject,
                                                                 card: str) -> None:
    """Each digit written as any decimal digit of any script (or ASCII), mixed: masked, and
    the characters kept by a partial mask are the text's own."""
    zeros = [0x30, 0xFF10, 0x1D7CE, 0x1D7EC, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0x1040]
    text = "".join(chr(data.draw(st.sampled_from(zeros)) + int(d)) for d in card)
    partial = ValueMasker(strategies={"payment_card": Strategy("partial", keep_last=4)})
    masked, names = partial.mask(f"card {text}.")
    assert names == ["payment_card"]
    assert masked == f"card {'*' * (len(text) - 4)}{text[-4:]}.", (text, masked)
    assert MASKER.screen(text.encode()) and PYTHON.screen(text.encode())


@FUZZ
@given(st.data(), cards, st.lists(st.integers(0, 60), max_size=4))
def test_the_stream_masks_unicode_and_grouped_cards_however_cut(
        data: st.DataObject, card: str, cuts: list[int]) -> None:
    # even digits fullwidth, some odd ones mathematical (beyond the BMP, where the stream
    # looks through what is not a digit)
    odd = data.draw(st.sampled_from(["", "1", "13579"]))
    text = data.draw(grouped(card)).translate(
        {ord(d): chr(0xFF10 + int(d)) for d in "02468"} | {ord(d): chr(0x1D7CE + int(d))
                                                          for d in odd})
    raw = f"a {text} b\nnext\n".encode()
    points = sorted({min(c, len(raw)) for c in cuts})
    stream = StreamMasker(MASKER)
    out = b"".join(stream.feed(raw[a:b]) for a, b in zip([0, *points], [*points, len(raw)],
                                                          strict=True)) + stream.flush()
    assert card not in _digits(out.decode("utf-8", "surrogateescape")), (raw, out)


def test_the_windows_are_every_card_in_a_run() -> None:
    """Luhn over prefix sums agrees with checking each window."""
    rng = random.Random(14)
    for _ in range(2000):
        n = rng.randint(13, 40)
        digits = "".join(rng.choice("0123456789") for _ in range(n))
        cards_in = [(s, e) for s in range(n) for e in range(s + 13, min(s + 19, n) + 1)
                    if luhn_valid(digits[s:e]) and len(set(digits[s:e])) > 1]
        expected = (min(s for s, _ in cards_in), max(e for _, e in cards_in)) if cards_in \
            else None
        assert cardruns._windows(digits, range(n), range(n + 1)) == expected, digits


@pytest.mark.parametrize("text", [
    "2024-05-02 09:14:03.123456+00", "created 2026-12-06 07:18:55.123456789 +0000 by x",
    "2026/12/06 07:18:55.1234", "2026-12-06T07:18:55.123-05:00",
    "2024-05-02 09:14:03.123456+00 2024-05-02 09:14:03.654321+00", "12:30:45.123456",
    "inet 10.0.0.1  netmask 255.255.255.0", "v1.22.333.4444", "00:1a:2b:3c:4d:5e",
])
def test_ordinary_timestamps_and_addresses_are_no_cards(text: str) -> None:
    assert MASKER.mask(text) == (text, [])


def test_a_long_run_of_one_digit_is_no_card_and_a_long_mixed_run_is() -> None:
    assert MASKER.mask("1" * 5000) == ("1" * 5000, [])
    assert MASKER.mask("x " + "1" * 4000 + "2") == ("x ****", ["payment_card"])


needs_hyperscan = pytest.mark.skipif(
    not prefilter.available(), reason="hyperscan is not installed (or GATEWATCH_NO_HYPERSCAN)")


@needs_hyperscan
@FUZZ
@given(st.data(), cards, st.text(st.sampled_from("ab .:-\t"), max_size=6))
def test_the_prefilter_lets_every_grouped_or_unicode_card_through(
        data: st.DataObject, card: str, around: str) -> None:
    native = ValueMasker()
    assert native.prefilter is not None and native.prefilter.wait(30)
    text = data.draw(grouped(card))
    if data.draw(st.booleans()):
        text = "".join(chr(0x1D7CE + int(ch)) if ch.isdigit() and data.draw(st.booleans())
                       else ch for ch in text)
    raw = (around + text + around).encode()
    assert native.prefilter.first(raw) >= 0
    assert native.mask(raw.decode()) == PYTHON.mask(raw.decode())


@pytest.mark.parametrize(("type_oid", "raw"), [
    (774, bytes.fromhex("4012888888881881")),  # macaddr8: 40:12:88:88:88:88:18:81
    (3220, bytes.fromhex("4012888888881881")),  # pg_lsn: 40128888/88881881
    (869, bytes([3, 128, 0, 16]) + bytes.fromhex("4012888888881881") + bytes(8)),  # inet
])
def test_binary_values_printed_in_hex_groups_are_read_as_their_text(type_oid: int,
                                                                    raw: bytes) -> None:
    """A binary macaddr8, pg_lsn or inet is bytes a driver prints as the card's digits: read
    as PostgreSQL prints it, and NULL when that holds one."""
    from engine.masking import binary

    fired: list[str] = []
    assert binary.mask_value(type_oid, raw, MASKER.mask, fired) is None
    assert "payment_card" in fired
    clean = bytes.fromhex("0011223344556677")
    assert binary.mask_value(3220, clean, MASKER.mask, []) == clean


def test_a_database_value_is_a_card_only_whole() -> None:
    """Digits beside a card in one value are the value's own (an id of 17-19 digits, which
    holds a window that passes Luhn nine times in ten); in a stream they may be another
    file's (``cat card.txt digit.txt``)."""
    stream = ValueMasker()
    values = stream.for_values()
    assert values is stream.for_values()  # made once
    glued = "940128888888818815"
    assert stream.mask(glued)[0] != glued
    assert values.mask(glued) == (glued, [])
    assert values.mask("4012888888881881")[0] != "4012888888881881"
    assert values.mask("40:12:88:88:88:88:18:81")[0] != "40:12:88:88:88:88:18:81"
