"""Issue 14, outside attack round 10 through the PostgreSQL gateway (psycopg, text and binary):
a card that only the detector protects, rewritten by SQL with ``/`` or ``:`` between its groups
or its first group in parentheses, came back in clear, and the same forms written as literals
were recorded in clear in the statement text and the audit trail (F6)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
FORMS = ["4012/8888/8888/1881", "4012:8888:8888:1881", "(4012)888888881881",
         "4012|8888;8888#1881", "4012 8888-8888 1881"]
REWRITES = [r"regexp_replace(v, '(\d{4})(?!$)', '\1/', 'g')",
            r"regexp_replace(v, '(\d{4})(?!$)', '\1:', 'g')",
            "'(' || left(v, 4) || ')' || substr(v, 5)",
            r"regexp_replace(v, '(\d{4})(?!$)', '\1+', 'g')"]


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_cards_rewritten_with_other_separators_are_masked(gateway: Gateway,
                                                          binary: bool) -> None:
    columns = ", ".join(REWRITES)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        computed = conn.cursor(binary=binary).execute(
            f"SELECT {columns} FROM (VALUES ('{CARD}')) AS t(v)").fetchone()
        literals = conn.cursor(binary=binary).execute(
            "SELECT " + ", ".join(f"'{f}'" for f in FORMS) + " AS gw_round10").fetchone()
    assert computed is not None and literals is not None
    for shown in [*computed, *literals]:
        assert CARD not in _digits(str(shown)), shown
        assert str(shown).endswith("1881"), shown  # partly shown: the last four


def test_card_forms_are_masked_in_the_record(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked", application_name="round10"),
                         autocommit=True) as conn:
        conn.execute("SELECT " + ", ".join(f"'{f}'" for f in FORMS) + " AS gw_round10_rec")

    def recorded(store: Any) -> list[str] | None:
        found = [r[0] for r in store.conn.execute(
            "SELECT text FROM statements WHERE text LIKE '%gw_round10_rec%'").fetchall()]
        return found or None

    texts = gateway.wait_for(recorded)
    assert texts, "the statement was never recorded"
    for text in texts:
        assert CARD not in _digits(text.replace("gw_round10_rec", "")), text
    every = gateway.wait_for(lambda store: [str(tuple(r)) for r in store.conn.execute(
        "SELECT * FROM audit").fetchall()] or None) or []
    for form in FORMS:
        assert not [a for a in every if form in a], (form, every)
