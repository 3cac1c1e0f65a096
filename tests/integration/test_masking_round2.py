"""Issue 14, second round of an outside attacker's leaks through the real gateway on a real
PostgreSQL: CTE names in nested queries, recursive CTEs, values kept by built-in functions,
code PostgreSQL runs implicitly (aggregates, operators, constraints, domains) and error
details quoting existing rows. Each test checks the seeded national ids never come back in
clear (and, where the attack needs it, that the statement really moved them on the target)."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Gateway
from tests.integration.test_masking_lineage import leaked, seeded
from tests.integration.test_masking_taint import name, tables

__all__ = ["tables"]  # the fixture: objects a test creates, dropped afterwards

pytestmark = pytest.mark.integration


def through(gateway: Gateway, *statements: str) -> str:
    """What each statement returns through the gateway in one session (text results)."""
    rows: list[object] = []
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        for sql in statements:
            cur = conn.execute(sql)
            if cur.description is not None:
                rows += cur.fetchall()
    return str(rows)


def direct(gateway: Gateway, sql: str) -> str:
    with psycopg.connect(gateway.target.direct()) as conn:
        return str(conn.execute(sql).fetchall())


# A CTE named like a real table (``orders`` holds no masked column) read inside a scalar
# subquery, ARRAY(...), a lateral item, a set-op branch or a nested WITH.
CTE_SHADOWS = [
    "with orders as (select c.* from customers c) select array(select concat_ws('|',"
    " orders.national_id, orders.email) from orders)::text",
    "with orders as (select national_id as status from customers)"
    " select (select string_agg(status, ',') from orders)",
    "with orders as (select national_id as status from customers)"
    " select x.s from (select 1) o, lateral (select string_agg(status, ',') from orders) x(s)",
    "with orders as (select national_id as status from customers)"
    " select 'a' union all select (select string_agg(status, ',') from orders)",
    "with orders as (select national_id as status from customers)"
    " select (with z as (select status from orders) select string_agg(status, ',') from z)",
]


@pytest.mark.parametrize("sql", CTE_SHADOWS)
def test_a_cte_named_like_a_table_in_a_nested_query(gateway: Gateway, sql: str) -> None:
    values = seeded(gateway)
    assert leaked(values, direct(gateway, sql)), "the statement reads no national id"
    out = through(gateway, sql)
    assert not leaked(values, out), out[:400]


def test_an_insert_select_through_a_cte_named_like_a_table(gateway: Gateway,
                                                           tables: list[str]) -> None:
    loot = name()
    tables.append(loot)
    values = seeded(gateway)
    out = through(
        gateway, f"create table {loot} (v text)",
        f"with {loot} as (select national_id as v from customers)"
        f" insert into {loot} select (select string_agg(v, ',') from {loot})",
        f"select * from {loot}")
    assert leaked(values, direct(gateway, f"select * from {loot}"))
    assert not leaked(values, out), out[:400]


def test_a_recursive_cte_past_three_steps(gateway: Gateway) -> None:
    sql = ("with recursive r(a, b, c, d, e, k) as ("
           " select national_id, '', '', '', '', 0 from customers"
           " union all select '', a, b, c, d, k + 1 from r where k < 6)"
           " select string_agg(e, ',') from r")
    values = seeded(gateway)
    assert leaked(values, direct(gateway, sql))
    out = through(gateway, sql)
    assert not leaked(values, out), out[:400]
