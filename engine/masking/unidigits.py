"""Digits, separators and letters written with other Unicode characters, read as the ASCII
they show.

A card written in fullwidth digits (U+FF10…), mathematical bold (U+1D7CE…), Arabic-Indic
(U+0660…) or a mix of them with ASCII is the card to a reader, but the detectors' patterns
read ASCII only (outside attack on issue 14, round 11); so is a card whose groups an en dash,
a middle dot, a fraction slash or an ideographic comma separates, an SSN with en dashes, an
e-mail address with a fullwidth at sign U+FF20 (outside attack round 13). ``fold`` maps, one
character for one:

- every character with a digit value (Unicode category Nd, and the superscript and circled
  digits of No that NFKC turns into one) to that ASCII digit;
- every space separator (Zs: NBSP, U+3000) to a space;
- every dash (Pd: en and em dash, U+2010, the wave dash …) and minus sign (U+2212 and its
  superscript, subscript, heavy and modifier forms, the hyphen bullet) to ``-``, and the
  division and fraction slashes and the big solidus to ``/``;
- every character whose NFKC form is one printable ASCII character but a quote or a
  backslash (the fullwidth and small forms of ``@ : . /`` and the others, fullwidth and
  mathematical letters) to that character;
- every other punctuation or symbol (Unicode P and S categories: the middle dot, the
  ideographic comma U+3001, bullets, currency signs, emoji, the quotes) to ``#``: a
  separator of a card's groups as any ASCII one is, with no meaning to another detector.
  Characters that draw nothing or a blank (``zerowidth``) are not folded: they are read
  through.

An apostrophe between two digits (U+2019, U+02BC, the fullwidth one: how some locales group
thousands) becomes ``'``. So a finding in the folded text is the same span of the text itself,
and the original characters are masked. The masker reads the text as it stands too (a fold
only adds readings: a fullwidth semicolon folded to ``;`` would end a password's value
early).

What this costs: text with a dash, a curly quote or a symbol reaches the detectors, which
read it as its ASCII form reads: ``2019<U+2013>2020``, ``1<U+2013>2 million`` pass as
``2019-2020`` does; ``555<U+2013>123<U+2013>4567`` is a phone as ``555-123-4567`` is.

``BYTES_TRIGGER`` (a regex over UTF-8 bytes, led by a class of lead bytes so that a search
skips in C) and ``NATIVE_TRIGGER`` (the same without look-arounds, for hyperscan) find a
folded character (or any character of the supplementary plane, where most are folded) in raw
protocol bytes, so that the screens let such a value through to the detectors.
"""

from __future__ import annotations

import re
import unicodedata

from engine.masking import zerowidth

# Digits, letters, punctuation and symbols that fold live in the first two planes (the last
# digits are segmented digits, U+1FBF0…); the supplementary ideographic planes have none.
_LAST_CODE = 0x1FFFF
# Apostrophes some locales group thousands with (U+2019, fullwidth too): read as ``'``
# between two digits only (elsewhere one may be part of a password, which ``'`` would end).
_APOSTROPHES = "\u2019\u02bc\uff07"
_GROUPING = re.compile(f"(?<=[0-9])[{_APOSTROPHES}](?=[0-9])")
# Dashes and minus signs outside category Pd (Sm, Sk, Po), and slashes, read as ``-`` and ``/``.
_DASHES = "\u2212\u207b\u208b\u2796\u02d7\u2043"
_SLASHES = "\u2044\u2215\u29f8"
# What NFKC makes of a character that is not folded to it: a quote or a backslash would
# open or end a quoted value or an escape in the folded text where the text has none.
_NOT_FOLDED_TO = "\"'\\"
# What every other punctuation or symbol is read as: a separator of a card's groups
# (``detectors``: any printable ASCII but letters, digits, the point and the comma), which no
# detector reads otherwise (not a quote, a blank, ``= : - @ , ;`` or a bracket).
SYMBOL = "#"


def _folded(code: int) -> str | None:
    ch = chr(code)
    digit = unicodedata.digit(ch, None)
    if digit is not None:
        return str(digit)
    category = unicodedata.category(ch)
    if category == "Zs":
        return " "
    if category == "Pd" or ch in _DASHES:
        return "-"
    if ch in _SLASHES:
        return "/"
    if ch in _APOSTROPHES:
        return None  # between two digits only (``fold``)
    if code in zerowidth.CODES:
        return None  # drawn as nothing or a blank: read through (``zerowidth``)
    # (a character without a decomposition is its own NFKC form: most are, and cost less so)
    nfkc = unicodedata.normalize("NFKC", ch) if unicodedata.decomposition(ch) else ch
    if len(nfkc) == 1 and " " < nfkc < "\x7f" and nfkc not in _NOT_FOLDED_TO:
        return nfkc
    if category[0] in "PS":
        return SYMBOL
    return None


def _table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x80, _LAST_CODE + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        folded = _folded(code)
        if folded is not None:
            table[code] = folded
    return table


FOLD: dict[int, str] = _table()
DIGITS: frozenset[int] = frozenset(code for code, ch in FOLD.items() if ch.isdigit())
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
    """``text`` with its Unicode digits, separators, letters and symbols as ASCII, one
    character for one."""
    if not foldable(text):
        return text
    text = text.translate(FOLD)
    if any(ch in text for ch in _APOSTROPHES):
        text = _GROUPING.sub("'", text)
    return text


# Every character of the supplementary plane (U+10000-U+1FFFF), where the folded ones are
# thousands (mathematical letters and digits, emoji and other symbols): listed one by one they
# made hyperscan's compile five times as long (1 s), and the plane's other characters are rare.
_PLANE_1 = "\\xf0[\\x90-\\x9f][\\x80-\\xbf][\\x80-\\xbf]"


def _triggers() -> tuple[str, str]:
    groups = zerowidth.utf8_groups(
        code for code in {*FOLD, *map(ord, _APOSTROPHES)} if code < 0x10000)
    branches = ["".join(f"\\x{b:02x}" for b in prefix) + zerowidth.byte_class(last)
                for prefix, last in groups.items()]
    native = "|".join([*branches, _PLANE_1])
    leads = sorted({prefix[0] for prefix in groups} | {0xF0})
    led = "|".join([*(
        f"(?<=\\x{prefix[0]:02x})" + "".join(f"\\x{b:02x}" for b in prefix[1:])
        + zerowidth.byte_class(last) for prefix, last in groups.items()),
        f"(?<=\\xf0){_PLANE_1[4:]}"])
    return native, f"{zerowidth.byte_class(leads)}(?:{led})"


NATIVE_TRIGGER, BYTES_TRIGGER = _triggers()
