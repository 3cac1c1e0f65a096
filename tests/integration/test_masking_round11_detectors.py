"""Issue 14, outside attack round 11 through the PostgreSQL gateway (psycopg, text and binary):
a card that only the detector protects, cast to ``macaddr8`` or ``pg_lsn`` (whose output is the
card's digits in pairs or 8/8), or written in fullwidth or Arabic-Indic digits, came back in
clear, and the same forms written as literals, or glued to other digits, were recorded in clear
in the statement text and the audit trail (G12, G10, G5). A value read whole is a card only
whole: an id of 17 to 19 digits holds a window that passes Luhn nine times in ten, and is
left as it is."""

from __future__ import annotations

import unicodedata
from typing import Any

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
GLUED = "940128888888818815"  # a card with digits on either side
FULLWIDTH = "".join(chr(0xFF10 + d) for d in range(10))
COMPUTED = ["v::macaddr8", "(v::macaddr8)::text",
            "(substr(v, 1, 8) || '/' || substr(v, 9))::pg_lsn",
            "regexp_replace(v, '(\\d\\d)(?!$)', '\\1:', 'g')",
            f"translate(v, '0123456789', '{FULLWIDTH}')"]
LITERALS = ["40128888/88881881", "40:12:88:88:88:88:18:81", "40-12-88-88-88-88-18-81",
            "401 288 888 888 1881", "4012\t8888\t8888\t1881", "940128888888818815",
            "".join(chr(0xFF10 + int(d)) for d in CARD), "".join(chr(0x660 + int(d)) for d in CARD)]


def _digits(text: str) -> str:
    return "".join(str(unicodedata.digit(ch)) for ch in text
                   if unicodedata.digit(ch, None) is not None)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_card_casts_and_forms_are_masked(gateway: Gateway, binary: bool) -> None:
    columns = ", ".join(COMPUTED)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        computed = conn.cursor(binary=binary).execute(
            f"SELECT {columns} FROM (VALUES ('{CARD}')) AS t(v)").fetchone()
        literals = conn.cursor(binary=binary).execute(
            "SELECT " + ", ".join(f"E'{f}'".replace("\t", "\\t") for f in LITERALS
                                  if f != GLUED) + " AS gw_round11").fetchone()
        ids = conn.cursor(binary=binary).execute(
            "SELECT 940128888888818815::bigint, '940128888888818815'::text").fetchone()
        # an ordinary timestamp and an address are left alone
        clean = conn.cursor(binary=binary).execute(
            "SELECT '2024-05-02 09:14:03.123456+00'::timestamptz::text,"
            " '10.0.0.1:5432'::text, host('10.0.0.1'::inet)"
        ).fetchone()
    assert computed is not None and literals is not None and clean is not None
    for shown in [*computed, *literals]:
        assert shown is None or CARD not in _digits(str(shown)), shown
    assert clean == ("2024-05-02 09:14:03.123456+00", "10.0.0.1:5432", "10.0.0.1")
    assert ids == (940128888888818815, GLUED)  # a value of its own: an id, not two joined


def test_card_forms_are_masked_in_the_record(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked", application_name="round11"),
                         autocommit=True) as conn:
        conn.execute("SELECT " + ", ".join(f"E'{f}'".replace("\t", "\\t") for f in LITERALS)
                     + " AS gw_round11_rec")

    def recorded(store: Any) -> list[str] | None:
        found = [r[0] for r in store.conn.execute(
            "SELECT text FROM statements WHERE text LIKE '%gw_round11_rec%'").fetchall()]
        return found or None

    texts = gateway.wait_for(recorded)
    assert texts, "the statement was never recorded"
    for text in texts:
        for literal in text.split("'")[1::2]:
            assert CARD not in _digits(literal), text
    every = gateway.wait_for(lambda store: [str(tuple(r)) for r in store.conn.execute(
        "SELECT * FROM audit").fetchall()] or None) or []
    for form in LITERALS:
        assert not [a for a in every if form in a], (form, every)
