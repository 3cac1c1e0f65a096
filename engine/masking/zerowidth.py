"""Characters that draw nothing inside a value, read as a reader reads the value: without them.

A card written ``4012<U+200B>8888<U+200B>8888<U+200B>1881`` (a zero-width space, joiner or
non-joiner, a word joiner, a byte order mark, a soft hyphen between its groups) shows as
``4012888888881881`` in a client, a web page or a spreadsheet, but the detectors read the
characters between the digits and found no card (outside attack on issue 14, round 12).
``stripped`` gives the text without them and where each character it keeps came from, so
that a finding in the stripped text masks the characters it was read from (and the invisible
ones among them). Which characters: Unicode's format characters (Cf: U+200B-U+200F,
U+2060-U+2064, U+FEFF, U+00AD, the tags), combining and enclosing marks (Mn, Me: the
variation selectors, U+034F), the line and paragraph separators (Zl, Zp) and the fillers
drawn as a blank (Hangul fillers, the blank braille pattern) — those the stream masker looks
through at a terminal (``engine.masking.rendered``).

``BYTES_TRIGGER`` (a regex over UTF-8 bytes, led by a class of lead bytes, so that a search
skips in C) and ``NATIVE_TRIGGER`` (the same without look-arounds, for hyperscan) find such a
character followed by any ASCII character (a digit, a letter, or a separator it would join to
what comes before it: a blank and a tab too, ``4012<U+200B> 8888 …``, which the screens let
through in clear in round 14) in raw protocol bytes, so that the screens let a value with one
through to the detectors. One followed by another character that is not ASCII needs no
trigger of its own: that character is invisible too (the last of the row is followed by
ASCII, or by nothing: then nothing is read across it), or it is a character the detectors
fold (``unidigits``, whose own trigger fires), or one no detector reads.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_CATEGORIES = frozenset({"Cf", "Mn", "Me", "Zl", "Zp"})
_BLANK_FILLERS = frozenset({0x115F, 0x1160, 0x2800, 0x3164, 0xFFA0})
# Past the first two planes only the tags and the variation selectors supplement are such.
_PLANES = (range(0x80, 0x20000), range(0xE0000, 0xE1000))


def _codes() -> list[int]:
    return [code for plane in _PLANES for code in plane
            if not 0xD800 <= code <= 0xDFFF
            and (unicodedata.category(chr(code)) in _CATEGORIES or code in _BLANK_FILLERS)]


CODES: frozenset[int] = frozenset(_codes())
CLASS = "[" + "".join(f"\\U{code:08x}" for code in sorted(CODES)) + "]"  # one such character
_INVISIBLE = re.compile(CLASS)


def present(text: str) -> bool:
    """Whether ``text`` holds a character that draws nothing."""
    return not text.isascii() and _INVISIBLE.search(text) is not None


def stripped(text: str) -> tuple[str, list[int]]:
    """``text`` without its characters that draw nothing, and for each character kept its
    index in ``text`` (one more entry: ``len(text)``, where the end maps to)."""
    kept: list[str] = []
    places: list[int] = []
    pos = 0
    for m in _INVISIBLE.finditer(text):
        kept.append(text[pos:m.start()])
        places.extend(range(pos, m.start()))
        pos = m.end()
    kept.append(text[pos:])
    places.extend(range(pos, len(text)))
    places.append(len(text))
    return "".join(kept), places


def utf8_groups(codes: Iterable[int]) -> dict[bytes, list[int]]:
    """The UTF-8 of each of ``codes``, grouped by all its bytes but the last (what a byte
    pattern of the screens matches them by, with ``byte_class`` of the last bytes)."""
    groups: dict[bytes, list[int]] = {}
    for code in sorted(codes):
        raw = chr(code).encode("utf-8")
        groups.setdefault(raw[:-1], []).append(raw[-1])
    return groups


def byte_class(values: list[int]) -> str:
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
    groups = utf8_groups(CODES)
    after = "[\\x00-\\x7f]"
    native = "(?:" + "|".join(
        "".join(f"\\x{b:02x}" for b in prefix) + byte_class(last)
        for prefix, last in groups.items()) + ")" + after
    leads = sorted({prefix[0] for prefix in groups})
    led = "|".join(
        f"(?<=\\x{prefix[0]:02x})" + "".join(f"\\x{b:02x}" for b in prefix[1:])
        + byte_class(last) for prefix, last in groups.items())
    return native, f"{byte_class(leads)}(?:{led}){after}"


NATIVE_TRIGGER, BYTES_TRIGGER = _triggers()
