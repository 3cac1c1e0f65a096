"""Lineage: result columns followed back to table columns through the parse tree."""

from __future__ import annotations

from typing import Any

import pytest

from engine.masking.lineage import UNKNOWN, Analyzer, Function, Relation, Source, parse

CUSTOMERS = ("id", "full_name", "email", "card_number", "national_id")
RELATIONS = {
    "customers": [Relation("public", "customers", "r", CUSTOMERS)],
    "orders": [Relation("public", "orders", "r", ("id", "customer_id", "status"))],
    "v": [Relation("public", "v", "v", ("nid", "x"),
                   "SELECT customers.national_id AS nid, 1 AS x FROM customers")],
    "vv": [Relation("public", "vv", "v", ("y",), "SELECT v.nid AS y FROM v")],
    "pg_stats": [Relation("pg_catalog", "pg_stats", "v",
                          ("tablename", "attname", "most_common_vals", "histogram_bounds"))],
}
FUNCTIONS = {
    "upper": [Function("pg_catalog", "upper", "internal", "")],
    "leak": [Function("public", "leak", "plpgsql",
                      "begin return (select national_id from customers limit 1); end")],
    "dyn": [Function("public", "dyn", "plpgsql", "begin execute 'select 1'; end")],
    "rows_of": [Function("public", "rows_of", "sql", "select * from customers")],
    "safe": [Function("public", "safe", "sql", "select $1 || 'x'")],
    "perl": [Function("public", "perl", "plperl", "return 1")],
    # A user aggregate, operator and domain run these functions (as the catalog gives them).
    "leakagg": [Function("public", "leakagg", "aggregate", "public.leak pg_catalog.textcat")],
    "operator:###": [Function("public", "operator:###", "operator", "public.leak")],
    "operator:||": [Function("pg_catalog", "operator:||", "operator", "pg_catalog.textcat")],
    "type:leakdom": [Function("public", "type:leakdom", "type", "public.leak",
                              '["(perl() IS NULL)"]')],
}
NID = Source("public", "customers", "national_id")


class Catalog:
    def __init__(self, known: bool = True) -> None:
        self.known = known

    def relations(self, name: str) -> list[Relation] | None:
        return RELATIONS.get(name, []) if self.known else None

    def functions(self, name: str) -> list[Function] | None:
        return FUNCTIONS.get(name, []) if self.known else None


def tree(sql: str) -> dict[str, Any]:
    stmts = parse(sql)
    assert stmts is not None, sql
    return stmts[0]


def analyzer(known: bool = True) -> Analyzer:
    return Analyzer(Catalog(known), lambda s: s.column == "national_id",
                    names=lambda w: w == "national_id")


def columns(sql: str) -> list[set[str]]:
    lineage = analyzer().statement(tree(sql))
    assert lineage.columns is not None, sql
    return [{"?" if s == UNKNOWN else f"{s.table}.{s.column}" for s in c}
            for c in lineage.columns]


def masked(sql: str) -> list[bool]:
    return [("customers.national_id" in c or "?" in c) for c in columns(sql)]


@pytest.mark.parametrize("sql", [
    "select national_id || '' from customers",
    "select national_id::varchar from customers",
    "select cast(national_id as text) from customers",
    "select reverse(email) || national_id from customers",
    "select upper(n) from (select national_id as n from customers) s",
    "select c from customers c",
    "select row_to_json(c) from customers c",
    "select to_jsonb(c.*) from customers c",
    "select (c).national_id from customers c",
    "select encode(national_id::bytea, 'base64') from customers",
    "select substr(national_id, 1, 3) from customers",
    "select translate(national_id, '1', '2') from customers",
    "select regexp_replace(national_id, 'x', 'y') from customers",
    "select split_part(national_id, '-', 2) from customers",
    "select xmlelement(name x, national_id) from customers",
    "select ascii(national_id) from customers",
    "select nid from v",
    "select y from vv",
    "select x.nid || '' from v x",
    "with w as (select national_id from customers) select * from w",
    "with w(a) as (select national_id from customers) select a from w",
    "with recursive r(n) as (select national_id from customers union all select n from r)"
    " select n from r",
    "select id::text from customers union select national_id from customers",
    "select (select national_id from customers limit 1)",
    "select array(select national_id from customers)",
    "select case when id = 1 then national_id else 'x' end from customers",
    "select coalesce(national_id, 'x') from customers",
    "select greatest(national_id, 'a') from customers",
    "select string_agg(national_id, ',') from customers",
    "select json_agg(c) from customers c",
    "select f.v from customers c, lateral (select c.national_id) f(v)",
    "select j from (customers c join orders o on c.id = o.customer_id) j",
    "select leak()",
    "select dyn()",
    "select perl()",
    "select national_id from rows_of()",
    "select most_common_vals from pg_stats",
    "select histogram_bounds::text from pg_stats",
    "select query_to_xml('select 1', true, true, '')",
    "select national_id from customers for update",
    "values ((select national_id from customers limit 1))",
    "select format('%s', national_id) from customers",
    "select national_id collate \"C\" from customers",
    "select (national_id)[1] from customers",
])
def test_each_variant_depends_on_the_masked_column(sql: str) -> None:
    assert masked(sql) == [True], columns(sql)


@pytest.mark.parametrize(("sql", "expected"), [
    ("select id, national_id || '' as n, email from customers", [False, True, False]),
    ("select * from customers", [False, False, False, False, True]),
    ("select c.*, o.status from customers c join orders o on o.customer_id = c.id",
     [False, False, False, False, True, False]),
    ("select * from customers c join orders o using (id)",
     [False, False, False, False, True, False, False]),
    ("select count(national_id), count(*) from customers", [False, False]),
    ("select safe(email), safe('a'), upper(email) from customers", [False, False, False]),
    ("select attname, tablename from pg_stats", [False, False]),
    ("select id from customers where national_id = 'x'", [True]),  # picked by it
    ("select 1, 'a'", [False, False]),
])
def test_only_dependent_columns_are_masked(sql: str, expected: list[bool]) -> None:
    assert masked(sql) == expected, columns(sql)


@pytest.mark.parametrize("sql", [
    "update customers set full_name = national_id returning full_name",
    "insert into orders (status) select national_id from customers returning status",
    "delete from customers returning national_id || ''",
    "copy (select upper(national_id) from customers) to stdout",
])
def test_returning_and_copy_follow_the_data(sql: str) -> None:
    assert masked(sql)[0], columns(sql)


def test_copy_of_a_table_lists_its_columns() -> None:
    assert masked("copy customers to stdout") == [False, False, False, False, True]
    assert masked("copy customers (email, national_id) to stdout") == [False, True]


def test_reads_include_filters_and_unknown_functions() -> None:
    a = analyzer()
    assert NID in a.statement(tree("select id from customers where national_id > ''")).reads
    assert UNKNOWN in a.statement(tree("select leak()")).reads
    assert UNKNOWN in a.statement(
        tree("do $$ begin raise notice '%', (select national_id from customers); end $$")
    ).reads
    assert not a.statement(tree("do $$ begin raise notice 'hi'; end $$")).reads


def test_names_not_looked_up_are_reported_missing() -> None:
    lineage = analyzer(known=False).statement(tree("select upper(x) from customers, t"))
    assert lineage.missing.relations == {"customers", "t"}
    assert lineage.missing.functions == {"upper"}


def test_cursors_and_prepared_statements_are_followed() -> None:
    a = analyzer()
    for sql, kind in (("declare c cursor for select national_id || '' from customers",
                       "DeclareCursorStmt"),
                      ("prepare p as select upper(national_id) from customers", "PrepareStmt")):
        a.learn(a.statement(tree(sql)), kind)
    fetched = a.statement(tree("fetch 10 from c")).columns
    executed = a.statement(tree("execute p")).columns
    assert fetched is not None and NID in fetched[0]
    assert executed is not None and NID in executed[0]
    assert UNKNOWN in a.statement(tree("fetch 1 from never_declared")).reads


def test_writes_are_reported() -> None:
    lineage = analyzer().statement(tree(
        "create table t2 as select national_id as n from customers"))
    assert any(target.column == "n" and NID in lin for target, lin in lineage.writes)


def test_a_statement_that_does_not_parse_has_no_lineage() -> None:
    assert parse("selec 1") is None


# A CTE named like a real table (``orders``, clean) and read where the walk used to forget
# the WITH: inside a scalar subquery, ARRAY(...), EXISTS, a lateral item, a set-op branch, a
# nested WITH, or an INSERT's SELECT (its RETURNING, and what it writes).
@pytest.mark.parametrize("sql", [
    "with orders as (select c.* from customers c)"
    " select array(select concat_ws('|', orders.national_id) from orders)::text",
    "with orders as (select national_id as status from customers)"
    " select (select status from orders limit 1)",
    "with orders as (select national_id as status from customers)"
    " select x.s from (select 1) o, lateral (select status from orders) x(s)",
    "with orders as (select national_id as status from customers)"
    " select 'a' union all select (select status from orders limit 1)",
    "with orders as (select national_id as status from customers)"
    " select (with z as (select status from orders) select status from z limit 1)",
    "with orders as (select national_id as status from customers)"
    " select s from (select (select array_agg(status) from orders) as s) q",
])
def test_a_cte_is_visible_in_every_nested_query(sql: str) -> None:
    assert masked(sql) == [True], columns(sql)


def test_an_inner_cte_shadows_an_outer_one_and_a_view_sees_none() -> None:
    # The inner WITH's ``orders`` is clean; the outer one is not read.
    assert masked("with orders as (select national_id as status from customers)"
                  " select (with orders as (select 'x' as status) select status from orders)"
                  ) == [False]
    # A view's query names the real table even where the statement has a CTE of its name.
    assert masked("with customers as (select 'x' as national_id) select nid from v") == [True]


def test_an_insert_select_through_a_cte_taints_the_target() -> None:
    lineage = analyzer().statement(tree(
        "with orders as (select national_id as status from customers)"
        " insert into orders (status) select (select status from orders limit 1)"))
    assert any(target.table == "orders" and NID in lin for target, lin in lineage.writes)


def test_a_recursive_cte_is_followed_to_a_fixed_point() -> None:
    # The value reaches column ``e`` at the fifth step.
    sql = ("with recursive r(a, b, c, d, e, k) as ("
           " select national_id, '', '', '', '', 0 from customers"
           " union all select '', a, b, c, d, k + 1 from r where k < 9)"
           " select e from r")
    assert masked(sql) == [True], columns(sql)
    # Columns the value never reaches stay clean.
    assert masked("with recursive r(a, k) as (select 'x', 0 union all"
                  " select a, k + 1 from r where k < 9) select a, k from r") == [False, False]


def test_built_ins_that_keep_a_value_write_where_it_is_read_back() -> None:
    lineage = analyzer().statement(tree("select setval('s', length(national_id)) from customers"))
    assert lineage.keeps and any(t.table == "pg_sequences" and NID in lin
                                 for t, lin in lineage.writes)
    lineage = analyzer().statement(tree(
        "select pg_try_advisory_xact_lock_shared(length(national_id)) from customers"))
    assert {t.column for t, lin in lineage.writes if NID in lin} == {
        "classid", "objid", "objsubid"}
    lineage = analyzer().statement(tree("select lo_from_bytea(0, national_id::bytea)"
                                        " from customers"))
    assert lineage.opaque is not None
    # Large objects of values from no masked column are left alone.
    assert analyzer().statement(tree("select lo_from_bytea(0, 'x')")).opaque is None


@pytest.mark.parametrize("sql", [
    "select leakagg(email) from customers",
    "select ### 'a'",
    "select email::leakdom from customers",
])
def test_code_of_aggregates_operators_and_domains_is_judged(sql: str) -> None:
    assert masked(sql) == [True], columns(sql)


def test_built_in_operators_and_casts_keep_lineage() -> None:
    assert masked("select email || 'x', id::text from customers") == [False, False]
    assert masked("select national_id || 'x' from customers") == [True]


def test_index_expressions_and_constraints_follow_their_functions() -> None:
    for sql in ("create index on customers (safe(national_id))",
                "alter table customers add constraint k check (safe(national_id) <> '')"):
        lineage = analyzer().statement(tree(sql))
        assert lineage.opaque is None, sql
    # An ALTER DOMAIN's CHECK runs on values of any table: its functions get unknown ones.
    lineage = analyzer().statement(tree("alter domain d add constraint k check (perl())"))
    assert lineage.opaque is not None


def test_a_cast_into_a_domain_runs_its_checks() -> None:
    # The CHECK calls a function in a language the gateway cannot read: opaque.
    assert analyzer().statement(tree("select email::leakdom from customers")).opaque
