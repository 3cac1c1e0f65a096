"""Parameters in binary format are recorded as what they hold, masked (outside attack on issue
14, the record): psycopg's binary parameters came into ``statements.params`` as hex."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CARD = 4012888888881881


def test_binary_parameters_are_masked_in_the_record(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked", application_name="binparams"),
                         autocommit=True) as conn:
        conn.execute("SELECT %b::text, %b::int8", [str(CARD), CARD])
    params = gateway.wait_for(lambda s: [r[0] for r in s.conn.execute(
        "SELECT params FROM statements WHERE params IS NOT NULL").fetchall()
        if "binary" in str(r[0]) or "'" in str(r[0])])
    assert params and not [p for p in params if str(CARD) in str(p)], params
    assert not [p for p in params if CARD.to_bytes(8, "big").hex() in str(p)]


def test_values_going_with_a_masked_column_are_masked_in_the_record(gateway: Gateway) -> None:
    """A national id has no shape a detector knows: a literal or parameter of a statement that
    names the masked column is recorded masked (outside attack on issue 14: ``WHERE
    national_id = '…'`` was recorded in clear)."""
    secret = "ZZ-9931-QX"
    with psycopg.connect(gateway.dsn("shop_masked", application_name="tied"),
                         autocommit=True) as conn:
        conn.execute(f"SELECT count(*) FROM customers WHERE national_id = '{secret}'")
        conn.execute("SELECT count(*) FROM customers WHERE national_id = %s", [secret])
        # (customers and orders both have a masked column: a statement naming neither)
        conn.execute("SELECT count(*) FROM generate_series(1, 3) WHERE 9000 < %s", [9931])
    def recorded(store: Any) -> list[tuple[str, str | None]] | None:
        found = store.conn.execute("SELECT text, params FROM statements WHERE text LIKE "
                                   "'SELECT count(*) FROM %WHERE%'").fetchall()
        return found if len(found) >= 3 else None

    rows = gateway.wait_for(recorded)
    assert not [r for r in rows if secret in f"{r[0]} {r[1]}"], rows
    assert [r for r in rows if "national_id = '****'" in r[0]], rows
    assert [r for r in rows if "9931" in str(r[1])], rows  # no masked column named: kept
