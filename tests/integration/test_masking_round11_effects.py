"""Issue 14, the eleventh outside attack: effects other sessions observe, computed from a
masked value. A TimeZone set from ``ascii(substr(national_id, …))`` shifted every later
timestamptz; DateStyle chosen by a CASE over it was reported to the client; rows locked FOR
UPDATE by a join on it were skipped by another session's SKIP LOCKED; advisory locks taken
with it were found by another session's ``pg_try_advisory_lock``; notifications were
delivered or not; a PL/pgSQL loop of subtransactions as long as it said moved
``txid_current()``. Each such statement is now refused before it runs (rule
``gateway-masking-effects``), while the same effects from clean values, and plain reads and
writes of masked columns, run as before."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from tests.conftest import Gateway, Target, start_gateway, stop_gateway
from tests.integration.guarded import start_guarded

pytestmark = pytest.mark.integration

_ID = "(select min(id) from customers)"
RULE = "gateway-masking-effects"


@pytest.fixture(scope="module")
def gateway(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("masked14r11"))
    try:
        yield gw
    finally:
        stop_gateway(gw)


@pytest.fixture(scope="module")
def bare(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Masking without guardrail rules: DDL that the example policy holds runs at once."""
    gw = start_gateway(pg_target, tmp_path_factory.mktemp("masked14r11bare"))
    try:
        yield gw
    finally:
        stop_gateway(gw)


def national_id(gateway: Gateway) -> str:
    with psycopg.connect(gateway.target.direct()) as direct:
        row = direct.execute(f"select national_id from customers where id = {_ID}").fetchone()
    assert row is not None and row[0]
    return str(row[0])


def direct(gateway: Gateway, *sql: str) -> None:
    with psycopg.connect(gateway.target.direct(), autocommit=True) as conn:
        for statement in sql:
            conn.execute(statement)


def refused(conn: psycopg.Connection, sql: str) -> str:
    """The gateway's refusal of ``sql`` (it never reached the target)."""
    with pytest.raises(errors.InsufficientPrivilege) as caught:
        conn.execute(sql)
    assert RULE in str(caught.value), caught.value
    return str(caught.value)


@pytest.mark.parametrize(("setting", "value"), [
    ("TimeZone", "'<abc>+' || ascii(substr(national_id, 1, 1))"),
    ("DateStyle", "case when substr(national_id, 1, 1) = 'Z' then 'ISO, MDY' else 'SQL, DMY'"
                  " end"),
    ("IntervalStyle", "case when substr(national_id, 1, 1) = 'Z' then 'postgres'"
                      " else 'iso_8601' end"),
    ("extra_float_digits", "(ascii(substr(national_id, 1, 1)) % 3)::text"),
])
def test_a_setting_from_a_masked_value_is_refused(gateway: Gateway, setting: str,
                                                  value: str) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        before = conn.execute("select '2000-01-01 00:00:00+00'::timestamptz::text,"
                              " '1 day 2 hours'::interval::text, pi()::text,"
                              " current_setting(%s)", (setting,)).fetchone()
        status = conn.pgconn.parameter_status(setting.encode())
        why = refused(conn, f"select set_config('{setting}', {value}, false) from customers"
                            f" where id = {_ID}")
        assert "national_id" in why, why
        after = conn.execute("select '2000-01-01 00:00:00+00'::timestamptz::text,"
                             " '1 day 2 hours'::interval::text, pi()::text,"
                             " current_setting(%s)", (setting,)).fetchone()
        assert after == before
        assert conn.pgconn.parameter_status(setting.encode()) == status
        # The same setting from a clean value is set as before.
        conn.execute("select set_config('DateStyle', 'ISO, DMY', false)")
        assert conn.pgconn.parameter_status(b"DateStyle") == b"ISO, DMY"


def test_a_setting_set_by_a_function_given_a_masked_value_is_refused(gateway: Gateway) -> None:
    direct(gateway, "create or replace function gw14r11_tz(t text) returns int language plpgsql"
                    " as $$ begin perform set_config('TimeZone', '<x>+' || ascii(t), false);"
                    " return 0; end $$")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        refused(conn, f"select gw14r11_tz(national_id) from customers where id = {_ID}")
        assert conn.execute("select current_setting('TimeZone')").fetchone() != ("<x>+78",)
        assert conn.execute("select gw14r11_tz('a')").fetchone() == (0,)  # clean: runs


@pytest.mark.parametrize("strength", ["update", "no key update", "share", "key share"])
def test_rows_locked_by_a_masked_join_are_refused(gateway: Gateway, strength: str) -> None:
    nid = national_id(gateway)
    direct(gateway, "drop table if exists gw14r11_skl",
           "create table gw14r11_skl(p int, g int, primary key (p, g))",
           "insert into gw14r11_skl select p, g from generate_series(1, 12) p,"
           " generate_series(32, 126) g")
    lock = ("select 1 from gw14r11_skl t join customers c"
            " on t.g = ascii(substr(c.national_id, t.p, 1))"
            f" where c.id = {_ID} for {strength} of t")
    with psycopg.connect(gateway.dsn("shop_masked")) as a:  # a transaction stays open
        refused(a, lock)
        a.rollback()
        # Through the extended protocol, and through PREPARE, too.
        with pytest.raises(errors.InsufficientPrivilege):
            a.execute(lock, prepare=True)
        a.rollback()
        refused(a, f"prepare gw14r11_p as {lock}")
        a.rollback()
        # Clean rows are locked as before.
        assert a.execute(f"select count(*) from (select 1 from gw14r11_skl where p = 1"
                         f" for {strength}) z").fetchone() == (95,)
        with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as b:
            rows = b.execute("select p, g from gw14r11_skl where p > 1 order by p, g"
                             " for update skip locked").fetchall()
        assert len(rows) == 11 * 95
        assert (2, ord(nid[1])) in rows
        a.rollback()


def test_advisory_locks_from_a_masked_value_are_refused(gateway: Gateway) -> None:
    nid = national_id(gateway)
    probe = ("select p, g from generate_series(1, 9) p, generate_series(32, 126) g"
             " where not pg_try_advisory_lock_shared(g, p)")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as a:
        for fn in ("pg_advisory_lock", "pg_try_advisory_lock", "pg_advisory_lock_shared"):
            refused(a, f"select {fn}(ascii(substr(national_id, p, 1)), p) from customers,"
                       f" generate_series(1, 9) p where id = {_ID}")
        # Chosen by a masked value rather than computed from it: the same.
        refused(a, "select pg_advisory_lock(7, 7) from customers"
                   f" where id = {_ID} and national_id like '{nid[0]}%'")
        with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as b:
            assert b.execute(probe).fetchall() == []
        a.execute("select pg_advisory_lock(5, 5)")  # a clean one is taken
        assert a.execute("select count(*) from pg_locks where locktype = 'advisory'"
                         " and objid = 5 and pid = pg_backend_pid()").fetchone() == (1,)


def test_a_notification_from_a_masked_value_is_refused(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as listener:
        listener.execute("listen gw14r11_n")
        with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as a:
            refused(a, "select pg_notify('gw14r11_n', 'x') from customers"
                       f" where id = {_ID} and substr(national_id, 1, 1) < 'M'")
            refused(a, "select pg_notify('gw14r11_n', 'x') from customers"
                       f" where id = {_ID} and substr(national_id, 1, 1) >= 'M'")
            a.execute("notify gw14r11_n, 'clean'")  # a clean one is delivered
        got = [n for n in listener.notifies(timeout=2, stop_after=2)]
    assert len(got) == 1, got  # the clean one (its payload masked whole, as every one is)


def test_subtransactions_counted_by_a_masked_value_are_refused(gateway: Gateway) -> None:
    direct(gateway, "drop table if exists gw14r11_xw", "create table gw14r11_xw(x int)",
           "create or replace function gw14r11_burn(n int) returns int language plpgsql as"
           " $$ begin for i in 1..n loop begin insert into gw14r11_xw values (1);"
           " exception when others then null; end; end loop; return 0; end $$")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as a, \
            psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as b:
        first = b.execute("select txid_current()").fetchone()
        refused(a, "select gw14r11_burn(ascii(substr(national_id, 1, 1))) from customers"
                   f" where id = {_ID}")
        # And through a DO block that reads the value itself (the example policy blocks DO
        # blocks as such).
        with pytest.raises(errors.InsufficientPrivilege):
            a.execute("do $$ declare n int; begin select ascii(national_id) into n from customers"
                      " limit 1; for i in 1..n loop begin insert into gw14r11_xw values (1);"
                      " exception when others then null; end; end loop; end $$")
        second = b.execute("select txid_current()").fetchone()
        assert first is not None and second is not None and second[0] - first[0] < 5
        assert a.execute("select gw14r11_burn(3)").fetchone() == (0,)  # clean: runs


def test_a_trigger_that_locks_what_a_masked_value_wrote_is_refused(gateway: Gateway) -> None:
    direct(gateway, "drop table if exists gw14r11_tr",
           "create table gw14r11_tr(v text)",
           "create or replace function gw14r11_trf() returns trigger language plpgsql as"
           " $$ begin perform pg_advisory_lock(ascii(new.v)); return new; end $$",
           "create trigger gw14r11_t before insert on gw14r11_tr for each row"
           " execute function gw14r11_trf()")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as a:
        refused(a, f"insert into gw14r11_tr select national_id from customers where id = {_ID}")
        a.execute("insert into gw14r11_tr values ('clean')")


def test_a_view_over_the_column_named_otherwise_is_followed(gateway: Gateway) -> None:
    direct(gateway, "create or replace view gw14r11_v as select id, national_id as n"
                    " from customers")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as a:
        refused(a, f"select pg_advisory_lock(ascii(n)) from gw14r11_v where id = {_ID}")


def test_plain_reads_writes_and_clean_effects_still_run(gateway: Gateway) -> None:
    nid = national_id(gateway)
    direct(gateway, "create or replace function gw14r11_twice(t text) returns text"
                    " language sql as $$ select t || t $$",
           "drop table if exists gw14r11_w", "create table gw14r11_w(id int, v text)",
           "insert into gw14r11_w select g, 'x' from generate_series(1, 5) g")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        rows = conn.execute(f"select national_id, gw14r11_twice(national_id) from customers"
                            f" where id = {_ID}").fetchall()
        assert rows and nid not in str(rows)
        conn.execute("update gw14r11_w set v = 'y' where id = (select ascii(national_id) % 5"
                     f" from customers where id = {_ID})")
        assert nid[0] not in str(conn.execute("select id, v from gw14r11_w").fetchall())
        assert conn.execute("select count(*) from (select 1 from gw14r11_w for update) z"
                            ).fetchone() == (5,)
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        # A row locked by a clean column, whatever the columns shown (an ORM's way).
        rows = conn.execute(f"select id, national_id from customers where id = {_ID}"
                            " for update").fetchall()
        assert len(rows) == 1 and nid not in str(rows)
        conn.rollback()
        conn.execute("select pg_advisory_unlock_all()")




def test_a_function_made_in_the_same_transaction_is_not_judged_as_cached(
        gateway: Gateway) -> None:
    """The catalog, read on a connection of the gateway's own, shows neither a function made
    in a transaction not committed yet nor one replaced there: a call of a user's function
    reading a masked value after DDL in its transaction (or earlier in its text) is
    refused."""
    make = ("create function gw14r11_new{n}(t text) returns int language plpgsql"
            " as $$ begin perform pg_advisory_lock(ascii(t)); return 0; end $$")
    call = "select gw14r11_new{n}(national_id) from customers where id = " + _ID
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        conn.execute(make.format(n=1))
        refused(conn, call.format(n=1))
        conn.rollback()
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match=RULE):
            conn.execute(f"{make.format(n=2)}; {call.format(n=2)}")
    with psycopg.connect(gateway.target.direct()) as plain:
        assert plain.execute("select count(*) from pg_locks where locktype = 'advisory'"
                             ).fetchone() == (0,)


def test_a_trigger_made_in_the_same_transaction_is_not_judged_as_cached(
        bare: Gateway) -> None:
    gateway = bare
    direct(gateway, "drop table if exists gw14r11_tt", "create table gw14r11_tt(v text)",
           "drop function if exists gw14r11_ttf()")
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        conn.execute("create function gw14r11_ttf() returns trigger language plpgsql as"
                     " $$ begin perform pg_advisory_lock(ascii(new.v)); return new; end $$")
        conn.execute("create trigger gw14r11_tt before insert on gw14r11_tt for each row"
                     " execute function gw14r11_ttf()")
        refused(conn, f"insert into gw14r11_tt select national_id from customers"
                      f" where id = {_ID}")
        conn.rollback()
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        # A migration's ALTER TABLE then a write from a masked column: runs as before.
        conn.execute("alter table gw14r11_tt add column w int")
        conn.execute(f"insert into gw14r11_tt select national_id from customers"
                     f" where id = {_ID}")
        conn.rollback()
