"""Side effects whose amount or name a masked value decides: sequences moved once per row,
default-filled columns of the rows an INSERT adds, a refcursor's name (attack round 10)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.masking.lineage import UNKNOWN, Analyzer, Function, Lineage, Relation, Source, parse

CUSTOMERS = ("id", "full_name", "national_id")
RELATIONS = {
    "customers": [Relation("public", "customers", "r", CUSTOMERS)],
    "serials": [Relation("public", "serials", "r", ("id", "x"),
                         defaults=("nextval('serials_id_seq'::regclass)",))],
    "idents": [Relation("public", "idents", "r", ("id", "x"),
                        defaults=("pg_catalog.nextval(0)",))],
    "plain": [Relation("public", "plain", "r", ("id", "x"))],
    "vserials": [Relation("public", "vserials", "v", ("x",), "SELECT serials.x FROM serials")],
    "parted": [Relation("public", "parted", "p", ("id", "x"), family=("part1",))],
    "part1": [Relation("public", "part1", "r", ("id", "x"),
                       defaults=("nextval('parted_id_seq'::regclass)",), family=("parted",))],
    "pg_cursors": [Relation("pg_catalog", "pg_cursors", "v",
                            ("name", "statement", "is_holdable", "creation_time"))],
    "pg_prepared_statements": [Relation("pg_catalog", "pg_prepared_statements", "v",
                                        ("name", "statement", "prepare_time"))],
}
FUNCTIONS = {
    "bump": [Function("public", "bump", "plpgsql",
                      "begin for i in 1..n loop perform nextval('s'); end loop; return 1; end",
                      "create function bump(n int) returns int language plpgsql as $$"
                      "begin for i in 1..n loop perform nextval('s'); end loop; return 1; end"
                      "$$")],
    "fill": [Function("public", "fill", "plpgsql",
                      "begin for i in 1..n loop insert into plain(x) values (1); end loop;"
                      " return 1; end",
                      "create function fill(n int) returns int language plpgsql as $$"
                      "begin for i in 1..n loop insert into plain(x) values (1); end loop;"
                      " return 1; end$$")],
}
NID = Source("public", "customers", "national_id")
SEQ = ("pg_sequences", "last_value")
SHAPED = ("from customers c, generate_series(1, ascii(substr(c.national_id, 1, 1)))"
          " where c.id = 900")


class Catalog:
    def relations(self, name: str) -> list[Relation] | None:
        return RELATIONS.get(name, [])

    def functions(self, name: str) -> list[Function] | None:
        return FUNCTIONS.get(name, [])


def lineage(sql: str) -> Lineage:
    stmts = parse(sql)
    assert stmts is not None, sql
    return Analyzer(Catalog(), lambda s: s.column == "national_id",
                    names=lambda w: w == "national_id").statement(stmts[0])


def into(found: Lineage, table: str, column: str) -> frozenset[Source]:
    return frozenset().union(*(lin for t, lin in found.writes
                               if (t.table, t.column) == (table, column)))


@pytest.mark.parametrize("sql", [
    f"select count(*) from (select nextval('s') {SHAPED}) z",
    f"select nextval('s') {SHAPED}",
    "select 1 from customers c where case when ascii(c.national_id) > 77"
    " then nextval('s') > 0 else true end",
    "select coalesce(nullif(ascii(national_id), 78), nextval('s')) from customers",
    "select nextval(national_id) from customers",
    "select bump(ascii(national_id)) from customers",
    "select * from (select nextval('s') from generate_series(1, 1000)) z"
    " limit (select ascii(national_id) from customers limit 1)",
    # a serial's or an identity's default moves the sequence once per row inserted
    f"insert into serials(x) select 1 {SHAPED}",
    f"insert into idents(x) select 1 {SHAPED}",
    f"with w as (insert into serials(x) select 1 {SHAPED} returning 1) select 1",
    "select sum(nextval('s')) filter (where ascii(national_id) > g) from customers,"
    " generate_series(1, 127) g",
    "select ascii(national_id) in (78, nextval('s')) from customers",
    "select nextval('s') between 1 and ascii(national_id) from customers",
    "select ascii(national_id) = any (select nextval('s') from generate_series(1, 200))"
    " from customers",
    f"insert into vserials(x) select 1 {SHAPED}",
    f"insert into parted(x) select 1 {SHAPED}",
    "update serials set id = default where x = (select ascii(national_id) from customers"
    " limit 1)",
    "update serials set x = 1 from customers c where c.national_id like 'N%'"
    " and serials.x = nextval('s')",
])
def test_a_sequence_moved_as_a_masked_value_says_keeps_it(sql: str) -> None:
    found = lineage(sql)
    assert NID in into(found, *SEQ), found.writes
    assert found.keeps  # a sequence does not roll back with a failed statement


@pytest.mark.parametrize("sql", [
    "select nextval('s'), national_id from customers",
    "select nextval('s') from customers where id = 3",
    f"insert into plain(x) select 1 {SHAPED}",  # no default moves a sequence
    "update serials set x = 1 where x = (select ascii(national_id) from customers limit 1)",
    "insert into serials(x) select national_id from customers",
])
def test_a_sequence_moved_as_clean_rows_say_stays_clean(sql: str) -> None:
    assert NID not in into(lineage(sql), *SEQ)


@pytest.mark.parametrize("sql", [
    f"insert into plain(x) select 1 {SHAPED}",
    f"insert into serials(x) select 1 {SHAPED}",
    f"with w as (insert into serials(x) select 1 {SHAPED}) select 1",
    "insert into serials(x) select 1 from customers where national_id like 'N%'",
    "select fill(ascii(national_id)) from customers",
])
def test_rows_an_insert_adds_as_a_masked_value_says_taint_every_column(sql: str) -> None:
    found = lineage(sql)
    table = "plain" if "plain" in sql or "fill" in sql else "serials"
    assert NID in into(found, table, "\0any"), found.writes
    if "fill" not in sql:
        assert NID in into(found, table, "id")


def test_an_insert_of_clean_rows_leaves_its_defaults_clean() -> None:
    found = lineage("insert into serials(x) select national_id from customers")
    assert NID in into(found, "serials", "x")
    assert NID not in into(found, "serials", "id")


@pytest.mark.parametrize("sql, unknown", [
    ("select name, statement, is_holdable from pg_cursors", [True, True, False]),
    ("select name, statement from pg_catalog.pg_prepared_statements", [True, True]),
    ("select name from pg_cursor()", [True]),
    ("select * from pg_prepared_statement()", None),
    ("select ident from pg_backend_memory_contexts", [True]),
])
def test_names_chosen_at_run_time_are_lineage_unknown(sql: str,
                                                      unknown: list[bool] | None) -> None:
    found = lineage(sql)
    assert found.columns is not None
    got = [UNKNOWN in c for c in found.columns]
    assert got == (unknown or [True] * len(got)) and got


def test_nextval_with_no_masked_shape_is_not_kept(tmp_path: Any) -> None:
    found = lineage("select nextval('s')")
    assert not found.keeps and not into(found, *SEQ)
