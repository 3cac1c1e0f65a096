"""Issue 14, second round of an outside attacker's leaks through the real gateway on a real
PostgreSQL: CTE names in nested queries, recursive CTEs, values kept by built-in functions,
code PostgreSQL runs implicitly (aggregates, operators, constraints, domains) and error
details quoting existing rows. Each test checks the seeded national ids never come back in
clear (and, where the attack needs it, that the statement really moved them on the target)."""

from __future__ import annotations

import psycopg
import pytest

from store import SqliteStore
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


DIGITS = "regexp_replace(national_id, '\\D', '', 'g')::bigint"


def leaked_digits(values: list[str], text: str) -> list[str]:
    """National ids, as the numbers ``DIGITS`` makes of them, that appear in ``text``."""
    return [v for v in values if "".join(c for c in v if c.isdigit()) in text] + leaked(
        values, text)


def test_a_value_kept_by_setval_is_masked_when_read_back(gateway: Gateway,
                                                         tables: list[str]) -> None:
    seq = name()
    tables.append(seq)
    with psycopg.connect(gateway.target.direct(), autocommit=True) as conn:
        conn.execute(f"create sequence {seq}")
    values = seeded(gateway)
    reads = [f"select currval('{seq}')",
             f"select last_value from pg_sequences where sequencename = '{seq}'",
             f"select pg_sequence_last_value('{seq}')"]
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        # Kept even by a statement that fails (setval is not undone).
        with pytest.raises(psycopg.Error):
            conn.execute(f"select setval('{seq}', {DIGITS}), id / (id - 4) from customers"
                         " where id = 4")
        out = str([conn.execute(q).fetchall() for q in reads])
        # An error quoting it (P7) is masked, and recorded masked.
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"select ('nid=' || currval('{seq}'))::int")
        error = str(info.value.diag.message_primary)
    # Another session reads it in the catalog.
    out += through(gateway, f"select last_value from pg_sequences where sequencename = '{seq}'")
    # The failed statement kept the fourth customer's id.
    assert leaked_digits(values[3:4], direct(gateway, f"select last_value from {seq}"))
    assert not leaked_digits(values, out), out[:400]
    assert not leaked_digits(values, error), error

    def errors(store: SqliteStore) -> list[str] | None:
        found = [r["error"] for s in store.sessions() if s["connection"] == "shop_masked"
                 for r in store.statements(s["id"]) if r["error"]]
        return found if len(found) >= 2 else None  # the division's, the cast's

    recorded = gateway.wait_for(errors) or []
    assert not leaked_digits(values, " ".join(recorded)), recorded


def test_a_value_kept_by_an_advisory_lock_is_masked_in_pg_locks(gateway: Gateway) -> None:
    values = seeded(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        # Refused since round 11: another session's pg_try_advisory_lock finds the lock.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="masking-effects"):
            conn.execute(f"select pg_advisory_lock({DIGITS}) from customers where id = 2")
        held = str(conn.execute("select classid, objid, objsubid from pg_locks"
                                " where locktype = 'advisory'").fetchall())
        with psycopg.connect(gateway.target.direct()) as plain:
            clear = str(plain.execute(
                "select ((classid::int8 << 32) | objid::int8) from pg_locks"
                " where locktype = 'advisory'").fetchall())
        other = through(gateway, "select ((classid::int8 << 32) | objid::int8) from pg_locks"
                                 " where locktype = 'advisory'")
    assert not leaked_digits(values, clear + held + other), clear + held + other


def test_a_large_object_made_of_a_masked_value_fails_closed(gateway: Gateway) -> None:
    values = seeded(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        # Refused since round 11 (code the gateway cannot follow, given a masked value).
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="masking-effects"):
            conn.execute(f"select lo_from_bytea({DIGITS}::oid, convert_to(national_id,"
                         " 'UTF8')) from customers where id = 5")
        made = [1]
        try:
            out = str(conn.execute("select convert_from(lo_get(l.oid), 'UTF8')"
                                   " from pg_largeobject_metadata l").fetchall())
            out += str(conn.execute("select * from pg_largeobject_metadata").fetchall())
        finally:
            with psycopg.connect(gateway.target.direct(), autocommit=True) as plain:
                plain.execute("select lo_unlink(oid) from pg_largeobject_metadata")
    assert made and not leaked_digits(values, out), out[:400]


def copier(loot: str, fn: str, args: str, returns: str) -> str:
    """A PL/pgSQL function that copies its last argument into ``loot``."""
    return (f"create function {fn}({args}) returns {returns} language plpgsql as $$"
            f" begin insert into {loot} values (${args.count(',') + 1}); return $1; end $$")


@pytest.mark.parametrize("attack", [
    # A user aggregate's state function
    ["{copy_sf}", "create aggregate {agg}(text) (sfunc = {fn}, stype = text)",
     "select {agg}(national_id) is null from customers"],
    # An operator's function
    ["{copy_op}", "create operator {op} (rightarg = text, function = {fn})",
     "select ({op} national_id) is null from customers"],
    # A CHECK constraint added to the table: run on every existing row
    ["{copy_ck}", "alter table customers add constraint {agg} check ({fn}(id, national_id))",
     "alter table customers drop constraint {agg}"],
    # A domain's CHECK, run by a cast into it
    ["{copy_ck}", "create domain {agg} as text check ({fn}(0, value))",
     "select national_id::{agg} is null from customers"],
])
def test_code_run_by_aggregates_operators_checks_and_domains_is_followed(
        gateway: Gateway, tables: list[str], attack: list[str]) -> None:
    loot, fn, agg = name(), name(), name()
    tables += [loot, fn, agg]
    op = "###"
    words = {"copy_sf": copier(loot, fn, "s text, v text", "text"),
             "copy_op": copier(loot, fn, "v text", "text"), "agg": agg, "fn": fn, "op": op,
             "copy_ck": copier(loot, fn, "k int, v text", "boolean").replace(
                 "return $1", "return true")}
    values = seeded(gateway)
    out = through(gateway, f"create table {loot} (v text)",
                  *(step.format(**words) for step in attack), f"select * from {loot}")
    with psycopg.connect(gateway.target.direct(), autocommit=True) as conn:
        copied = str(conn.execute(f"select * from {loot}").fetchall())
        if "operator" in attack[1]:
            conn.execute(f"drop operator {op} (none, text)")
    assert leaked(values, copied), "the attack copied nothing"
    assert not leaked(values, out), out[:400]


def test_an_integrity_error_quoting_an_existing_row_is_masked(gateway: Gateway,
                                                              tables: list[str]) -> None:
    ranges = name()
    tables.append(ranges)
    values = seeded(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"create table {ranges} (r int8range, exclude using gist (r with &&))")
        conn.execute(f"insert into {ranges} select int8range({DIGITS}, {DIGITS} + 1)"
                     " from customers where id = 11")
        # The failing statement reads no masked column: the DETAIL quotes the existing key.
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"insert into {ranges} values (int8range(1, 9999999999))")
        diag = info.value.diag
        quoted = f"{diag.message_primary} {diag.message_detail} {diag.message_hint}"
        conn.execute("select 1").fetchall()  # the session goes on
    with psycopg.connect(gateway.target.direct(), autocommit=True) as conn, \
            pytest.raises(psycopg.Error) as clear:
        conn.execute(f"insert into {ranges} values (int8range(1, 9999999999))")
    assert leaked_digits(values, str(clear.value.diag.message_detail))
    assert info.value.sqlstate == "23P01"
    assert not leaked_digits(values, quoted), quoted
