"""Lineage of implicit flows: what picks or orders a query level's rows reaches its columns.

A condition over a masked column that picks rows of another row source (``where
ascii(substr(national_id, p, 1)) = g`` over an alphabet ``g``), an ORDER BY that picks the row
a LIMIT keeps or only orders them, and ``count(expr)`` of an expression over the value each
spell the value with clean columns; each is carried into every column of its level, and into
what a write it picks rows for writes.
"""

from __future__ import annotations

import pytest

from engine.masking.lineage import Analyzer, Relation
from tests.engine.masking.test_lineage import (
    NID,
    RELATIONS,
    Catalog,
    analyzer,
    columns,
    masked,
    tree,
)

_ALPHABET = "generate_series(1, 20) p, generate_series(32, 126) g"
_CHAR = "ascii(substr(c.national_id, p, 1))"


@pytest.mark.parametrize("sql", [
    # WHERE, JOIN … ON, USING, NATURAL
    f"select string_agg(chr(g), '' order by p) from customers c, {_ALPHABET}"
    f" where c.id = 900 and {_CHAR} = g",
    f"select chr(g) from customers c join generate_series(1, 20) p on true"
    f" join generate_series(32, 126) g on {_CHAR} = g",
    f"select chr(g) from customers c left join generate_series(32, 126) g on {_CHAR} = g"
    f" cross join generate_series(1, 20) p",
    "select t.v from customers c, (values ('x'), ('y')) t(v) where c.national_id = t.v",
    "select t.id from customers c join (values ('x', 1)) t(national_id, id) using (national_id)",
    "select t.id from customers c natural join (values ('x', 1)) t(national_id, id)",
    # sublinks in WHERE: EXISTS (with and without columns), IN, ANY, a scalar subquery
    f"select chr(g) from {_ALPHABET} where exists"
    f" (select 1 from customers c where {_CHAR} = g)",
    f"select chr(g) from {_ALPHABET} where exists (select from customers c where {_CHAR} = g)",
    f"select chr(g) from {_ALPHABET} where not exists"
    f" (select from customers c where {_CHAR} <> g)",
    f"select chr(g) from {_ALPHABET} where (g, p) in"
    " (select ascii(substr(national_id, q, 1)), q from customers, generate_series(1, 20) q)",
    f"select chr(g) from {_ALPHABET} where g = any"
    " (select ascii(substr(national_id, p, 1)) from customers)",
    f"select chr(g) from {_ALPHABET} where g ="
    " (select ascii(substr(national_id, p, 1)) from customers limit 1)",
    # a scalar subquery in the target list whose WHERE picks
    f"select (select string_agg(chr(g), '' order by p) from {_ALPHABET} where {_CHAR} = g)"
    " from customers c",
    # ORDER BY with and without LIMIT, lateral, by output name and number
    "select (select chr(g) from generate_series(32, 126) g"
    f" order by abs(g - {_CHAR}) limit 1) from customers c, generate_series(1, 9) p",
    "select string_agg(chr(g), '' order by p) from customers c, generate_series(1, 9) p,"
    f" lateral (select g from generate_series(32, 126) g order by g <> {_CHAR} limit 1) s",
    "select left(string_agg(ch, ''), 9) from (select chr(g) ch from customers c,"
    f" {_ALPHABET} order by g <> {_CHAR}, p) s",
    "select id from customers order by national_id",
    "select id, national_id n from customers order by n",
    "select id, national_id || '' from customers order by 2 limit 1",
    "select id, ascii(national_id) a, count(*) from customers group by rollup (1, 2)",
    # a named window's ORDER BY
    "select row_number() over w from customers window w as (order by national_id)",
    # CTE, UNION branches, a set operation's own ORDER BY … LIMIT
    "with w as (select id from customers where national_id = 'x') select id from w",
    "with w as (select id from customers order by national_id limit 1) select 1 from w",
    "select id from customers union all select id from customers where national_id = 'x'",
    "select 1 union all select id from customers order by 1"
    " limit 1 offset (select ascii(national_id) from customers limit 1)",
    # count(expr) counts where expr is not null: its sources
    "select count(nullif(g <= ascii(substr(national_id, 1, 1)), false))"
    " from customers, generate_series(1, 127) g",
    "select count(case when ascii(substr(national_id, 1, 1)) >= g then 1 end)"
    " from customers, generate_series(1, 127) g",
    "select count(v) from (select nullif(g <= ascii(substr(national_id, 1, 1)), false) v"
    " from customers, generate_series(1, 127) g) s",
    "select count(distinct g <= ascii(national_id)) from customers, generate_series(1, 127) g",
])
def test_what_picks_or_orders_rows_reaches_every_column(sql: str) -> None:
    assert all(masked(sql)), columns(sql)


@pytest.mark.parametrize(("sql", "expected"), [
    # count(*) and count of a column read straight from a table are numbers of rows
    ("select count(national_id), count(*), count(c.email) from customers c",
     [False, False, False]),
    # clean filters, joins and orders keep clean columns clean
    ("select id, email from customers where email like 'a%' order by email limit 3",
     [False, False]),
    ("select c.id, o.status from customers c join orders o on o.customer_id = c.id",
     [False, False]),
    ("select id from customers c join orders o using (id)", [False]),
    ("with w as (select id from customers where id > 1) select id from w", [False]),
    ("select id from customers union select customer_id from orders order by 1", [False]),
])
def test_clean_filters_and_orders_keep_columns_clean(sql: str, expected: list[bool]) -> None:
    assert masked(sql) == expected, columns(sql)


@pytest.mark.parametrize(("sql", "target"), [
    ("update orders set status = 'x' where customer_id in"
     " (select id from customers where national_id like 'N%')", "status"),
    # an updated row is written anew at the table's end: a plain read's order shows which
    ("update orders set status = status where id = (select ascii(national_id) from customers"
     " limit 1)", "id"),
    ("insert into customers (id) values (1) on conflict (national_id) do update"
     " set email = 'a'", "full_name"),
    ("update orders o set status = 'x' from customers c"
     " where c.id = o.customer_id and ascii(c.national_id) > 77", "status"),
    ("update orders o set status = 'x' from customers c join orders p"
     " on ascii(c.national_id) = p.id where o.id = p.id", "status"),
    ("delete from orders where id = (select ascii(national_id) from customers limit 1)", "id"),
    ("delete from orders o using customers c where c.id = o.customer_id"
     " and c.national_id like 'N%'", "status"),
    ("merge into orders o using customers c on c.id = o.customer_id"
     " and c.national_id like 'N%' when matched then update set status = 'x'", "status"),
    ("merge into orders o using customers c on c.id = o.customer_id"
     " when matched and c.national_id like 'N%' then delete", "id"),
    ("insert into orders (status) select 'x' from customers where national_id like 'N%'",
     "status"),
])
def test_a_write_whose_rows_a_masked_column_picks_carries_it(sql: str, target: str) -> None:
    lineage = analyzer().statement(tree(sql))
    table = "customers" if "into customers" in sql else "orders"
    written = {t.column: lin for t, lin in lineage.writes if t.table == table}
    assert NID in written.get(target, frozenset()), lineage.writes


def test_returning_of_a_write_picked_by_a_masked_column_carries_it() -> None:
    assert masked("update orders set status = 'x' where id ="
                  " (select ascii(national_id) from customers limit 1) returning id") == [True]
    assert masked("update orders set status = 'x' where id = 1 returning id") == [False]


def test_a_clean_update_writes_nothing_masked() -> None:
    lineage = analyzer().statement(tree("update orders set status = 'x' where id = 1"))
    assert all(NID not in lin for _, lin in lineage.writes)


@pytest.mark.parametrize(("sql", "expected"), [
    # plain DISTINCT and UNION / INTERSECT / EXCEPT compare whole rows: the multiplicity of
    # ``k`` says whether ``g <= ascii(…)`` changes between k and k + 1
    ("select k, count(*) from (select distinct k, k + d <= ascii(national_id) from customers,"
     " generate_series(1, 127) k, generate_series(0, 1) d) s group by k", [True, True]),
    ("select k from (select k, k + d <= ascii(national_id) from customers,"
     " generate_series(1, 127) k, generate_series(0, 1) d union select 1, true) s", [True]),
    ("select id, 1 from customers except select 0, ascii(national_id) from customers",
     [True, True]),
    # a function in FROM sees the items before it (no LATERAL needed): followed, not unknown
    ("select k, g from generate_series(1, 9) k, generate_series(k, k + 1) g", [False, False]),
    ("select id from customers union all select 1", [False]),
    ("select distinct id, email from customers", [False, False]),
    # a VALUES list's own LIMIT
    ("values (1), (2) order by 1 limit (select ascii(national_id) from customers limit 1)",
     [True]),
    # ON CONFLICT over a masked arbiter confirms a guess
    ("insert into customers (id, national_id) values (1, 'x') on conflict (national_id)"
     " do nothing returning id", [True]),
    ("insert into customers (id, national_id) values (1, 'x') on conflict do nothing"
     " returning id", [True]),
    ("insert into customers (id) values (1) on conflict (id) do update set email = 'a'"
     " where customers.national_id > 'M' returning id", [True]),
    ("insert into customers (id, national_id) values (1, 'x') on conflict (id) do nothing"
     " returning id", [False]),
])
def test_row_multiplicity_and_arbiters(sql: str, expected: list[bool]) -> None:
    assert masked(sql) == expected, columns(sql)


def test_a_view_whose_query_a_masked_column_filters_shapes_what_reads_it() -> None:
    class WithView(Catalog):
        def relations(self, name: str) -> list[Relation] | None:
            if name == "picked":
                return [Relation("public", "picked", "v", ("id",),
                                 "SELECT customers.id FROM customers"
                                 " WHERE ascii(customers.national_id) > 77")]
            return RELATIONS.get(name, [])

    a = Analyzer(WithView(), lambda s: s.column == "national_id")
    for sql in ("select count(*) from picked", "select 1 from picked", "select id from picked",
                "update picked set id = 1 returning 1"):
        lineage = a.statement(tree(sql))
        assert lineage.columns is not None and NID in lineage.columns[0], sql
    # written through, the view's base table is written on the rows its WHERE picks
    lineage = a.statement(tree("update picked set id = 1"))
    assert any(t.table == "customers" and NID in lin for t, lin in lineage.writes)


def test_cluster_orders_a_table_by_what_it_holds() -> None:
    lineage = analyzer().statement(tree("cluster customers using customers_nid_idx"))
    assert any(t.table == "customers" and NID in lin for t, lin in lineage.writes)
    assert analyzer().statement(tree("cluster orders using orders_pkey")).writes == ()
