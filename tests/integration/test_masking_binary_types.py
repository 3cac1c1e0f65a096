"""Binary results of ranges, multiranges and geometric types are screened (outside attack on
issue 14: ``int8range(card, card + 1)`` and ``point(card, 0)`` came back in clear in binary,
while text format masked them). A value with a finding becomes NULL; others are untouched."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CARD = 4012888888881881


@pytest.mark.parametrize("sql", [
    f"SELECT int8range({CARD}, {CARD + 1})",
    f"SELECT numrange({CARD}, {CARD + 1})",
    f"SELECT int8multirange(int8range(1, 2), int8range({CARD}, {CARD + 1}))",
    f"SELECT point({CARD}, 0)",
    f"SELECT box(point(0, 0), point({CARD}, 1))",
    f"SELECT circle(point({CARD}, 0), 1)",
    f"SELECT polygon(path '((0,0),(1,1),({CARD},2))')",
])
def test_a_value_in_a_binary_number_type_is_masked(gateway: Gateway, sql: str) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        row = conn.cursor(binary=True).execute(sql).fetchone()  # type: ignore[arg-type]
    assert row is not None and str(CARD) not in str(row[0]), row


def test_ordinary_ranges_and_points_pass(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        row = conn.cursor(binary=True).execute(
            "SELECT int4range(1, 10), point(1.5, 2), numrange(0.5, 7)").fetchone()
    assert row is not None
    assert str(row[0]) == "[1, 10)" and row[1] is not None and row[2] is not None
