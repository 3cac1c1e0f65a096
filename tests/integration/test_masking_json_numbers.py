"""A value a detector finds inside a JSON number (outside attack on issue 14, typed clients):
``{"n": ************1111}`` is no JSON, and psycopg raised on it. The masked value stays JSON,
in text and binary results, and the number is never seen."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CARD = "4111111111111111"
QUERIES = [
    f"SELECT '{{\"n\": {CARD}}}'::jsonb",
    f"SELECT '{{\"n\": {CARD}, \"m\": [1, {CARD}]}}'::json",
    f"SELECT json_build_object('n', {CARD})",
    f"SELECT to_json({CARD}::bigint)",
    f"SELECT '{{\"card\": \"{CARD}\"}}'::jsonb",
]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_json_with_a_value_in_a_number_stays_json(gateway: Gateway, binary: bool) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        cursor = conn.cursor(binary=binary)
        for sql in QUERIES:
            row = cursor.execute(sql).fetchone()  # parsed by psycopg: must not raise
            assert row is not None
            assert CARD not in str(row[0]) and CARD[:8] not in str(row[0]), (sql, row)


def test_an_application_name_holding_a_value_is_recorded_masked(gateway: Gateway) -> None:
    """Outside attack on issue 14 (the record): the client's application_name went into the
    sessions table and the audit chain as it was sent."""
    name = f"app {CARD}"
    with psycopg.connect(gateway.dsn("shop_masked", application_name=f"'{name}'"),
                         autocommit=True) as conn:
        conn.execute("SELECT 1")
    sessions = gateway.wait_for(lambda s: [r for r in s.sessions()
                                           if (r["application_name"] or "").startswith("app ")])
    assert sessions and all(CARD not in r["application_name"] for r in sessions)
    assert "1111" in sessions[0]["application_name"]  # masked as results are: last 4 kept
