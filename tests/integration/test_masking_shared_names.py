"""Issues 12 and 14, the ninth outside attack (F12, F13, F19): SQL PREPARE / EXECUTE /
DEALLOCATE and the protocol's Parse / Bind / Close name statements in ONE namespace on the
server, and SQL cursors (DECLARE / FETCH / MOVE / CLOSE) and the protocol's portals in one
other. The gateway kept them apart, so a name's masking lineage (and the guard's verdict) was
that of another statement of the same name: ``EXECUTE g1`` after a protocol Parse of ``g1``
returned a national id in clear, and so did a protocol Execute of a portal replaced by an SQL
cursor. An EXECUTE of a protocol-prepared statement also counted as code the gateway could not
follow, and masked every column and setting for every identity (F19)."""

from __future__ import annotations

import select
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, pq

from engine.pg import codec
from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import approved, denied, refused_held, start_guarded
from tests.integration.test_masking_lineage import leaked, seeded
from tests.integration.wire import Wire, errors_in

pytestmark = pytest.mark.integration

LEAK = "select national_id || '' as v from customers order by id limit 3"
HARMLESS = "select 'harmless'::text as v"


@pytest.fixture(scope="module")
def gateway(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("masked14r9"))
    try:
        yield gw
    finally:
        stop_gateway(gw)


def connect(gateway: Gateway, user: str = "alice") -> psycopg.Connection:  # type: ignore[type-arg]
    return psycopg.connect(gateway.dsn("shop_masked", user=user), autocommit=True)


Step = Callable[[Any], None]  # on a libpq connection (psycopg.pq.abc.PGconn)


def pipeline(conn: psycopg.Connection, *steps: Step) -> list[str]:  # type: ignore[type-arg]
    """Run libpq calls in one pipeline up to a Sync: every value and error text that came
    back."""
    pg = conn.pgconn
    pg.enter_pipeline_mode()
    for step in steps:
        step(pg)
    pg.pipeline_sync()
    while pg.flush():
        select.select([], [pg.socket], [], 10)
    out: list[str] = []
    deadline = time.monotonic() + 30
    while True:
        while pg.is_busy():
            assert time.monotonic() < deadline, f"no answer to the pipeline: {out}"
            select.select([pg.socket], [], [], 1)
            pg.consume_input()
        r = pg.get_result()
        if r is None:
            continue
        if r.status == pq.ExecStatus.PIPELINE_SYNC:
            break
        out += [(r.get_value(i, 0) or b"").decode() for i in range(r.ntuples)]
        out.append((r.error_message or b"").decode(errors="replace"))
    pg.exit_pipeline_mode()
    return out


def parse(name: str, text: str) -> Step:
    return lambda pg: pg.send_prepare(name.encode(), text.encode())


def close(name: str) -> Step:
    return lambda pg: pg.send_close_prepared(name.encode())


def run(name: str) -> Step:
    return lambda pg: pg.send_query_prepared(name.encode(), [])


def values(rows: list[tuple[object, ...]]) -> str:
    return str(rows)


def assert_clean(gateway: Gateway, got: object) -> None:
    assert not leaked(seeded(gateway), str(got)), got


# --- F12: one namespace of prepared statements ------------------------------------------------


def test_sql_execute_runs_the_statement_a_protocol_parse_gave_the_name(gateway: Gateway) -> None:
    """F12 (G): PREPARE harmless, protocol Close + Parse of the leak, SQL EXECUTE."""
    with connect(gateway) as conn:
        conn.execute(f"prepare g1 as {HARMLESS}")
        pipeline(conn, close("g1"), parse("g1", LEAK))
        got = conn.execute("execute g1").fetchall()
    assert len(got) == 3
    assert_clean(gateway, got)


def test_protocol_bind_runs_the_statement_sql_prepare_gave_the_name(gateway: Gateway) -> None:
    """F12 (H): protocol Parse harmless, DEALLOCATE ALL, PREPARE of the leak, Bind/Execute."""
    with connect(gateway) as conn:
        pipeline(conn, parse("h1", HARMLESS))
        conn.execute("deallocate all")
        conn.execute(f"prepare h1 as {LEAK}")
        got = pipeline(conn, run("h1"))
    assert len([v for v in got if v]) == 3, got
    assert_clean(gateway, got)


def test_deallocate_then_parse_of_the_same_name(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        pipeline(conn, parse("d1", HARMLESS))
        conn.execute("deallocate d1")
        pipeline(conn, parse("d1", LEAK))
        got = conn.execute("execute d1").fetchall()
        got2 = pipeline(conn, run("d1"))
    assert len(got) == 3
    assert_clean(gateway, (got, got2))


def test_close_statement_then_prepare_of_the_same_name(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        conn.execute(f"prepare c1 as {HARMLESS}")
        pipeline(conn, close("c1"))
        conn.execute(f"prepare c1 as {LEAK}")
        got = pipeline(conn, run("c1"))
        got2 = conn.execute("execute c1").fetchall()
    assert len(got2) == 3
    assert_clean(gateway, (got, got2))


def test_a_parse_refused_as_existing_leaves_the_sql_statement(gateway: Gateway) -> None:
    """The server refuses a Parse of a name SQL PREPARE gave (42P05): EXECUTE still runs the
    SQL one, and a Parse that failed never names anything."""
    with connect(gateway) as conn:
        conn.execute(f"prepare e1 as {LEAK}")
        out = pipeline(conn, parse("e1", HARMLESS))
        assert any("already exists" in v for v in out), out
        got = conn.execute("execute e1").fetchall()
        got2 = pipeline(conn, run("e1"))
    assert len(got) == 3
    assert_clean(gateway, (got, got2))


def test_a_failed_prepare_in_an_aborted_transaction_names_nothing(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        pipeline(conn, parse("a1", LEAK))
        conn.execute("begin")
        with pytest.raises(psycopg.Error):
            conn.execute("select 1/0")
        with pytest.raises(errors.InFailedSqlTransaction):
            conn.execute(f"prepare a2 as {HARMLESS}")
        conn.execute("rollback")
        got = conn.execute("execute a1").fetchall()
    assert len(got) == 3
    assert_clean(gateway, got)


def test_discard_all_forgets_protocol_statements(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        pipeline(conn, parse("x1", HARMLESS))
        conn.execute("discard all")
        conn.execute(f"prepare x1 as {LEAK}")
        got = pipeline(conn, run("x1"))
    assert len([v for v in got if v]) == 3, got
    assert_clean(gateway, got)


# --- F13: one namespace of portals and cursors ------------------------------------------------


def wire(gateway: Gateway) -> Wire:
    w = Wire(gateway.port("shop_masked"))
    w.login("alice", gateway.tokens["alice"])
    return w


def m_parse(name: str, text: str) -> bytes:
    return codec.message(b"P", codec.cstr(name) + codec.cstr(text) + struct.pack("!h", 0))


def m_bind(portal: str, statement: str) -> bytes:
    return codec.message(b"B", codec.cstr(portal) + codec.cstr(statement)
                         + struct.pack("!hhh", 0, 0, 0))


def m_execute(portal: str) -> bytes:
    return codec.message(b"E", codec.cstr(portal) + struct.pack("!i", 0))


SYNC = codec.message(b"S")


def rows(messages: list[tuple[int, bytes]]) -> str:
    """Every DataRow's and ErrorResponse's bytes."""
    return repr([body for tag, body in messages if tag in (ord("D"), ord("E"))])


def data_rows(messages: list[tuple[int, bytes]]) -> int:
    return sum(1 for tag, _ in messages if tag == ord("D"))


def test_protocol_execute_of_a_portal_replaced_by_an_sql_cursor(gateway: Gateway) -> None:
    """F13: Bind p1 from a harmless statement, CLOSE p1, DECLARE p1 over the leak, Execute."""
    w = wire(gateway)
    try:
        w.query("begin")
        w.send(m_parse("st", HARMLESS) + m_bind("p1", "st") + SYNC)
        w.until(b"Z")
        w.query("close p1")
        w.query(f"declare p1 cursor for {LEAK}")
        w.send(m_execute("p1") + SYNC)
        got = w.until(b"Z")
        w.query("commit")
    finally:
        w.close()
    assert data_rows(got) == 3, got
    assert_clean(gateway, rows(got))


def test_move_then_protocol_execute_of_a_cursor(gateway: Gateway) -> None:
    w = wire(gateway)
    try:
        w.query("begin")
        w.send(m_parse("st", HARMLESS) + m_bind("p2", "st") + SYNC)
        w.until(b"Z")
        w.query("close p2")
        w.query(f"declare p2 scroll cursor for {LEAK}")
        w.query("move 1 in p2")
        w.query("move backward 1 in p2")
        w.send(m_execute("p2") + SYNC)
        got = w.until(b"Z")
        w.query("commit")
    finally:
        w.close()
    assert data_rows(got) == 3, got
    assert_clean(gateway, rows(got))


def test_sql_fetch_and_move_of_a_protocol_portal(gateway: Gateway) -> None:
    """A cursor closed by protocol Close and bound again from the leak: FETCH reads it."""
    w = wire(gateway)
    try:
        w.query("begin")
        w.query(f"declare p3 cursor for {HARMLESS}")
        w.send(codec.message(b"C", b"P" + codec.cstr("p3")) + m_parse("sl", LEAK)
               + m_bind("p3", "sl") + SYNC)
        w.until(b"Z")
        moved = w.query("move 0 in p3")
        got = w.query("fetch all p3")
        w.query("commit")
    finally:
        w.close()
    assert data_rows(got) == 3, got
    assert_clean(gateway, rows(got) + rows(moved))


def test_a_holdable_cursor_across_commit(gateway: Gateway) -> None:
    """A portal of a transaction ends with it; a holdable cursor of that name declared after
    is what a later Execute runs."""
    w = wire(gateway)
    try:
        w.query("begin")
        w.send(m_parse("st", HARMLESS) + m_bind("p4", "st") + SYNC)
        w.until(b"Z")
        w.query("commit")
        w.query(f"declare p4 cursor with hold for {LEAK}")
        w.send(m_execute("p4") + SYNC)
        got = w.until(b"Z")
        fetched = w.query("fetch all p4")
        w.query("close p4")
    finally:
        w.close()
    assert data_rows(got) == 3, got
    assert_clean(gateway, rows(got) + rows(fetched))


def test_an_unnamed_portal_ends_at_sync_outside_a_block(gateway: Gateway) -> None:
    """The unnamed portal of a harmless Bind does not outlive its Sync: a cursor can never be
    unnamed, and a later Execute of it fails on the server; nothing leaks meanwhile."""
    w = wire(gateway)
    try:
        w.send(m_parse("", HARMLESS) + m_bind("", "") + SYNC)
        w.until(b"Z")
        w.query(f"declare p5 cursor with hold for {LEAK}")
        w.send(m_execute("p5") + SYNC)
        got = w.until(b"Z")
        w.query("close p5")
    finally:
        w.close()
    assert data_rows(got) == 3, got
    assert_clean(gateway, rows(got))


# --- F19: EXECUTE of a protocol-prepared statement is known, taints nothing ----------------------


def test_execute_of_a_protocol_statement_does_not_mask_everything(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        pipeline(conn, parse("s5", "select 1"))
        assert conn.execute("execute s5").fetchall() == [(1,)]
        pipeline(conn, parse("s6", LEAK))
        got = conn.execute("execute s6").fetchall()
    assert len(got) == 3
    assert_clean(gateway, got)
    with connect(gateway, "oncall") as other:
        row = other.execute("select id, created_at from customers where id = 1").fetchone()
        setting = other.execute("show work_mem").fetchone()
    assert row is not None and row[0] == 1 and row[1] is not None, row
    assert setting is not None and "*" not in str(setting[0]), setting


def test_execute_of_an_unknown_name_is_not_a_taint_of_every_table(gateway: Gateway) -> None:
    """The server says the name does not exist: nothing ran, nothing is tainted."""
    with connect(gateway) as conn:
        with pytest.raises(psycopg.Error):
            conn.execute("execute nosuch9")
    with connect(gateway, "oncall") as other:
        row = other.execute("select id, created_at from customers where id = 1").fetchone()
    assert row is not None and row[0] == 1 and row[1] is not None, row


# --- issue 12: the guard judges EXECUTE x as the statement x names -----------------------------


def test_the_guard_judges_sql_execute_of_a_protocol_statement(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        pipeline(conn, parse("w1", "delete from orders"))
        request = denied(gateway, lambda: conn.execute("execute w1"))
    assert "delete from orders" in str(request).lower(), request


def test_the_guard_judges_sql_execute_after_close_and_parse(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        conn.execute("prepare w2 as select 1")
        pipeline(conn, close("w2"), parse("w2", "delete from orders"))
        denied(gateway, lambda: conn.execute("execute w2"))


def test_the_guard_judges_a_bind_of_an_sql_prepared_statement(gateway: Gateway) -> None:
    """PREPARE of a write to review is held itself; once approved, a protocol Bind of the
    name is judged (and held) again: one approval, one execution."""
    with connect(gateway) as conn:
        pipeline(conn, parse("w3", "select 1"))
        conn.execute("deallocate w3")
        _, failure = approved(gateway, lambda: conn.execute("prepare w3 as delete from orders"))
        assert failure is None, failure
        out: list[list[str]] = []
        request = refused_held(gateway, lambda: out.append(pipeline(conn, run("w3"))))
    assert "delete from orders" in str(request).lower(), request
    assert out and out[0] and any("denied" in v.lower() for v in out[0]), out


def test_execute_of_a_prepared_close_or_declare(gateway: Gateway) -> None:
    """A protocol Parse may prepare CLOSE or DECLARE, and EXECUTE of it changes a portal: the
    guard refuses such an EXECUTE (what it runs changes names: the policy's fallback), and
    the portal still runs what it was bound from (the masking flow follows the statement an
    EXECUTE runs, should a policy let it through)."""
    w = wire(gateway)
    try:
        w.query("begin")
        w.send(m_parse("st", HARMLESS) + m_bind("p6", "st") + m_parse("cl6", "close p6")
               + m_parse("de6", f"declare p6 cursor for {LEAK}") + SYNC)
        w.until(b"Z")
        closed = w.query("execute cl6")
        w.query("rollback")
        w.query("begin")
        w.send(m_bind("p6", "st") + SYNC)
        w.until(b"Z")
        declared = w.query("execute de6")
        w.send(m_execute("p6") + SYNC)
        got = w.until(b"Z")
        w.query("commit")
    finally:
        w.close()
    assert [e.get("C") for e in errors_in(closed)] == ["42501"], closed
    assert [e.get("C") for e in errors_in(declared)] == ["42501"], declared
    assert_clean(gateway, rows(got))


def sql(text: str) -> Step:
    return lambda pg: pg.send_query_params(text.encode(), [])


@pytest.mark.parametrize("steps", [
    # SQL PREPARE through the extended protocol, then Bind of its name, in one pipeline
    (sql(f"prepare q1 as {LEAK}"), run("q1")),
    # protocol Parse, then SQL EXECUTE through the extended protocol
    (parse("q2", LEAK), sql("execute q2")),
    # SQL PREPARE harmless, protocol Close, Parse of the leak, SQL EXECUTE
    (sql(f"prepare q3 as {HARMLESS}"), close("q3"), parse("q3", LEAK), sql("execute q3")),
    # protocol Parse harmless, SQL DEALLOCATE ALL and PREPARE of the leak, Bind
    (parse("q4", HARMLESS), sql("deallocate all"), sql(f"prepare q4 as {LEAK}"), run("q4")),
], ids=["prepare-bind", "parse-execute", "close-parse-execute", "deallocate-prepare-bind"])
def test_one_pipeline_mixing_sql_and_protocol_names(gateway: Gateway,
                                                    steps: tuple[Step, ...]) -> None:
    with connect(gateway) as conn:
        got = pipeline(conn, *steps)
    assert len([v for v in got if v and "harmless" not in v]) >= 3, got
    assert_clean(gateway, got)
