"""What decides a result's rows and an aggregate's value carries lineage (outside attack on
issue 14): an ordered-set aggregate's WITHIN GROUP is its value, a window's ORDER BY ranks by
it, and how many rows a set-returning function in FROM gives, or which an OFFSET skips to, can
spell a masked value one character per row in a single query. Each reconstruction fails."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration


def national_ids(gateway: Gateway) -> list[str]:
    with psycopg.connect(gateway.target.direct()) as direct:
        return [r[0] for r in direct.execute("SELECT national_id FROM customers ORDER BY id")]


def rows(gateway: Gateway, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def spelled(values: list[tuple[object, ...]]) -> str:
    return "".join(chr(v) if isinstance(v, int) and 0 < v < 0x110000 else "?"
                   for _, v in values)


def test_within_group_is_the_value(gateway: Gateway) -> None:
    secret = national_ids(gateway)
    got = rows(gateway, "SELECT id, mode() WITHIN GROUP (ORDER BY national_id), "
                        "percentile_disc(0) WITHIN GROUP (ORDER BY national_id) "
                        "FROM customers GROUP BY id ORDER BY id")
    assert not [v for row in got for v in row[1:] if v in secret]


@pytest.mark.parametrize("sql", [
    "SELECT k, (SELECT count(*) FROM generate_series(1, ascii(substr(c.national_id, k, 1)))) "
    "FROM customers c, generate_series(1, 11) k WHERE c.id = 1 ORDER BY k",
    "SELECT k, (SELECT g FROM generate_series(0, 255) g "
    "OFFSET ascii(substr(c.national_id, k, 1)) LIMIT 1) "
    "FROM customers c, generate_series(1, 11) k WHERE c.id = 1 ORDER BY k",
    "SELECT k, (SELECT count(*) FROM (SELECT 1 FROM generate_series(1, 255) "
    "LIMIT ascii(substr(c.national_id, k, 1))) s) "
    "FROM customers c, generate_series(1, 11) k WHERE c.id = 1 ORDER BY k",
    "SELECT k, (WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
    "WHERE n < ascii(substr(c.national_id, k, 1))) SELECT count(*) FROM r) "
    "FROM customers c, generate_series(1, 11) k WHERE c.id = 1 ORDER BY k",
    "SELECT k, (WITH s AS (SELECT 1 FROM generate_series(1, 255) "
    "LIMIT ascii(substr(c.national_id, k, 1))) SELECT count(*) FROM s) "
    "FROM customers c, generate_series(1, 11) k WHERE c.id = 1 ORDER BY k",
])
def test_row_counts_and_offsets_do_not_spell_a_value(gateway: Gateway, sql: str) -> None:
    secret = national_ids(gateway)[0]
    assert spelled(rows(gateway, sql)) != secret


@pytest.mark.parametrize("sql", [
    # re-attack: a set-returning function in a subquery's target list, counted outside
    "SELECT k, count(*) FROM (SELECT k, generate_series(1, ascii(substr(c.national_id, k, 1))) "
    "FROM customers c, generate_series(1, 11) k WHERE c.id = 1) s GROUP BY k ORDER BY k",
    "SELECT k, count(*) FROM (SELECT k, unnest(string_to_array(repeat('x,', "
    "ascii(substr(c.national_id, k, 1)) - 1) || 'x', ',')) FROM customers c, "
    "generate_series(1, 11) k WHERE c.id = 1) s GROUP BY k ORDER BY k",
    "SELECT k, (SELECT count(*) FROM (SELECT DISTINCT ON (g % ascii(substr(c.national_id, k, 1)))"
    " g FROM generate_series(1, 300) g) d) FROM customers c, generate_series(1, 11) k "
    "WHERE c.id = 1 ORDER BY k",
    "SELECT k, (SELECT count(*) FROM (SELECT 1 FROM generate_series(1, 300) g "
    "GROUP BY g % ascii(substr(c.national_id, k, 1))) d) FROM customers c, "
    "generate_series(1, 11) k WHERE c.id = 1 ORDER BY k",
])
def test_set_returning_calls_and_groups_do_not_spell_a_value(gateway: Gateway,
                                                              sql: str) -> None:
    secret = national_ids(gateway)[0]
    assert spelled(rows(gateway, sql)) != secret


def test_a_sample_sized_by_a_value_is_masked(gateway: Gateway) -> None:
    """TABLESAMPLE's percentage from a masked value: the count of the sample measures it."""
    got = rows(gateway, "SELECT count(*) FROM generate_series(1, 1) g, customers c "
                        "TABLESAMPLE BERNOULLI ((SELECT ascii(national_id) FROM customers "
                        "WHERE id = 2) / 1.0) REPEATABLE (1)")
    assert got[0][0] is None  # a count is a number: masked, it is NULL


def test_aggregate_filters_and_window_orders_are_masked(gateway: Gateway) -> None:
    secret = national_ids(gateway)
    ranked = rows(gateway, "SELECT id, row_number() OVER (ORDER BY national_id) FROM customers")
    truth = {i + 1: rank + 1 for rank, i in enumerate(
        sorted(range(len(secret)), key=lambda i: secret[i]))}
    assert [r[1] for r in ranked] != [truth[r[0]] for r in ranked]  # type: ignore[index]
    counted = rows(gateway, "SELECT count(*) FILTER (WHERE national_id LIKE '9%') "
                            "FROM customers")
    assert counted[0][0] != sum(1 for s in secret if s.startswith("9"))
