"""Digits and separators written with other Unicode characters, read as the ASCII they show.

A card written in fullwidth digits (U+FF10…), mathematical bold (U+1D7CE…), Arabic-Indic
(U+0660…) or a mix of them with ASCII is the card to a reader, but the detectors' patterns
read ASCII digits only (outside attack on issue 14, round 11). ``fold`` maps every character
with a digit value (Unicode category Nd, and the superscript and circled digits of No that
NFKC turns into one) to that ASCII digit, every space separator (Zs: NBSP, U+3000) to a space,
and the few characters whose NFKC form is one of the separators a card is read with
(fullwidth ``- . / : _``) to it; an apostrophe between two digits (U+2019, U+02BC, the
fullwidth one: how some locales group thousands) becomes ``'``. Each character becomes
exactly one, so a finding in the folded text is the same span of the text itself, and the
original characters are masked.

``BYTES_TRIGGER`` (a regex over UTF-8 bytes, led by a class of lead bytes so that a search
skips in C) and ``NATIVE_TRIGGER`` (the same without look-arounds, for hyperscan) find a
folded character in raw protocol bytes, so that the screens let such a value through to the
detectors. Letters (fullwidth ``AKIA``) are not folded.
"""

from __future__ import annotations

import re
import unicodedata

# Digits live in the first two planes (the last are segmented digits, U+1FBF0…); the
# supplementary ideographic planes have none.
_LAST_CODE = 0x1FFFF
_SEPARATORS = "-./:_"
# Apostrophes some locales group thousands with (U+2019, fullwidth too): read as ``'``
# between two digits only (elsewhere one may be part of a password, which ``'`` would end).
_APOSTROPHES = "\u2019\u02bc\uff07"
_GROUPING = re.compile(f"(?<=[0-9])[{_APOSTROPHES}](?=[0-9])")


def _table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x80, _LAST_CODE + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        digit = unicodedata.digit(ch, None)
        if digit is not None:
            table[code] = str(digit)
        elif unicodedata.category(ch) == "Zs":
            table[code] = " "
        elif code < 0x10000:
            nfkc = unicodedata.normalize("NFKC", ch)
            if len(nfkc) == 1 and nfkc in _SEPARATORS:
                table[code] = nfkc
    return table


FOLD: dict[int, str] = _table()
# One class of the BMP characters (a bitmap: one lookup per character) and the supplementary
# ones behind a look-ahead for that plane. A single class holding both is searched as a list
# of ranges, each character tested against them in turn: 0.5 s for 750 K characters of binary
# data decoded from a long base64 run (outside attack round 13, finding 3), 20 times as long.
_FOLDABLE = re.compile(
    "[" + "".join(f"\\u{code:04x}" for code in sorted(FOLD) if code < 0x10000)
    + _APOSTROPHES + "]"
    "|(?=[\\U00010000-\\U0001ffff])["
    + "".join(f"\\U{code:08x}" for code in sorted(FOLD) if code >= 0x10000) + "]")


def foldable(text: str) -> bool:
    """Whether ``text`` holds a character ``fold`` changes."""
    return not text.isascii() and _FOLDABLE.search(text) is not None


def fold(text: str) -> str:
    """``text`` with its Unicode digits and separators as ASCII, one character for one."""
    if not foldable(text):
        return text
    text = text.translate(FOLD)
    if any(ch in text for ch in _APOSTROPHES):
        text = _GROUPING.sub("'", text)
    return text


def _byte_forms() -> dict[bytes, list[int]]:
    """The UTF-8 of every folded character, grouped by all its bytes but the last."""
    groups: dict[bytes, list[int]] = {}
    for code in sorted({*FOLD, *map(ord, _APOSTROPHES)}):
        raw = chr(code).encode("utf-8")
        groups.setdefault(raw[:-1], []).append(raw[-1])
    return groups


def _byte_class(values: list[int]) -> str:
    ranges: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], -1]:
        if v == prev + 1:
            prev = v
            continue
        ranges.append(f"\\x{start:02x}" if start == prev else f"\\x{start:02x}-\\x{prev:02x}")
        start = prev = v
    return "[" + "".join(ranges) + "]"


def _triggers() -> tuple[str, str]:
    groups = _byte_forms()
    branches = ["".join(f"\\x{b:02x}" for b in prefix) + _byte_class(last)
                for prefix, last in groups.items()]
    native = "|".join(branches)
    leads = sorted({prefix[0] for prefix in groups})
    led = "|".join(
        f"(?<=\\x{prefix[0]:02x})" + "".join(f"\\x{b:02x}" for b in prefix[1:])
        + _byte_class(last) for prefix, last in groups.items())
    return native, f"{_byte_class(leads)}(?:{led})"


NATIVE_TRIGGER, BYTES_TRIGGER = _triggers()
