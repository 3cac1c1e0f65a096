"""Issue 14, outside attack round 9 through the PostgreSQL gateway (psycopg, text and binary):
cards glued to letters or an underscore in a text column came back in clear (F8); passwords
after a comment, under a quoted option name, or in a credential-like option were recorded in
clear (F10), and so was a password in a URL (F11)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
NOTES = [f"ref_{CARD}", f"cardA{CARD}", f"{CARD}x", f"stmt_{CARD}.pdf",
         "4012.8888.8888.1881", "4 0 1 2 8 8 8 8 8 8 8 8 1 8 8 1", "4012_8888_8888_1881"]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_cards_glued_to_words_or_separated_oddly_are_masked(gateway: Gateway,
                                                            binary: bool) -> None:
    values = ", ".join(f"('{n}')" for n in NOTES)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        rows = conn.cursor(binary=binary).execute(
            f"SELECT v FROM (VALUES {values}) AS t(v)").fetchall()
    shown = [r[0] for r in rows]
    assert len(shown) == len(NOTES)
    assert not [s for s in shown if CARD in "".join(ch for ch in s if ch.isdigit())], shown
    assert shown[0].startswith("ref_") and shown[3].endswith(".pdf"), shown


SECRETS = {
    "PwCmt666": "alter role gw_round9_nobody password /* c */ 'PwCmt666'",
    "PwQuoted999": "create user mapping for current_user server gw_round9_nosuch"
                   " options (user 'u', \"password\" 'PwQuoted999')",
    "PwSsl1515": "create server gw_round9_s1 foreign data wrapper gw_round9_nofdw"
                 " options (host 'h', sslpassword 'PwSsl1515')",
    "PwUri2525": "select 'postgres://u:PwUri2525@h/db' as gw_round9",
}


def test_credentials_in_statements_are_masked_in_the_record(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked", application_name="round9"),
                         autocommit=True) as conn:
        for sql in SECRETS.values():
            try:
                conn.execute(sql)
            except psycopg.Error:
                pass  # refused by a rule or by the target: recorded all the same

    def recorded(store: Any) -> list[str] | None:
        found = [r[0] for r in store.conn.execute(
            "SELECT text FROM statements WHERE text LIKE '%gw_round9%'").fetchall()]
        return found if len(found) >= len(SECRETS) else None

    texts = gateway.wait_for(recorded)
    assert texts, "the statements were never recorded"
    for secret in SECRETS:
        assert not [t for t in texts if secret in t], (secret, texts)
    every = gateway.wait_for(lambda store: [str(tuple(r)) for r in store.conn.execute(
        "SELECT * FROM audit").fetchall()] or None) or []
    for secret in SECRETS:
        assert not [a for a in every if secret in a], secret
