"""psycopg 3 and asyncpg, used hard, through the gateway."""

from __future__ import annotations

import datetime
import decimal
import threading
import time
import uuid

import asyncpg
import psycopg
import pytest
from psycopg import errors

from tests.conftest import Gateway

pytestmark = pytest.mark.integration


def test_psycopg_simple_protocol_client_cursor(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn(), cursor_factory=psycopg.ClientCursor) as conn:
        cur = conn.execute("select email from customers where id = %s", [7])
        assert cur.fetchone() == ("ken.thompson7@example.com",)
        cur.execute("select 1; select 2")
        assert cur.fetchone() == (1,)
        assert cur.nextset()
        assert cur.fetchone() == (2,)


def test_psycopg_extended_and_binary(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn()) as conn:
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            cur.execute(
                "select %s::int, %s::numeric, %s::timestamptz, %s::uuid, %s::bytea, %s::text[],"
                " %s::jsonb",
                [42, decimal.Decimal("1.50"),
                 datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
                 uuid.UUID(int=7), b"\x00\xffbin", ["a", None], psycopg.types.json.Jsonb(
                     {"k": [1, 2]})],
            )
            row = cur.fetchone()
            assert row is not None
            assert row[0] == 42 and row[1] == decimal.Decimal("1.50")
            assert row[2] == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
            assert row[3] == uuid.UUID(int=7) and row[4] == b"\x00\xffbin"
            assert row[5] == ["a", None] and row[6] == {"k": [1, 2]}
        # A prepared statement (psycopg prepares after 5 executions).
        for i in range(8):
            assert conn.execute("select %s::int + 1", [i], prepare=True).fetchone() == (i + 1,)


def test_psycopg_pipeline_with_an_error_in_the_middle(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.DivisionByZero), conn.pipeline():
            c1 = conn.execute("select 1")
            conn.execute("select 1/0")
            conn.execute("select 3")
        assert c1.fetchone() == (1,)
        # The session is still in step after the failed pipeline.
        with conn.pipeline():
            results = [conn.execute("select %s::int", [i]) for i in range(20)]
        assert [r.fetchone() for r in results] == [(i,) for i in range(20)]
    session_id = gateway.wait_for(lambda s: next(
        (r["id"] for r in s.sessions() if r["ended_at"] and r["statements"] >= 23), None))
    store = gateway.store()
    rows = store.statements(session_id)
    store.close()
    by_text = {r["text"]: r for r in rows}
    assert by_text["select 1/0"]["sqlstate"] == "22012"
    assert by_text["select 3"]["status"] == "skipped"
    assert all(r["status"] != "running" for r in rows)


def test_psycopg_copy_and_server_side_cursor(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn()) as conn:
        conn.execute("create temp table t (id int, note text)")
        with conn.cursor().copy("copy t from stdin") as copy:
            for i in range(5000):
                copy.write_row((i, f"note {i}"))
        assert conn.execute("select count(*), sum(id) from t").fetchone() == (5000, 12497500)
        with conn.cursor().copy("copy (select id from t order by id) to stdout") as copy:
            ids = [int(row[0]) for row in copy.rows()]
        assert ids == list(range(5000))
        with conn.cursor(name="big") as cur:
            cur.itersize = 100
            cur.execute("select id from t order by id")
            assert sum(1 for _ in cur) == 5000


def test_psycopg_cancel(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn()) as conn:
        timer = threading.Timer(0.5, conn.cancel_safe)
        timer.start()
        started = time.monotonic()
        with pytest.raises(errors.QueryCanceled):
            conn.execute("select pg_sleep(30)")
        assert time.monotonic() - started < 20
        conn.rollback()
        assert conn.execute("select 1").fetchone() == (1,)


async def test_asyncpg_binary_and_extended(gateway: Gateway) -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1", port=gateway.port(), user="alice", password=gateway.tokens["alice"],
        database="shop", ssl=False)
    try:
        rows = await conn.fetch("select id, email, created_at from customers where id <= $1"
                                " order by id", 5)
        assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
        assert isinstance(rows[0]["created_at"], datetime.datetime)
        stmt = await conn.prepare("select $1::int * 2, $2::text[]")
        for i in range(50):
            assert tuple(await stmt.fetchrow(i, ["x", str(i)])) == (i * 2, ["x", str(i)])
        await conn.execute("create temp table a (id int, v float8, b bytea)")
        await conn.executemany("insert into a values ($1, $2, $3)",
                               [(i, i / 3, bytes([i % 256])) for i in range(300)])
        await conn.copy_records_to_table("a", records=[(1000 + i, 0.5, b"c") for i in range(100)])
        assert await conn.fetchval("select count(*) from a") == 400
        with pytest.raises(asyncpg.exceptions.UniqueViolationError):
            await conn.execute("create temp table u (id int primary key);"
                               " insert into u values (1), (1)")
        async with conn.transaction():
            await conn.execute("insert into a values (-1, 0, null)")
        cur_rows = []
        async with conn.transaction():
            async for rec in conn.cursor("select id from a order by id", prefetch=50):
                cur_rows.append(rec["id"])
        assert len(cur_rows) == 401
        with pytest.raises(asyncpg.exceptions.DataError):
            await conn.executemany("insert into a values ($1, $2, $3)",
                                   [(1, 1.0, b"x"), (2, "not a float", b"y")])
        assert await conn.fetchval("select 1") == 1
    finally:
        await conn.close()
