"""Issue 14, the ninth outside attack: implicit flows. A WHERE, JOIN ON, EXISTS or IN over a
masked column picked rows of a generated alphabet whose clean columns were output; an ORDER BY
picked the row a LIMIT kept, or only ordered them; ``count(expr)`` counted how often a
condition over the value held. Each spelled a national id in one query. What picks, orders
or counts rows by a masked column now masks every column it shapes."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import start_guarded

pytestmark = pytest.mark.integration

_ID = "(select min(id) from customers)"
_CHAR = "ascii(substr(c.national_id, p, 1))"
# Each spells the first customer's national id, read straight from the target.
SPELLS = {
    "where": "select string_agg(chr(g), '' order by p) from customers c,"
             " generate_series(1, 20) p, generate_series(32, 126) g"
             f" where c.id = {_ID} and {_CHAR} = g",
    "join-on": "select string_agg(chr(g), '' order by p) from customers c"
               " join generate_series(1, 20) p on true"
               f" join generate_series(32, 126) g on {_CHAR} = g where c.id = {_ID}",
    "scalar-subquery-where": "select (select string_agg(chr(g), '' order by p)"
                             " from generate_series(1, 20) p, generate_series(32, 126) g"
                             f" where {_CHAR} = g) from customers c where c.id = {_ID}",
    "exists": "select string_agg(chr(g), '' order by p) from generate_series(1, 20) p,"
              " generate_series(32, 126) g where exists (select from customers c"
              f" where c.id = {_ID} and {_CHAR} = g)",
    "in": "select string_agg(chr(g), '' order by p) from generate_series(1, 20) p,"
          " generate_series(32, 126) g where (g, p) in (select ascii(substr(national_id, q, 1)),"
          f" q from customers, generate_series(1, 20) q where id = {_ID})",
    # confirms a guess (GUESS: the value itself, and a wrong one)
    "guess": "select t.v from customers c, (values ('GUESS'), ('nope')) t(v)"
             f" where c.id = {_ID} and c.national_id = t.v",
    "order-limit": "select string_agg(chr(g), '' order by p) from customers c,"
                   " generate_series(1, 20) p, lateral (select g from generate_series(32, 126) g"
                   f" order by g <> {_CHAR} limit 1) s where c.id = {_ID}"
                   " and p <= length(c.national_id)",
    "order-only": "select string_agg(ch, '') from (select chr(g) ch, row_number() over () n"
                  " from (select g, p from customers c, generate_series(1, 20) p,"
                  f" generate_series(32, 126) g where c.id = {_ID} and p <= length(c.national_id)"
                  f" order by g <> {_CHAR}, p) o) s where n <= (select length(national_id)"
                  f" from customers where id = {_ID})",
    "count-expr": "select string_agg(chr(n::int), '' order by p) from (select p,"
                  " count(nullif(g <= ascii(substr(national_id, p, 1)), false)) n"
                  " from customers, generate_series(1, 20) p, generate_series(1, 127) g"
                  f" where id = {_ID} and p <= length(national_id) group by p) s",
}


@pytest.fixture(scope="module")
def gateway(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("masked14r9"))
    try:
        yield gw
    finally:
        stop_gateway(gw)


def first_national_id(gateway: Gateway) -> str:
    with psycopg.connect(gateway.target.direct()) as direct:
        row = direct.execute("select national_id from customers"
                             " where id = (select min(id) from customers)").fetchone()
    assert row is not None and row[0]
    return str(row[0])


@pytest.mark.parametrize("name", sorted(SPELLS))
def test_rows_picked_ordered_or_counted_by_a_masked_column_are_masked(
        gateway: Gateway, name: str) -> None:
    value = first_national_id(gateway)
    sql = SPELLS[name].replace("GUESS", value)
    with psycopg.connect(gateway.target.direct()) as direct:
        assert value in str(direct.execute(sql).fetchall()), "the query spells no national id"
    for binary in (False, True):
        with psycopg.connect(gateway.dsn("shop_masked")) as conn:
            rows = conn.cursor(binary=binary).execute(sql).fetchall()
        assert rows and value not in str(rows), (binary, rows)
        assert value[:5] not in str(rows) and value[-5:] not in str(rows), (binary, rows)


def test_a_clean_filter_keeps_clean_columns(gateway: Gateway) -> None:
    """Filtering on a masked column masks the result; a clean filter does not."""
    with psycopg.connect(gateway.target.direct()) as direct:
        ids = [r[0] for r in direct.execute("select id from customers order by id limit 3")]
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        clean = [r[0] for r in conn.execute("select id from customers order by id limit 3")]
        picked = conn.execute("select id from customers where national_id <> ''"
                              " order by id limit 3").fetchall()
    assert clean == ids
    assert [r[0] for r in picked] != ids  # the ids come back masked (NULL for a number)


def test_a_write_whose_rows_a_masked_column_picks_taints_what_it_writes(
        gateway: Gateway) -> None:
    """``DELETE … WHERE g <> ascii(…)`` leaves the one row the value picks; ``UPDATE … SET
    hit = true WHERE g = ascii(…)`` marks it, and moves it to the table's end (a plain read
    gives it last). Read back later, none says which."""
    code = ord(first_national_id(gateway)[0])
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        for t in ("gw14r9_del", "gw14r9_upd"):
            direct.execute(f"drop table if exists {t}")
            direct.execute(f"create table {t} as select g, false as hit"
                           " from generate_series(32, 126) g")
    pick = f"(select ascii(national_id) from customers where id = {_ID})"
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"delete from gw14r9_del where g <> {pick}")
        conn.execute(f"update gw14r9_upd set hit = true where g = {pick}")
        left = conn.execute("select g from gw14r9_del").fetchall()
        marked = conn.execute("select g, hit from gw14r9_upd order by g").fetchall()
        where = conn.execute("select g from gw14r9_upd where hit").fetchall()
        plain = conn.execute("select g from gw14r9_upd").fetchall()
    with psycopg.connect(gateway.target.direct()) as direct:
        assert direct.execute("select g from gw14r9_del").fetchall() == [(code,)]
    assert left == [(None,)], left
    assert (code, True) not in marked and len(marked) == 126 - 32 + 1, marked[:5]
    assert where == [(None,)], where
    assert (code,) not in plain and len(plain) == 126 - 32 + 1, plain[-3:]
