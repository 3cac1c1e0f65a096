"""Issue 14, the tenth outside attack: side effects whose amount or name a masked value
decides. ``nextval`` run once per row of ``generate_series(1, ascii(…))`` left the code in
``pg_sequences.last_value``; the rows an ``INSERT … SELECT`` added as a masked value said
were counted by their serial ids (``max(id)``); a PL/pgSQL refcursor named by a masked value
showed it in ``pg_cursors.name``. Each is masked now."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import start_guarded

pytestmark = pytest.mark.integration

_ID = "(select min(id) from customers)"
_ROWS = ("from customers c, generate_series(1, ascii(substr(c.national_id, 1, 1)))"
         f" where c.id = {_ID}")


@pytest.fixture(scope="module")
def gateway(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("masked14r10"))
    try:
        yield gw
    finally:
        stop_gateway(gw)


def first_national_id(gateway: Gateway) -> str:
    with psycopg.connect(gateway.target.direct()) as direct:
        row = direct.execute(f"select national_id from customers where id = {_ID}").fetchone()
    assert row is not None and row[0]
    return str(row[0])


def direct(gateway: Gateway, *sql: str) -> None:
    with psycopg.connect(gateway.target.direct(), autocommit=True) as conn:
        for statement in sql:
            conn.execute(statement)


def test_a_sequence_moved_by_clean_rows_reads_clean(gateway: Gateway) -> None:
    """(Before any sequence is moved by a masked value: later ones mask every read of
    sequence state, which sequence not being followed.)"""
    direct(gateway, "drop sequence if exists gw14r10_clean", "create sequence gw14r10_clean")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute("select nextval('gw14r10_clean') from generate_series(1, 7)")
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        rows = conn.execute("select last_value from pg_sequences"
                            " where sequencename = 'gw14r10_clean'").fetchall()
    assert rows == [(7,)], rows


def test_a_sequence_moved_once_per_row_a_masked_value_makes_is_masked(
        gateway: Gateway) -> None:
    code = ord(first_national_id(gateway)[0])
    direct(gateway, "drop sequence if exists gw14r10_seq", "create sequence gw14r10_seq")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"select count(*) from (select nextval('gw14r10_seq') {_ROWS}) z")
    reads = ["select last_value from pg_sequences where sequencename = 'gw14r10_seq'",
             "select pg_sequence_last_value('gw14r10_seq'::regclass)"]
    with psycopg.connect(gateway.target.direct()) as conn:
        for sql in reads:
            assert conn.execute(sql).fetchall() == [(code,)], "the sequence holds no code"
    for binary in (False, True):
        with psycopg.connect(gateway.dsn("shop_masked")) as conn:
            for sql in reads:
                rows = conn.cursor(binary=binary).execute(sql).fetchall()
                assert rows and (code,) not in rows and str(code) not in str(rows), (sql, rows)


@pytest.mark.parametrize("form", ["plain", "cte", "identity"])
def test_default_filled_ids_of_rows_a_masked_value_counts_are_masked(
        gateway: Gateway, form: str) -> None:
    code = ord(first_national_id(gateway)[0])
    table = f"gw14r10_{form}"
    kind = "int generated always as identity" if form == "identity" else "serial"
    direct(gateway, f"drop table if exists {table}",
           f"create table {table} (id {kind} primary key, x int)")
    insert = f"insert into {table}(x) select 1 {_ROWS}"
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(insert if form == "plain" else f"with w as ({insert}) select 1")
    reads = [f"select max(id) from {table}", f"select id from {table} order by id desc limit 1",
             f"select last_value from pg_sequences where sequencename = '{table}_id_seq'"]
    with psycopg.connect(gateway.target.direct()) as conn:
        for sql in reads:
            assert conn.execute(sql).fetchall() == [(code,)], "no id counts the rows"
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        for sql in reads:
            rows = conn.execute(sql).fetchall()
            assert rows and (code,) not in rows, (sql, rows)


def test_a_cursor_named_by_a_masked_value_is_masked_in_pg_cursors(gateway: Gateway) -> None:
    value = first_national_id(gateway)
    direct(gateway, "drop function if exists gw14r10_open(text)",
           "drop function if exists gw14r10_self()",
           "create function gw14r10_open(n text) returns int language plpgsql as $$"
           " declare c refcursor := n; begin open c for select 1; return 1; end $$",
           "create function gw14r10_self() returns int language plpgsql as $$"
           " declare c refcursor; begin"
           f" c := (select national_id from customers where id = {_ID});"
           " open c for select 1; return 1; end $$")
    calls = [f"select gw14r10_open(national_id) from customers where id = {_ID}",
             "select gw14r10_self()"]
    reads = ["select name from pg_cursors", "select name, statement from pg_cursor()"]
    for call in calls:
        with psycopg.connect(gateway.target.direct()) as conn:
            conn.execute(call)
            assert value in str(conn.execute(reads[0]).fetchall()), "no cursor is named so"
        for sql in reads:
            with psycopg.connect(gateway.dsn("shop_masked")) as conn:
                conn.execute(call)
                rows = conn.execute(sql).fetchall()
            assert rows and value not in str(rows), (call, sql, rows)
