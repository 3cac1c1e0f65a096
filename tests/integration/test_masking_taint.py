"""Issue 14, taint of copied data through the real gateway: values of a masked column copied
into another table by code the statement runs (DO blocks, functions, procedures, triggers,
rules), by DDL (CREATE TABLE AS, SELECT INTO, a renamed column), through views, CTEs and
prepared statements, stay masked when read back, in this session, in others, and after the
engine restarts. Checked against the values seeded on the target; reads of tables that hold no
such value are left alone."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import Gateway, Target, need, start_gateway, stop_gateway
from tests.integration.test_masking_lineage import leaked, seeded
from tests.integration.test_workers import Workers, on_each_worker, workers

__all__ = ["workers"]  # the module's fixture: an engine with two workers

pytestmark = pytest.mark.integration


def name() -> str:
    return "tt_" + secrets.token_hex(4)


@pytest.fixture
def tables(gateway: Gateway) -> Iterator[list[str]]:
    """Names of objects a test creates on the (shared) target: dropped afterwards."""
    made: list[str] = []
    yield made
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        for n in reversed(made):
            for kind in ("view", "table", "sequence"):
                try:
                    direct.execute(f"drop {kind} if exists {n} cascade")
                except psycopg.Error:
                    pass
            try:
                direct.execute(f"drop routine if exists {n} cascade")
            except psycopg.Error:
                pass


def read_back(gateway: Gateway, *queries: str) -> tuple[str, str]:
    """What the queries return through the gateway (a new session) and directly."""
    through, direct_rows = [], []
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        for q in queries:
            through += conn.execute(q).fetchall()
    with psycopg.connect(gateway.target.direct()) as direct:
        for q in queries:
            direct_rows += direct.execute(q).fetchall()
    return str(through), str(direct_rows)


def assert_masked(gateway: Gateway, *queries: str) -> None:
    values = seeded(gateway)
    through, direct = read_back(gateway, *queries)
    assert leaked(values, direct), f"the copy holds no national id: {direct[:200]}"
    assert not leaked(values, through), through[:400]


def test_a_do_block_that_copies_a_masked_column(gateway: Gateway, tables: list[str]) -> None:
    need("psql")
    notes = name()
    tables.append(notes)
    out = subprocess.run(
        ["psql", gateway.dsn("shop_masked"), "-X", "-v", "ON_ERROR_STOP=1", "-c",
         f"create table {notes} (id serial, body text)", "-c",
         f"do $$begin insert into {notes} (body) select national_id from customers"
         f" order by id limit 20; end$$", "-A", "-t", "-c", f"select * from {notes}"],
        capture_output=True, text=True, env=gateway.env(), timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    values = seeded(gateway)
    assert out.stdout.strip() and not leaked(values, out.stdout), out.stdout[:300]
    assert_masked(gateway, f"select * from {notes}", f"select body || '' from {notes}")


@pytest.mark.parametrize("body", [
    # PL/pgSQL: straight, through a variable, from the argument, in a procedure that commits
    "language plpgsql as $$begin insert into {t} (body) select national_id from customers"
    " order by id limit 20; end$$",
    "language plpgsql as $$declare v text; begin for i in 1..5 loop"
    " select national_id into v from customers where id = i; insert into {t} (body)"
    " values (v); end loop; end$$",
    # SQL bodies: plain and SQL-standard
    "language sql as $$insert into {t} (body) select national_id from customers order by id"
    " limit 20$$",
    "language sql begin atomic insert into {t} (body) select national_id || '' from customers"
    " order by id limit 20; end",
], ids=["plpgsql", "variable", "sql", "atomic"])
def test_a_function_that_copies_a_masked_column(
        gateway: Gateway, tables: list[str], body: str) -> None:
    notes, fn = name(), name()
    tables += [notes, fn]
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"create table {notes} (id serial, body text)")
        conn.execute(f"create function {fn}() returns void " + body.format(t=notes))
        conn.execute(f"select {fn}()")
        rows = conn.execute(f"select body from {notes}").fetchall()
    assert rows and not leaked(seeded(gateway), str(rows))
    assert_masked(gateway, f"select * from {notes}")


def test_a_function_that_copies_its_argument_and_one_created_on_the_target(
        gateway: Gateway, tables: list[str]) -> None:
    notes, fn, other = name(), name(), name()
    tables += [notes, fn, other]
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        # created directly on the target: the gateway learns of it from the catalog
        direct.execute(f"create table {notes} (id serial, body text)")
        direct.execute(f"create function {fn}(x text) returns int language plpgsql as"
                       f" $$begin insert into {notes} (body) values (x); return 1; end$$")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"select {fn}(national_id) from customers order by id limit 10")
        # replaced on the target behind the gateway's back, then called again
        conn.execute(f"select {fn}('nothing')")
        with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
            direct.execute(f"create table {other} (v text)")
            direct.execute(f"create or replace function {fn}(x text) returns int"
                           f" language plpgsql as $$begin insert into {other}"
                           f" select national_id from customers order by id limit 10;"
                           f" return 1; end$$")
        conn.execute(f"select {fn}('x')")
    assert_masked(gateway, f"select * from {notes}")
    assert_masked(gateway, f"select * from {other}")


def test_a_procedure_that_commits_before_it_fails(gateway: Gateway, tables: list[str]) -> None:
    notes, proc = name(), name()
    tables += [notes, proc]
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"create table {notes} (body text)")
        conn.execute(f"create procedure {proc}() language plpgsql as $$begin"
                     f" insert into {notes} select national_id from customers order by id"
                     f" limit 10; commit; raise exception 'stop here'; end$$")
        # It reads a masked column and commits: each transaction takes an id any session
        # counts (a loop as long as a value says), so it is refused (round 11).
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="masking-effects"):
            conn.execute(f"call {proc}()")
    with psycopg.connect(gateway.target.direct()) as direct:
        assert direct.execute(f"select count(*) from {notes}").fetchone() == (0,)


def test_triggers_and_rules_that_copy_a_row(gateway: Gateway, tables: list[str]) -> None:
    src, audit, fn, src2, audit2 = name(), name(), name(), name(), name()
    tables += [src, audit, fn, src2, audit2]
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        # the trigger and the rule are made directly on the target
        direct.execute(f"create table {src} (card text)")
        direct.execute(f"create table {audit} (v text, w text)")
        direct.execute(f"create function {fn}() returns trigger language plpgsql as $$begin"
                       f" insert into {audit} values (NEW.card, 'seen'); return NEW; end$$")
        direct.execute(f"create trigger {fn} after insert on {src} for each row"
                       f" execute function {fn}()")
        direct.execute(f"create table {src2} (card text)")
        direct.execute(f"create table {audit2} (v text)")
        direct.execute(f"create rule {src2}_r as on insert to {src2} do also"
                       f" insert into {audit2} values (new.card)")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"insert into {src} select national_id from customers order by id"
                     " limit 10")
        conn.execute(f"insert into {src2} select national_id from customers order by id"
                     " limit 10")
    assert_masked(gateway, f"select v from {audit}", f"select * from {audit2}")


def test_ddl_and_statements_that_copy(gateway: Gateway, tables: list[str]) -> None:
    a, b, c, d, base, view, g, nt = (name() for _ in range(8))
    tables += [a, b, c, d, view, base, g, nt]
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"select id, national_id as x into {a} from customers")
        conn.execute(f"create table {b} as select id, national_id from customers")
        conn.execute(f"alter table {b} rename column national_id to plain")
        conn.execute(f"create table {c} (id int, v text)")
        conn.execute(f"insert into {c} select id, 'nothing' from customers")
        conn.execute(f"update {c} set v = (select national_id from customers k"
                     f" where k.id = {c}.id)")
        conn.execute(f"create table {d} (id int primary key, v text)")
        conn.execute(f"with w as (insert into {d} select id, 'x' from customers returning id)"
                     " select count(*) from w")
        conn.execute(f"insert into {d} select id, 'y' from customers on conflict (id)"
                     f" do update set v = (select national_id from customers k"
                     f" where k.id = excluded.id)")
        conn.execute(f"create table {base} (id int, v text)")
        conn.execute(f"create view {view} as select id, v as w from {base}")
        conn.execute(f"insert into {view} (id, w) select id, national_id from customers")
        conn.execute(f"create table {g} (a text, b text generated always as (a || '!') stored)")
        conn.execute(f"prepare ins as insert into {g} (a) select national_id from customers")
        conn.execute("execute ins")
        conn.execute(f"create table {nt} (v text)")
        returned = conn.execute(f"insert into {nt} select national_id from customers"
                                " returning v").fetchall()
    assert returned and not leaked(seeded(gateway), str(returned))
    assert_masked(gateway, f"select x from {a}", f"select plain from {b}",
                  f"select v from {c}", f"select v from {d}", f"select v from {base}",
                  f"select b from {g}", f"select * from {nt}")


def test_a_view_changed_on_the_target_is_seen_at_once(
        gateway: Gateway, tables: list[str]) -> None:
    view = name()
    tables.append(view)
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        direct.execute(f"create view {view} as select id, full_name as v from customers")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        plain = conn.execute(f"select v from {view} order by id limit 3").fetchall()
        with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
            direct.execute(f"create or replace view {view} as"
                           " select id, national_id as v from customers")
        rows = conn.execute(f"select v from {view} order by id limit 5").fetchall()
    assert plain == [("Grace Hopper",), ("Alan Turing",), ("Edsger Dijkstra",)]
    assert rows and not leaked(seeded(gateway), str(rows)), rows


ALLOW_DYNAMIC_SQL = """rules:
  - name: dynamic-sql-allowed-here
    action: allow
    match: {statements: [DYNAMIC SQL]}"""


def test_code_the_gateway_cannot_read_masks_every_table(
        pg_target: Target, tmp_path: Path) -> None:
    # Dynamic SQL meets the fallback (block) unless a rule names it: this policy allows it.
    notes = name()
    gw = start_gateway(pg_target, tmp_path, rules=ALLOW_DYNAMIC_SQL)
    try:
        with psycopg.connect(gw.dsn("shop_masked"), autocommit=True) as conn:
            before = conn.execute("select full_name from customers where id = 1").fetchone()
            conn.execute(f"create table {notes} (body text)")
            # What it reads cannot be told, nor what it does besides writing: refused
            # before it runs (round 11: its effects could spell a masked value).
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="masking-effects"):
                conn.execute(f"do $$begin execute 'insert into {notes} select national_'"
                             f" || 'id from customers'; end$$")
            after = conn.execute("select full_name from customers where id = 1").fetchone()
        assert before == ("Grace Hopper",)
        assert after == before  # nothing ran: no table is lineage-unknown
        with psycopg.connect(pg_target.direct()) as direct:
            assert direct.execute(f"select count(*) from {notes}").fetchone() == (0,)
    finally:
        stop_gateway(gw)
        with psycopg.connect(pg_target.direct(), autocommit=True) as direct:
            direct.execute(f"drop table if exists {notes}")


def test_ordinary_writes_and_reads_are_not_masked(gateway: Gateway, tables: list[str]) -> None:
    notes, fn = name(), name()
    tables += [notes, fn]
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"create table {notes} (id int, body text)")
        conn.execute(f"create function {fn}() returns void language plpgsql as $$begin"
                     f" insert into {notes} select id, full_name from customers"
                     f" where id < 3; end$$")
        conn.execute(f"select {fn}()")
        conn.execute(f"do $$begin insert into {notes} values (9, 'plain'); end$$")
        rows = conn.execute(f"select id, body from {notes} order by id").fetchall()
        orders = conn.execute("select customer_id, amount from orders order by id limit 2"
                              ).fetchall()
    assert rows == [(1, "Grace Hopper"), (2, "Alan Turing"), (9, "plain")]
    assert orders and all(r[0] is not None for r in orders)


def test_taint_outlives_a_restart(pg_target: Target, tmp_path: Path) -> None:
    notes = name()
    gw = start_gateway(pg_target, tmp_path)
    try:
        with psycopg.connect(gw.dsn("shop_masked"), autocommit=True) as conn:
            conn.execute(f"create table {notes} (body text)")
            conn.execute(f"insert into {notes} select national_id from customers")
    finally:
        stop_gateway(gw)
    gw = start_gateway(pg_target, tmp_path)
    try:
        assert_masked(gw, f"select * from {notes}", f"select body || '' from {notes}")
    finally:
        stop_gateway(gw)
        with psycopg.connect(pg_target.direct(), autocommit=True) as direct:
            direct.execute(f"drop table {notes}")


def test_a_copy_made_through_one_worker_is_masked_in_the_other(
        workers: Workers, pg_target: Target) -> None:
    notes = name()
    with psycopg.connect(pg_target.direct()) as direct:
        values = [r[0] for r in direct.execute("select national_id from customers").fetchall()]
    first, second = on_each_worker(workers.dsn("shop_masked"))
    try:
        first.execute(f"create table {notes} (body text)")
        # the table is looked up by the second worker before anything is copied into it
        assert second.execute(f"select * from {notes}").fetchall() == []
        first.execute(f"insert into {notes} select national_id from customers")
        rows = second.execute(f"select * from {notes}").fetchall()
    finally:
        first.close()
        second.close()
        with psycopg.connect(pg_target.direct(), autocommit=True) as direct:
            direct.execute(f"drop table if exists {notes}")
    assert len(rows) == len(values) and not leaked(values, str(rows)), rows[:3]


def test_a_value_kept_in_a_setting(gateway: Gateway) -> None:
    values = seeded(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        kept = conn.execute("select set_config('gw.kept', national_id, false),"
                            " set_config('application_name', national_id, false)"
                            " from customers where id = 3").fetchall()
        rows = conn.execute("select current_setting('gw.kept')").fetchall()
        rows += conn.execute("show gw.kept").fetchall()
        rows += conn.execute("select setting from pg_settings where name = 'gw.kept'"
                             ).fetchall()
        rows += conn.execute("select application_name from pg_stat_activity"
                             " where pid = pg_backend_pid()").fetchall()
        status = conn.info.parameter_status("application_name")
        direct = conn.execute("select 1").fetchall()
    assert kept and not leaked(values, str(kept))
    assert len(rows) >= 3 and not leaked(values, str(rows)), rows
    assert not leaked(values, str(status)), status
    assert direct == [(1,)]


def test_partitions_and_their_parent(gateway: Gateway, tables: list[str]) -> None:
    parent, part, other, part2 = name(), name(), name(), name()
    tables += [part, parent, part2, other]
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"create table {parent} (id int, v text) partition by range (id)")
        conn.execute(f"create table {part} partition of {parent} for values from (0) to (1000)")
        conn.execute(f"insert into {parent} select id, national_id from customers")
        conn.execute(f"create table {other} (id int, v text) partition by range (id)")
        conn.execute(f"create table {part2} partition of {other} for values from (0) to (1000)")
        conn.execute(f"insert into {part2} select id, national_id from customers")
    assert_masked(gateway, f"select * from {part}", f"select v from {other}")


def test_a_column_rewritten_by_alter_table_using(gateway: Gateway, tables: list[str]) -> None:
    t = name()
    tables.append(t)
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        direct.execute(f"create table {t} as select id, full_name, national_id from customers")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        assert conn.execute(f"select full_name from {t} where id = 1").fetchone() == (
            "Grace Hopper",)
        conn.execute(f"alter table {t} alter column full_name type varchar(20)"
                     " using national_id")
    assert_masked(gateway, f"select full_name from {t}")


def test_a_trigger_added_on_the_target_after_the_table_was_looked_up(
        gateway: Gateway, tables: list[str]) -> None:
    src, audit, fn = name(), name(), name()
    tables += [src, audit, fn]
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        direct.execute(f"create table {src} (card text)")
        direct.execute(f"create table {audit} (v text)")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"insert into {src} select full_name from customers limit 1")  # cached
        with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
            direct.execute(f"create function {fn}() returns trigger language plpgsql as"
                           f" $$begin insert into {audit} values (NEW.card); return NEW; end$$")
            direct.execute(f"create trigger {fn} after insert on {src} for each row"
                           f" execute function {fn}()")
        conn.execute(f"insert into {src} select national_id from customers")
    assert_masked(gateway, f"select * from {audit}")


def test_a_statement_prepared_before_the_copy(gateway: Gateway, tables: list[str]) -> None:
    notes = name()
    tables.append(notes)
    values = seeded(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"create table {notes} (body text)")
        conn.execute(f"prepare show_notes as select body from {notes}")
        conn.execute(f"insert into {notes} select national_id from customers")
        rows = conn.execute("execute show_notes").fetchall()
    assert len(rows) == len(values) and not leaked(values, str(rows)), rows[-3:]


@pytest.mark.parametrize("read_back", [
    "select to_char(now(), 'TZ')",
    "select to_char(now(), 'tz OF')",
    "select to_char(now(), f) from (select 'T' || 'Z' as f) x",
    "select timeofday()",
])
def test_a_value_kept_in_the_time_zone(gateway: Gateway, read_back: str) -> None:
    """POSIX time zones take any name: ``set_config('timezone', '<' || national_id || '>+4')``
    made the zone's name the value, reported in the TimeZone ParameterStatus and spelled by
    ``to_char(…, 'TZ')``."""
    values = seeded(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        # Refused since round 11 (the zone's offset shows in every later timestamptz).
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="masking-effects"):
            conn.execute("select set_config('timezone', '<' || translate(national_id, '-',"
                         " '') || '>+4', false) from customers where id = 3")
        status = conn.info.parameter_status("TimeZone")
        rows = conn.execute(read_back).fetchall()
    assert not leaked(values, str(status).replace("<", "").replace(">+4", "")), status
    assert not leaked([v.replace("-", "") for v in values], str(rows)), rows


@pytest.mark.parametrize("column", ["bigint GENERATED BY DEFAULT AS IDENTITY", "bigserial"])
def test_a_value_kept_in_a_sequence_comes_back_through_a_default(
        gateway: Gateway, tables: list[str], column: str) -> None:
    """``setval`` of a masked value, then an INSERT whose identity or serial default takes the
    next one: no text of the INSERT calls nextval()."""
    values = seeded(gateway)
    digits = [v.replace("-", "") for v in values]
    t = name()
    tables.append(t)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"create table {t} (id {column}, v int)")
        conn.execute(f"select setval(pg_get_serial_sequence('{t}', 'id'),"
                     " replace(national_id, '-', '')::bigint) from customers where id = 3")
        rows = conn.execute(f"insert into {t} (v) values (1) returning id").fetchall()
        rows += conn.execute(f"insert into {t} (v) values (2), (3) returning id - 1").fetchall()
        rows += conn.execute(f"select id - 2 from {t}").fetchall()
    assert len(rows) == 6 and not leaked(digits, str(rows)) and not leaked(
        [str(int(d) + 1) for d in digits if d.isdigit()], str(rows)), rows


def near(digits: list[str]) -> list[str]:
    """The kept values and the next few a sequence hands out after them."""
    return [str(int(d) + k) for d in digits if d.isdigit() for k in range(4)]


@pytest.mark.parametrize("column", ["bigint GENERATED BY DEFAULT AS IDENTITY", "bigserial",
                                    "bigint DEFAULT nextval('{s}')"])
def test_a_value_kept_in_a_sequence_comes_back_through_copy_from(
        gateway: Gateway, tables: list[str], column: str) -> None:
    """``setval`` of a masked value, then ``COPY … FROM STDIN`` whose rows take their id from
    the sequence: no text of the COPY calls nextval()."""
    digits = [v.replace("-", "") for v in seeded(gateway)]
    t, s = name(), name()
    tables += [t, s]
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"create sequence {s}")
        conn.execute(f"create table {t} (id {column.format(s=s)}, v int)")
        conn.execute(f"select setval(coalesce(pg_get_serial_sequence('{t}', 'id'), '{s}'),"
                     " replace(national_id, '-', '')::bigint) from customers where id = 3")
        with conn.cursor().copy(f"copy {t} (v) from stdin") as copy:
            copy.write("1\n2\n")
        rows = conn.execute(f"select id, id - 1 from {t}").fetchall()
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        rows += conn.execute(f"select id::text from {t}").fetchall()
    assert len(rows) == 4 and not leaked(near(digits), str(rows)), rows


@pytest.mark.parametrize("default", ["DEFAULT nextval('{s}')", "DEFAULT nextval('{s}') - 2",
                                     "DEFAULT currval('{s}')"])
def test_a_value_kept_in_a_sequence_comes_back_through_an_added_column(
        gateway: Gateway, tables: list[str], default: str) -> None:
    """``ALTER TABLE … ADD COLUMN … DEFAULT`` fills every existing row from the sequence."""
    digits = [v.replace("-", "") for v in seeded(gateway)]
    t, s = name(), name()
    tables += [t, s]
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"create sequence {s}")
        conn.execute(f"create table {t} (v int)")
        conn.execute(f"insert into {t} values (1), (2)")
        conn.execute(f"select setval('{s}', replace(national_id, '-', '')::bigint)"
                     " from customers where id = 3")
        conn.execute(f"alter table {t} add column y bigint {default.format(s=s)}")
        rows = conn.execute(f"select y, y + 2 from {t}").fetchall()
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        rows += conn.execute(f"select y::text from {t}").fetchall()
    assert len(rows) == 4 and not leaked(near(digits), str(rows)), rows
