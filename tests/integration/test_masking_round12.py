"""Issue 14, outside attack round 12 through the PostgreSQL gateway: a card stored as groups in
an array or a row came back whole in binary format (psycopg ``binary=True``), where the same
value in text format is masked. Binary is masked as its text form is."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

GROUPS = ["'{4012,8888,8888,1881}'::int4[]", "'{4012,8888,8888,1881}'::int8[]",
          "'{4012,8888,8888,1881}'::numeric[]", "'{4012,8888,8888,1881}'::text[]",
          "row(4012, 8888, 8888, 1881)"]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_a_card_in_groups_of_an_array_or_a_row_is_masked(gateway: Gateway,
                                                          binary: bool) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        cur = conn.cursor(binary=binary)
        shown = cur.execute("SELECT " + ", ".join(GROUPS)).fetchone()
        clean = cur.execute("SELECT '{1,2,3}'::int4[], row(1, 'a')").fetchone()
    assert shown is not None
    for value in shown:
        digits = "".join(ch for ch in str(value) if ch.isdigit())
        assert "4012888888881881" not in digits, shown
    assert clean is not None and clean[0] == [1, 2, 3]
