"""The screens in front of the detectors fire wherever the detectors read through a character
that draws nothing (outside attack round 14, finding 1: ``4012<U+200B> 8888<U+200B> …``, a
zero-width or format character before each blank, came back in clear in query results: the
row screen never fired for a digit, such a character, a blank, a digit)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking import prefilter
from engine.masking.masker import ValueMasker

MASKER = ValueMasker()
VALUES = MASKER.for_values()
NATIVE = ValueMasker(native=True).for_values()
PYTHON = ValueMasker(native=False).for_values()

# ZWSP, ZWNJ, ZWJ, WJ, BOM, soft hyphen, LRM, RLM, VS16, CGJ, ALM, Mongolian vowel separator,
# a tag character, a combining acute, the line separator, a Hangul filler.
UNSEEN = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f",
          "\ufe0f", "\u034f", "\u061c", "\u180e", "\U000e0041", "\u0301", "\u2028", "\u3164"]
SEPARATORS = [" ", "\t", "  ", "-", "/", ".", "_", ":", "", "\u00a0", "\u3000", "\u2009"]
CARDS = [("4012", "8888", "8888", "1881"), ("3782", "822463", "10005")]


def _row(value: bytes) -> bytes:
    """A DataRow holding the value between two others (as the row screen reads it)."""
    cols = [b"7", value, b"x"]
    body = struct.pack("!h", len(cols)) + b"".join(struct.pack("!i", len(c)) + c for c in cols)
    return b"D" + struct.pack("!i", len(body) + 4) + body


def _screens_fire(text: str) -> None:
    raw = text.encode("utf-8")
    for masker in (VALUES, NATIVE, PYTHON, MASKER):
        assert masker.screen(raw), (masker, text)
        assert masker.screen(_row(raw)), (masker, text)
        assert masker.screen(_row(raw) * 4), (masker, text)  # past the short screen
        if masker.screen_pattern is not None:
            assert masker.screen_pattern.search(_row(raw)) is not None, text
        if masker.prefilter is not None and masker.prefilter.wait(30):
            assert masker.prefilter.any(_row(raw)), text


@pytest.mark.parametrize("unseen", UNSEEN)
@pytest.mark.parametrize("sep", SEPARATORS)
def test_a_card_with_an_unseen_character_before_each_separator_is_screened_and_masked(
        unseen: str, sep: str) -> None:
    for groups in CARDS:
        text = "card " + (unseen + sep).join(groups) + " ok"
        masked, fired = VALUES.mask(text)
        assert fired == ["payment_card"], (text, masked)
        _screens_fire(text)
        # after each separator too, and on both sides
        for joiner in (sep + unseen, unseen + sep + unseen):
            text = "card " + joiner.join(groups) + " ok"
            assert VALUES.mask(text)[1] == ["payment_card"], text
            _screens_fire(text)


def test_an_iban_with_an_unseen_character_before_each_blank_is_screened() -> None:
    for unseen in UNSEEN:
        text = "iban " + (unseen + " ").join(["gb29", "nwbk", "6016", "1331", "9268", "19"])
        assert VALUES.mask(text)[1] == ["iban"], text
        _screens_fire(text)


PARTS = ["4012", "8888", "1881", "3782", "822463", "10005", "12", "gb29", "nwbk", "6016",
         "1331", "9268", "19", "123", "45", "6789", "password", "=", ":", "@", "a", "x.io",
         " ", "\t", "-", "/", ".", ",", "(", ")", "{", "}", '"', "\n", "+1", "555",
         *UNSEEN, "\u00a0", "\u3000", "\uff14", "\uff0d"]


@settings(database=None, deadline=None, max_examples=1500, derandomize=True)
@given(st.lists(st.sampled_from(PARTS), min_size=1, max_size=24))
def test_every_screen_fires_whenever_the_detectors_find_something(parts: list[str]) -> None:
    text = "".join(parts)
    if VALUES.find(text):
        _screens_fire(text)


def test_the_native_screen_is_in_use_where_hyperscan_is() -> None:
    if prefilter.available():
        assert NATIVE.prefilter is not None
