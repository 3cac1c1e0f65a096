"""Values written with non-ASCII punctuation (outside attack round 13, finding 6): a card whose
groups an en dash, a middle dot, a fraction slash, an ideographic comma or any other Unicode
punctuation or symbol separates (the README: any one printable character that is not a letter
or digit), with characters that draw nothing beside them; an SSN with en dashes or other
dashes and minus signs; an e-mail address with a fullwidth or small at sign, or in fullwidth
letters. Through the value masker (database values), the stream masker (SSH output fed in
pieces) and the screens in front of them (Python and native); and ordinary text with en
dashes between numbers, dates, versions and symbols still passes."""

from __future__ import annotations

import struct
import unicodedata

from engine.masking import prefilter
from engine.masking.masker import ValueMasker
from engine.masking.strategies import Strategy
from engine.masking.stream import StreamMasker

STREAM = ValueMasker()
VALUES = STREAM.for_values()
PYTHON = ValueMasker(native=False).for_values()
CARD = "4012888888881881"
AMEX = "378282246310005"
SSN = "123456789"
EMAIL = "JANEROECORPEXAMPLEORG"

# One separator between groups: dashes and minus signs, dots, slashes, commas, symbols, emoji.
SEPARATORS = ["\u2013", "\u2014", "\u2010", "\u2011", "\u2212", "\u2012", "\u2015", "\ufe58",
              "\u00b7", "\u2022", "\u2027", "\u30fb", "\u2044", "\u2215", "\u3001", "\uff64",
              "\u201c", "\u00d7", "\u20ac", "\u00a7", "\u2192", "\u2605", "\U0001f600",
              "\uff02", "\uff3c", "\u3002", "\u2026"]
CARDS = [
    *(f"4012{s}8888{s}8888{s}1881" for s in SEPARATORS),
    "4012\u20138888\u00b78888\u20441881",  # mixed
    "3782\u2013822463\u201310005", "3782\u00b7822463\u00b710005",  # 4-6-5
    "\u00b7".join(CARD), "4012\u2013888888881881",  # single digits, the first four apart
    # characters that draw nothing beside the separators
    "4012\u2063\u20138888\ufe0f\u20138888\u200d\u20131881",
    "4012\u2013\u20608888\u2013\ufeff8888\U000e0020\u20131881",
    "4012\u0301\u00b78888\u180e\u00b78888\u00b71881",
    "4012\u3001\u3164\u200b8888\u30018888\u30011881",
]
SSNS = ["123\u201345\u20136789", "123\u221245\u22126789", "123\u201445\u20146789",
        "123\u201045\u20106789", "123\u201145\u20116789", "123\ufe6345\ufe636789",
        "123\u200b\u201345\u2013\u20606789"]
EMAILS = ["jane.roe\uff20corp.example.org", "jane.roe\ufe6bcorp.example.org",
          "\uff4a\uff41\uff4e\uff45\uff0e\uff52\uff4f\uff45\uff20\uff43\uff4f\uff52\uff50\uff0e"
          "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff4f\uff52\uff47",
          "jane\u200b.roe\uff20corp\u2060.example.org"]

# Ordinary text each reading must let through: prose with en dashes between numbers, dates,
# times, versions, page ranges, prices, resolutions, CJK punctuation, curly quotes.
CLEAN = [
    "from 2019\u20132020 to 2021\u20132022", "2024\u201301\u201302", "1\u20132 million",
    "2024\u201301\u201302 12:30:45", "v1.2.3\u20131.2.4", "pp. 120\u2013135", "10:00\u201312:00",
    "\u20ac1\u00b7234,56 \u00b1 0.5", "1920\u00d71080", "\u756a\u53f7\uff1a4425\u30011998\u3002",
    "\u201c12345678\u201d \u2014 654321", "it\u2019s 12\u2019345", "caf\u00e9 \u2022 12 \u2022 34",
    "user\uff20host", "a\u2013b\u2013c", "\u00a9 2019\u20132024 ACME",
]


def _seen(text: str) -> str:
    """What a reader reads: letters and digits (fullwidth read as ASCII), in capitals."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).upper()
                   if ch.isalnum() and ch.isascii())


def _clear(masked: str) -> bool:
    seen = _seen(masked)
    return any(value in seen for value in (CARD, AMEX, SSN, EMAIL))


def _masked_everywhere(text: str) -> None:
    """``text`` is masked as a database value (native and Python screens), a DataRow holding
    it (its 4-byte length in front) reaches the detectors through every screen, and SSH output
    holding it is masked however it is cut."""
    for masker in (VALUES, PYTHON):
        masked, names = masker.mask(f"x {text} y")
        assert names and not _clear(masked), (text, masked)
    raw = text.encode()
    row = b"D\x00\x00\x00\x30\x00\x01" + struct.pack("!i", len(raw)) + raw
    assert PYTHON.screen(row), text
    assert PYTHON.screen(row * 8), text  # the long path
    assert VALUES.screen_pattern is not None and VALUES.screen_pattern.search(row), text
    if prefilter.available():
        assert VALUES.prefilter is not None and VALUES.prefilter.wait(60)
        assert VALUES.prefilter.any(row), text
        assert VALUES.screen(row * 8), text
    data = f"a {text} b\nnext\n".encode()
    for size in (1, 2, 7):
        masker_ = StreamMasker(STREAM)
        out = b"".join(masker_.feed(data[i:i + size]) for i in range(0, len(data), size))
        out += masker_.flush()
        assert not _clear(out.decode()), (text, size, out)
        assert out.decode().endswith(" b\nnext\n"), out


def test_cards_with_unicode_punctuation_or_symbols_between_groups() -> None:
    for text in CARDS:
        _masked_everywhere(text)


def test_ssns_with_unicode_dashes_and_minus_signs() -> None:
    for text in SSNS:
        _masked_everywhere(text)
    assert VALUES.mask("123\u201345\u20136789")[1] == ["us_ssn"]


def test_emails_with_a_fullwidth_or_small_at_sign_or_in_fullwidth_letters() -> None:
    for text in EMAILS:
        _masked_everywhere(text)
    assert VALUES.mask("jane.roe\uff20corp.example.org") == ("****", ["email"])
    # fullwidth letters of other values too
    key = "".join(chr(ord(ch) + 0xFEE0) for ch in "AKIAIOSFODNN7EXAMPLE")
    assert VALUES.mask(key)[1] == ["aws_access_key"]
    # and the text as it stands is read too: a fold that ends a value early does not shorten
    # its mask (a fullwidth semicolon read as ";")
    assert VALUES.mask("password=ab\uff1bcd ok") == ("password=**** ok", ["secret_assignment"])
    assert VALUES.mask("postgres://u:pa\uff1bss@db/x") == ("postgres://u:****@db/x",
                                                        ["url_credentials"])


def test_a_partial_mask_keeps_only_the_last_digits() -> None:
    masker = ValueMasker(strategies={"payment_card": Strategy("partial", keep_last=4)})
    masker = masker.for_values()
    masked, names = masker.mask("card 4012\u20138888\u20138888\u20131881 ok")
    assert names == ["payment_card"] and masked.endswith("1881 ok"), masked
    assert "4012" not in masked and "8888" not in masked, masked


def test_ordinary_text_with_unicode_dashes_and_symbols_passes() -> None:
    # (with the forms above: a fold that read every dash or symbol as a separator of numbers
    # would mask these; they read as their ASCII forms do)
    _masked_everywhere(CARDS[0])
    for clean in CLEAN:
        assert VALUES.mask(clean) == (clean, []), clean
        assert STREAM.mask(clean) == (clean, []), clean
