"""Outside attack round 13, finding 6, through the PostgreSQL gateway: computed values the
detectors missed came back in clear — a card whose groups an en dash, a middle dot, a fraction
slash or an ideographic comma separates, with characters that draw nothing beside the
separator (U+200D, U+2060, U+FEFF, U+2063, U+180E, VS16, tags, combining marks, a Hangul
filler), an e-mail address with a fullwidth or small at sign, an SSN with en dashes. Text and
binary results are masked alike; prose with en dashes between numbers passes."""

from __future__ import annotations

import unicodedata

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"


def _groups(sep: str) -> str:
    return sep.join(CARD[i:i + 4] for i in range(0, 16, 4))


# Characters that draw nothing (``zerowidth``, read through since round 12) are tried beside
# the separators this round adds: each one right before an en dash.
INVISIBLE = ["\u200b", "\u200d", "\u2060", "\ufeff", "\u2063", "\u180e", "\ufe0f",
             "\U000e0020", "\U000e007f", "\u0301", "\u20dd", "\u3164"]
VALUES = [
    _groups("\u2013"), _groups("\u00b7"), _groups("\u2044"), _groups("\u3001"),
    _groups("\u2212"), _groups("\u2022"),
    "4012\u20138888\u00b78888\u30011881", "\u00b7".join(CARD),
    *(_groups(f"{z}\u2013") for z in INVISIBLE),
    "jane.roe\uff20corp.example.org", "jane.roe\ufe6bcorp.example.org",
    "jane\u200d.roe\uff20corp\u2060.example.org",
    "123\u201345\u20136789", "123\u221245\u22126789", "123\u2063\u201345\u2013\ufe0f6789",
]
HIDDEN = (CARD, "JANEROECORPEXAMPLEORG", "123456789")
CLEAN = ["from 2019\u20132020 to 2021\u20132022", "2024\u201301\u201302 12:30:45",
         "pp. 120\u2013135, v1.2.3\u20131.2.4", "\u00a9 2019\u20132024 \u00b7 10:00\u201312:00"]


def _plain(value: str) -> str:
    """What a reader reads: letters and digits, fullwidth read as ASCII, in capitals."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", value).upper()
                   if ch.isalnum() and ch.isascii())


@pytest.mark.parametrize("value", VALUES)
def test_a_value_with_unicode_separators_or_invisible_characters_is_masked(
        gateway: Gateway, value: str) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            row = cur.execute("SELECT %s::text, %s::text || ' ok'", (value, value)).fetchone()
            assert row is not None
            for shown in row:
                assert not any(h in _plain(shown) for h in HIDDEN), (value, binary, shown)
            assert row[1].endswith(" ok"), row
            clean = cur.execute("SELECT " + ", ".join(["%s::text"] * len(CLEAN)),
                                CLEAN).fetchone()
            assert clean is not None and list(clean) == CLEAN, clean
