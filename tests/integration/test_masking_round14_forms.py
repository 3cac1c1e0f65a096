"""Outside attack round 14 through the PostgreSQL gateway, in text and binary results:

- finding 1: a card with a character that draws nothing before each blank or tab
  (``4012<U+200B> 8888<U+200B> …``) came back in clear, short or long: the row screen never
  let it through to the detectors;
- finding 2: in a value masked in pieces (32 Ki characters or more) a cut fell inside a
  lower-case IBAN (after ``nwbk``) or a card with such a character before a blank;
- finding 3: binary ``xid8`` and ``pg_snapshot`` passed their raw bytes, and an array of
  records (``{"(4012,8888)","(8888,1881)"}``) passed in clear in text and binary."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
UNSEEN = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\ufe0f",
          "\u034f"]


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def test_a_card_with_what_draws_nothing_before_each_blank_is_masked(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            for unseen in UNSEEN:
                for sep in (" ", "\t"):
                    card = (unseen + sep).join(CARD[i:i + 4] for i in range(0, 16, 4))
                    amex = (unseen + sep).join(["3782", "822463", "10005"])
                    row = cur.execute("SELECT %s::text, %s::text", (f"card {card}",
                                                                    f"amex {amex}")).fetchone()
                    assert row is not None
                    assert CARD not in _digits(row[0]), (unseen, sep, binary, row)
                    assert "378282246310005" not in _digits(row[1]), (unseen, binary, row)
            # a long value, masked in pieces: none of its cards in clear
            many = "".join(f"note {n} card 4012\u200b 8888\u200b 8888\u200b 1881 ok\n"
                           for n in range(2000))
            shown = cur.execute("SELECT %s::text", (many,)).fetchone()
            assert shown is not None
            assert "8888\u200b 8888" not in shown[0] and "note 1999" in shown[0], binary


def test_a_long_value_is_not_cut_inside_a_lower_case_iban(gateway: Gateway) -> None:
    lines = "".join(f"customer {n} iban gb29 nwbk 6016 1331 9268 19 ok\n" for n in range(1500))
    zw = "".join(f"customer {n} card 4012\u200e 8888 8888 1881 ok\n" for n in range(3000))
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            row = cur.execute("SELECT %s::text, %s::text", (lines, zw)).fetchone()
            assert row is not None
            assert "6016 1331" not in row[0] and "customer 1499 iban" in row[0], binary
            assert "8888 8888" not in row[1] and "customer 2999 card" in row[1], binary


def test_binary_xid8_snapshots_and_arrays_of_records_are_masked(gateway: Gateway) -> None:
    with psycopg.connect(gateway.target.superuser(), autocommit=True) as admin:
        admin.execute("DO $$ BEGIN CREATE TYPE pair_r14 AS (a int, b int); "
                      "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute("GRANT USAGE ON TYPE pair_r14 TO PUBLIC")
    sql = ("SELECT %s::xid8, %s::pg_snapshot, %s::txid_snapshot, "
           "array[row(4012,8888), row(8888,1881)], "
           "array[row(4012,8888), row(8888,1881)]::pair_r14[], "
           "(array[row(4012,8888), row(8888,1881)]::pair_r14[])::text, "
           "%s::xid8, array[row(1,2), row(3,4)]::pair_r14[]")
    args = (CARD, f"{CARD}:{CARD}:", f"10:{CARD}:", "734")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        for binary in (False, True):
            row = conn.cursor(binary=binary).execute(sql, args).fetchone()
            assert row is not None
            for value in row[:6]:
                shown = value if isinstance(value, str) else repr(value)
                assert value is None or "8888" not in shown, (binary, row)
                if isinstance(value, bytes | bytearray | memoryview):
                    assert bytes.fromhex("000e41b380beb2d9") not in bytes(value), (binary, row)
            assert row[6] is not None and row[7] is not None, (binary, row)  # clean values pass
