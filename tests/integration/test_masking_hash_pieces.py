"""A hashed column's pieces are not hashed (outside attack on issue 14): the hash of one
character of a national id was looked up in a dictionary of the hashes of every character,
which the same session computed under the column's name, and the id came back."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration


def test_a_piece_of_a_hashed_column_cannot_be_looked_up(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        whole = conn.execute("SELECT national_id FROM customers WHERE id = 1").fetchone()
        pieces = [r[0] for r in conn.execute(
            "SELECT substr(national_id, p, 1) FROM customers, generate_series(1, 4) p "
            "WHERE id = 1 ORDER BY p").fetchall()]
        dictionary = {r[0] for r in conn.execute(
            "SELECT chr(g) AS national_id FROM generate_series(32, 126) g").fetchall()}
    assert whole is not None and str(whole[0]).startswith("h:")  # the column itself: hashed
    # neither a piece nor a value merely named like the column is hashed: nothing to look up
    hashed = [v for v in [*pieces, *dictionary] if str(v).startswith("h:")]
    assert pieces and not hashed, hashed[:3]


def test_a_table_of_ones_own_is_no_dictionary_of_a_hashed_column(gateway: Gateway) -> None:
    """Round 12: a user filled a table of her own with candidates under a column named like
    the hashed one, and read its hashes back: the row whose hash was the customer's gave the
    national id. A column's hashes are its own."""
    with psycopg.connect(gateway.target.superuser(), dbname="shop") as admin:
        raw = admin.execute("SELECT national_id FROM customers WHERE id = 1").fetchone()
    assert raw is not None
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        whole = conn.execute("SELECT national_id FROM customers WHERE id = 1").fetchone()
        again = conn.execute("SELECT c.national_id FROM customers c WHERE c.id = 1").fetchone()
        conn.execute("CREATE TEMP TABLE gw14r12_dict (k int, national_id text)")
        conn.execute("INSERT INTO gw14r12_dict VALUES (1, %s), (2, 'other')", [raw[0]])
        mine = dict(conn.execute("SELECT k, national_id FROM gw14r12_dict").fetchall())
    assert whole is not None and whole == again and str(whole[0]).startswith("h:")
    assert str(mine[1]).startswith("h:")  # hashed too: its name is the rule's
    assert mine[1] != whole[0]  # but with the key of that table's column, not the customers'
