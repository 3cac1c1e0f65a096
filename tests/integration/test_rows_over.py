"""Writes judged by their effect (issue 12, ``rows_over``) through the gateway and a real
PostgreSQL, with the example rules (``review-big-writes``: review writes over 100 rows). Each
effect is checked on the target directly, and the records say what ran."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.conftest import Gateway, Target, start_gateway, stop_gateway
from tests.engine.pg import build as b
from tests.integration.guarded import example_rules, operator, wait_for_request
from tests.integration.test_guardrail_relay import decide, in_thread, records
from tests.integration.wire import Wire, errors_in

pytestmark = pytest.mark.integration

_names = itertools.count(1)


@pytest.fixture(scope="module")
def gw(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(pg_target, tmp_path_factory.mktemp("rows-over"),
                            rules=example_rules())
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


class Table:
    """A table of the session's user on the target: 300 rows with n = 0."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.name = f"counted_{next(_names)}"
        self._admin(f"CREATE TABLE {self.name} (id int PRIMARY KEY, n int NOT NULL);"
                    f"INSERT INTO {self.name} SELECT g, 0 FROM generate_series(1, 300) g;"
                    f"ALTER TABLE {self.name} OWNER TO gw_scram")

    def _admin(self, sql: str) -> Any:
        with psycopg.connect(self.target.superuser(), autocommit=True) as admin:
            return admin.execute(sql.encode()).fetchone() if sql.startswith("SELECT") else (
                admin.execute(sql.encode()))

    def total(self) -> int:
        return int(self._admin(f"SELECT sum(n) FROM {self.name}")[0])

    def bump(self, upto: int) -> str:
        return f"UPDATE {self.name} SET n = n + 1 WHERE id <= {upto}"


def connect(gw: Gateway, app: str, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn(application_name=app), autocommit=autocommit,
                           cursor_factory=psycopg.ClientCursor)


def test_under_the_limit_runs_at_once_psql(gw: Gateway) -> None:
    table = Table(gw.target)
    out = subprocess.run(
        ["psql", gw.dsn(application_name="rows-psql"), "-X", "-v", "ON_ERROR_STOP=1",
         "-c", table.bump(50), "-c", f"DELETE FROM {table.name} WHERE id > 299"],
        env=gw.env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["UPDATE", "50", "DELETE", "1"]
    assert table.total() == 50
    assert records(gw, "rows-psql") == [
        (table.bump(50), "count", "ok"), (f"DELETE FROM {table.name} WHERE id > 299",
                                          "count", "ok")]


def test_over_the_limit_waits_for_an_approval_and_runs_once(gw: Gateway) -> None:
    table = Table(gw.target)

    def work() -> int:
        with connect(gw, "rows-over") as conn:
            return conn.execute(table.bump(150)).rowcount

    thread, out = in_thread(work)
    request = wait_for_request(gw)
    assert "150 rows" in request["statement"] and request["rule"] == "review-big-writes"
    assert table.total() == 0  # counted, rolled back: nothing happened yet
    decide(gw, True)
    thread.join(30)
    assert out == [150]
    assert table.total() == 150  # once
    assert records(gw, "rows-over") == [
        (table.bump(150), "count", "rolled back"), (table.bump(150), "approved", "ok")]


def test_in_a_transaction_denied_leaves_the_rest_of_it(gw: Gateway) -> None:
    table = Table(gw.target)

    def work() -> Any:
        with connect(gw, "rows-tx", autocommit=False) as conn:
            assert conn.execute(table.bump(10)).rowcount == 10  # under: released at once
            try:
                conn.execute(table.bump(200))
            except errors.InsufficientPrivilege as exc:
                # Aborted, as the statement failing on the target would leave it: COMMIT
                # ends it with a ROLLBACK, the first UPDATE with it.
                assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
                conn.commit()
                return str(exc)
        return None

    thread, out = in_thread(work)
    wait_for_request(gw)
    assert table.total() == 0  # the client's transaction is open; the big one rolled back
    decide(gw, False)
    thread.join(30)
    assert out and "denied" in str(out[0])
    assert table.total() == 0
    assert [r[1:] for r in records(gw, "rows-tx")] == [
        ("allow", "ok"), ("count", "ok"), ("count", "rolled back"), ("denied", "denied"),
        ("allow", "ok")]  # BEGIN, the small UPDATE, the big one counted then denied, COMMIT


def test_an_error_in_a_transaction_leaves_it_aborted(gw: Gateway) -> None:
    table = Table(gw.target)
    with connect(gw, "rows-abort", autocommit=False) as conn:
        conn.execute(table.bump(5))
        with pytest.raises(errors.DivisionByZero):
            conn.execute(f"UPDATE {table.name} SET n = 1 / 0 WHERE id = 1")
        with pytest.raises(errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
    assert table.total() == 0


def test_a_deferred_constraint_failing_at_commit_is_the_statement_s_error(
        gw: Gateway) -> None:
    table = Table(gw.target)
    table._admin(f"ALTER TABLE {table.name} ADD COLUMN parent int REFERENCES {table.name} "
                 "DEFERRABLE INITIALLY DEFERRED")
    with connect(gw, "rows-deferred") as conn:
        with pytest.raises(errors.ForeignKeyViolation):
            conn.execute(f"UPDATE {table.name} SET n = 1, parent = 9999 WHERE id = 1")
        assert conn.execute("SELECT 1").fetchone() == (1,)  # not left in a transaction
    assert table.total() == 0


def test_returning_rows_reach_the_client(gw: Gateway) -> None:
    table = Table(gw.target)
    with connect(gw, "rows-returning") as conn:
        rows = conn.execute(table.bump(3) + " RETURNING id").fetchall()
    assert sorted(rows) == [(1,), (2,), (3,)] and table.total() == 3


# --- the extended protocol (psycopg's server-side binding, prepared statements, pipelines) ---


def extended(gw: Gateway, app: str, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn(application_name=app), autocommit=autocommit)


def param(table: Table) -> str:
    """The UPDATE as psycopg sends it (the record's text is the Parse's)."""
    return f"UPDATE {table.name} SET n = n + 1 WHERE id <= $1"


def test_extended_under_the_limit_runs_at_once(gw: Gateway) -> None:
    table = Table(gw.target)
    sql = f"UPDATE {table.name} SET n = n + 1 WHERE id <= %s"
    with extended(gw, "rows-ext") as conn:
        assert conn.execute(sql, [50]).rowcount == 50
        assert conn.execute(sql, [5], prepare=True).rowcount == 5  # a named statement
        assert conn.execute(sql, [5], prepare=True).rowcount == 5
        rows = conn.execute(sql + " RETURNING id", [2]).fetchall()
        assert sorted(rows) == [(1,), (2,)]
        assert conn.execute("SELECT 1").fetchone() == (1,)  # idle: the gateway's block ended
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert table.total() == 62
    assert records(gw, "rows-ext") == [
        (param(table), "count", "ok"), (param(table), "count", "ok"),
        (param(table), "count", "ok"), (param(table) + " RETURNING id", "count", "ok"),
        ("SELECT 1", "allow", "ok")]


def test_extended_over_the_limit_waits_for_an_approval_and_runs_once(gw: Gateway) -> None:
    table = Table(gw.target)

    def work() -> int:
        with extended(gw, "rows-ext-over") as conn:
            n = conn.execute(f"UPDATE {table.name} SET n = n + 1 WHERE id <= %s",
                             [150]).rowcount
            assert conn.execute("SELECT 1").fetchone() == (1,)
            return n

    thread, out = in_thread(work)
    request = wait_for_request(gw)
    # What the approver sees: the text, its parameters (binary here: psycopg sends ints so),
    # and the count.
    shown = request["statement"]
    assert "150 rows" in shown and "-- gatewatch: parameters: " in shown
    assert table.total() == 0  # counted, rolled back: nothing happened yet
    decide(gw, True)
    thread.join(30)
    assert out == [150]
    assert table.total() == 150  # once
    assert records(gw, "rows-ext-over") == [
        (param(table), "count", "rolled back"), (param(table), "approved", "ok"),
        ("SELECT 1", "allow", "ok")]


def test_extended_in_a_transaction_denied_leaves_the_rest_of_it(gw: Gateway) -> None:
    table = Table(gw.target)
    sql = f"UPDATE {table.name} SET n = n + 1 WHERE id <= %s"

    def work() -> Any:
        with extended(gw, "rows-ext-tx", autocommit=False) as conn:
            assert conn.execute(sql, [10], prepare=True).rowcount == 10
            try:
                conn.execute(sql, [200], prepare=True)
            except errors.InsufficientPrivilege as exc:
                assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
                conn.commit()  # aborted: it ends with a ROLLBACK, the first UPDATE with it
                return str(exc)
        return None

    thread, out = in_thread(work)
    wait_for_request(gw)
    assert table.total() == 0
    decide(gw, False)
    thread.join(30)
    assert out and "denied" in str(out[0])
    assert table.total() == 0
    assert [r[1:] for r in records(gw, "rows-ext-tx")] == [
        ("allow", "ok"), ("count", "ok"), ("count", "rolled back"), ("denied", "denied"),
        ("allow", "ok")]  # BEGIN, the small UPDATE, the big one counted then denied, COMMIT


@pytest.mark.parametrize("autocommit", [True, False])
def test_a_pipeline_counts_each_write(gw: Gateway, autocommit: bool) -> None:
    table = Table(gw.target)
    sql = f"UPDATE {table.name} SET n = n + 1 WHERE id <= %s"
    app = f"rows-pipe-{autocommit}"
    with extended(gw, app, autocommit) as conn:
        with conn.pipeline():
            cursors = [conn.execute(sql, [n]) for n in (10, 20, 30)]
            total = conn.execute(f"SELECT sum(n) FROM {table.name}")
        assert [c.rowcount for c in cursors] == [10, 20, 30]
        assert total.fetchone() == (60,)
        conn.commit()
    assert table.total() == 60
    verdicts = [r[1:] for r in records(gw, app)]
    assert verdicts.count(("count", "ok")) == 3 and all(v[1] == "ok" for v in verdicts)


def test_an_error_in_a_pipeline_rolls_back_the_counted_write(gw: Gateway) -> None:
    """Autocommit: the segment is one implicit transaction in PostgreSQL; it still is."""
    table = Table(gw.target)
    with extended(gw, "rows-pipe-error") as conn:
        with pytest.raises(errors.DivisionByZero):
            with conn.pipeline():
                conn.execute(f"UPDATE {table.name} SET n = n + 1 WHERE id <= %s", [10])
                conn.execute(f"UPDATE {table.name} SET n = 1 / 0 WHERE id = %s", [1])
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert table.total() == 0


def test_a_pipeline_over_the_limit_waits_and_the_rest_follows(gw: Gateway) -> None:
    table = Table(gw.target)

    def work() -> list[int]:
        with extended(gw, "rows-pipe-over") as conn, conn.pipeline():
            sql = f"UPDATE {table.name} SET n = n + 1 WHERE id <= %s"
            cursors = [conn.execute(sql, [n]) for n in (10, 150, 20)]
            conn.execute("SELECT 1")
        return [c.rowcount for c in cursors]

    thread, out = in_thread(work)
    request = wait_for_request(gw)
    assert "150 rows" in request["statement"]
    decide(gw, True)
    thread.join(30)
    assert out == [[10, 150, 20]]
    assert table.total() == 180


def test_shapes_the_gateway_cannot_count_are_refused_on_the_wire(gw: Gateway) -> None:
    """A row limit on the Execute, and transaction control behind a counted write in the
    block the gateway opened for it, before the Sync: refused, nothing of them runs."""
    table = Table(gw.target)
    wire = Wire(gw.port())
    try:
        wire.login("alice", gw.tokens["alice"])
        update = table.bump(10)
        wire.send(b.parse(update) + b.bind() + b.execute(max_rows=5) + b.SYNC)
        [error] = errors_in(wire.until(b"Z"))
        assert error["C"] == "0A000" and "row limit" in error["M"]
        wire.send(b.parse(update) + b.bind() + b.execute() + b.parse("COMMIT", "c")
                  + b.bind(statement="c") + b.execute() + b.SYNC)
        answers = wire.until(b"Z")
        [error] = errors_in(answers)
        assert error["C"] == "0A000" and "Sync" in (error.get("H") or "")
        assert answers[-1] == (ord("Z"), b"I")
        assert [t for t, _ in answers if t == ord("C")] == [ord("C")]  # the UPDATE's
        wire.send(b.parse(update) + b.bind() + b.execute() + b.query("SELECT 1"))
        answers = wire.until(b"Z")
        assert errors_in(answers)[0]["C"] == "0A000"
        wire.send(b.SYNC)
        assert wire.until(b"Z")[-1] == (ord("Z"), b"I")
    finally:
        wire.close()
    # The two UPDATEs before the refusals did not stand: the target failed in the refused
    # statement's place, and the segment's implicit transaction rolled back, as PostgreSQL
    # does after an error.
    assert table.total() == 0


# --- with result masking (every portal described by the gateway, results rewritten) ---------


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_returning_rows_of_a_counted_write_are_masked(gw: Gateway, protocol: str) -> None:
    table = Table(gw.target)
    table._admin(f"ALTER TABLE {table.name} ADD COLUMN email text")
    factory = psycopg.ClientCursor if protocol == "simple" else psycopg.Cursor
    sql = (f"UPDATE {table.name} SET n = n + 1, email = 'user' || id || '@example.com' "
           "WHERE id <= %s RETURNING id, email")
    app = f"rows-masked-{protocol}"

    def work() -> list[tuple[Any, ...]]:
        with psycopg.connect(gw.dsn("shop_masked", application_name=app), autocommit=True,
                             cursor_factory=factory) as conn:
            small = conn.execute(sql, [3]).fetchall()
            big = conn.execute(sql, [120]).fetchall()
            assert conn.execute("SELECT 1").fetchone() == (1,)
            return [*small, *big]

    thread, out = in_thread(work)
    request = wait_for_request(gw)
    assert "120 rows" in request["statement"]
    decide(gw, True)
    thread.join(30)
    [rows] = out
    assert len(rows) == 123 and table.total() == 123
    emails = [email for _, email in rows]
    assert all("@" in e and e != f"user{i}@example.com" for (i, _), e in zip(rows, emails,
                                                                             strict=True))
    assert [r[1:] for r in records(gw, app)] == [
        ("count", "ok"), ("count", "rolled back"), ("approved", "ok"), ("allow", "ok")]


def test_a_named_portal_over_the_limit_runs_once_when_approved_on_the_wire(
        gw: Gateway) -> None:
    """A named statement and portal, a Describe between Bind and Execute, in the client's
    transaction: over the limit the portal is rolled back and closed by the gateway, bound
    again and run once when approved; the client sees each answer once, nothing of the
    gateway's own statements."""
    table = Table(gw.target)
    wire = Wire(gw.port())
    try:
        wire.login("alice", gw.tokens["alice"], database="shop")
        wire.query("BEGIN")
        wire.send(b.parse(f"UPDATE {table.name} SET n = n + 1 WHERE id <= $1", "big")
                  + b.bind([b"150"], portal="p", statement="big") + b.describe("P", "p")
                  + b.execute("p") + b.SYNC)
        request = wait_for_request(gw)
        assert "150 rows" in request["statement"] and "parameters: '150'" in request["statement"]
        assert table.total() == 0
        with operator(gw) as client:
            client.call("approve", request=request["id"], reason="test")
        answers = wire.until(b"Z")
        tags = bytes(t for t, _ in answers if t != ord("N"))  # the notice of the hold
        assert tags == b"12nCZ" and answers[-1] == (ord("Z"), b"T")
        assert (ord("C"), b"UPDATE 150\x00") in answers
        wire.query("COMMIT")
    finally:
        wire.close()
    assert table.total() == 150


# --- a Query of several statements (psql -c "…; …") --------------------------------------


def test_several_statements_in_one_query_are_counted_each(gw: Gateway) -> None:
    table = Table(gw.target)
    two = f"{table.bump(50)}; {table.bump(20)}"
    out = subprocess.run(["psql", gw.dsn(application_name="rows-multi"), "-X", "-c", two],
                         env=gw.env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert table.total() == 70
    refused = subprocess.run(
        ["psql", gw.dsn(application_name="rows-multi-tx"), "-X", "-c",
         f"BEGIN; {table.bump(5)}; COMMIT"], env=gw.env(), capture_output=True, text=True,
        timeout=60)
    assert refused.returncode == 1 and "alone in its Query" in refused.stderr
    assert table.total() == 70
    assert records(gw, "rows-multi") == [(two, "count", "ok")]

    # Over the limit, it is not held: the settings its approver would be shown are read
    # before its first statement, which writes a table (whose code may change them).
    with connect(gw, "rows-multi-over") as conn:
        with pytest.raises(errors.InsufficientPrivilege) as refusal:
            conn.execute(f"{table.bump(10)}; {table.bump(150)}")
    # Together: which statement wrote what beside its tag cannot be told, so each is
    # charged with all the Query wrote (the first counted one goes over first).
    assert "its statement 1: it writes 160 rows" in str(refusal.value)
    assert "in front of it" in str(refusal.value)
    assert table.total() == 70  # both rolled back


# --- a statement the gateway refuses fails on the target too (issue 12, outside attacker) ----
#
# Whatever the gateway answers with an error in place of the target (a block, a denial, a
# shape it cannot count), the target gets a message of the gateway's own that fails there: the
# segment's implicit transaction rolls back at its Sync, the client's block is aborted, and the
# ReadyForQuery the client sees is the target's.


def rows_below_zero(table: Table) -> int:
    return int(table._admin(f"SELECT count(*) FROM {table.name} WHERE id < 0")[0])


def test_a_block_in_an_autocommit_pipeline_rolls_back_what_ran_before_it(gw: Gateway) -> None:
    table = Table(gw.target)
    with extended(gw, "refused-pipe") as conn:
        with pytest.raises(errors.InsufficientPrivilege, match='rule "no-drop"'):
            with conn.pipeline():
                conn.execute(f"INSERT INTO {table.name} VALUES (-7, 1)")
                conn.execute(table.bump(5))  # counted, under the limit
                conn.execute(f"DROP TABLE {table.name}")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert rows_below_zero(table) == 0 and table.total() == 0


def test_a_block_in_a_pipeline_inside_a_transaction_aborts_it(gw: Gateway) -> None:
    table = Table(gw.target)
    with extended(gw, "refused-pipe-tx", autocommit=False) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            with conn.pipeline():
                conn.execute(f"INSERT INTO {table.name} VALUES (-7, 1)")
                conn.execute(f"DROP TABLE {table.name}")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.commit()
    assert rows_below_zero(table) == 0


def test_a_denied_write_in_a_pipeline_rolls_back_the_counted_one_before_it(
        gw: Gateway) -> None:
    table = Table(gw.target)

    def work() -> Any:
        with extended(gw, "refused-pipe-denied") as conn:
            try:
                with conn.pipeline():
                    conn.execute(table.bump(50))  # counted, stands
                    conn.execute(table.bump(150))  # counted, over: held
            except errors.InsufficientPrivilege as exc:
                assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                return str(exc)
        return None

    thread, out = in_thread(work)
    wait_for_request(gw)
    decide(gw, False)
    thread.join(30)
    assert out and "denied" in str(out[0])
    assert table.total() == 0  # the first UPDATE was not committed at the Sync


@pytest.mark.parametrize("how", ["file", "commands"])
def test_psql_a_block_inside_begin_aborts_the_transaction(gw: Gateway, how: str,
                                                          tmp_path: Path) -> None:
    table = Table(gw.target)
    lines = ["BEGIN;", f"INSERT INTO {table.name} VALUES (-7, 1);", table.bump(5) + ";",
             f"DROP TABLE {table.name};", "SELECT 1;", "COMMIT;"]
    if how == "file":
        script = tmp_path / "tx.sql"
        script.write_text("\n".join(lines) + "\n")
        args = ["-f", str(script)]
    else:
        args = [a for line in lines for a in ("-c", line)]
    out = subprocess.run(["psql", gw.dsn(application_name=f"refused-psql-{how}"), "-X",
                          *args], env=gw.env(), capture_output=True, text=True, timeout=60)
    assert 'blocked by rule "no-drop"' in out.stderr
    assert "current transaction is aborted" in out.stderr  # the SELECT after it
    assert "ROLLBACK" in out.stdout.split()  # COMMIT of an aborted transaction
    assert rows_below_zero(table) == 0 and table.total() == 0


@pytest.mark.parametrize("in_block", [False, True])
def test_on_the_wire_a_refused_message_fails_the_segment(gw: Gateway, in_block: bool) -> None:
    table = Table(gw.target)
    wire = Wire(gw.port())
    try:
        wire.login("alice", gw.tokens["alice"])
        if in_block:
            wire.query("BEGIN")
        insert = f"INSERT INTO {table.name} VALUES (-7, 1)"
        wire.send(b.parse(insert) + b.bind() + b.execute() + b.parse(f"DROP TABLE {table.name}")
                  + b.bind() + b.execute() + b.SYNC)
        answers = wire.until(b"Z")
        [error] = errors_in(answers)
        assert error["C"] == "42501" and 'rule "no-drop"' in error["M"]
        assert answers[-1] == (ord("Z"), b"E" if in_block else b"I")
        if in_block:
            assert errors_in(wire.query("SELECT 1"))[0]["C"] == "25P02"
            assert (ord("C"), b"ROLLBACK\x00") in wire.query("COMMIT")
        # A denial in a segment the gateway counts in: the counted write before it goes too.
        thread, out = in_thread(lambda: wire.send(
            b.parse(table.bump(20)) + b.bind() + b.execute() + b.parse(table.bump(150), "big")
            + b.bind(statement="big") + b.execute() + b.SYNC) or wire.until(b"Z"))
        decide(gw, False)
        thread.join(30)
        [answers] = out
        assert [e["C"] for e in errors_in(answers)] == ["42501"]
        assert answers[-1] == (ord("Z"), b"I")
    finally:
        wire.close()
    assert rows_below_zero(table) == 0 and table.total() == 0


# --- the gateway's own errors on a masked connection (issue 12, outside attacker) -----------


@pytest.mark.parametrize("how", ["extended", "pipeline", "simple-in-a-transaction"])
def test_the_gateway_s_own_errors_reach_a_masked_client_as_written(gw: Gateway,
                                                                   how: str) -> None:
    table = Table(gw.target)
    simple = how == "simple-in-a-transaction"
    with psycopg.connect(gw.dsn("shop_masked", application_name=f"own-errors-{how}"),
                         autocommit=not simple,
                         cursor_factory=psycopg.ClientCursor if simple else psycopg.Cursor,
                         ) as conn:
        with pytest.raises(errors.InsufficientPrivilege) as caught:
            if how == "pipeline":
                with conn.pipeline():
                    conn.execute(f"SELECT id FROM {table.name} WHERE id = %s", [1])
                    conn.execute(f"DROP TABLE {table.name}")
            else:
                conn.execute(f"SELECT id FROM {table.name} WHERE id = %s", [1])
                conn.execute(f"DROP TABLE {table.name}", prepare=not simple)
        if simple:
            conn.rollback()
        diag = caught.value.diag
        assert diag.message_primary and 'statement blocked by rule "no-drop"' in (
            diag.message_primary)
        assert diag.message_hint and "****" not in diag.message_hint
        assert conn.execute("SELECT 1").fetchone() == (1,)


# --- an approval is of the count its approver saw (issue 12, TOCTOU) ------------------------


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_approved_it_is_counted_again_and_refused_when_it_now_writes_more(
        gw: Gateway, protocol: str) -> None:
    """Held with 150 rows; meanwhile another session makes its WHERE match 650; approved, it
    runs counted again, is rolled back and refused: nothing is written."""
    table = Table(gw.target)
    app = f"rows-toctou-{protocol}"

    def work() -> Any:
        with (connect(gw, app) if protocol == "simple" else extended(gw, app)) as conn:
            try:
                conn.execute(f"UPDATE {table.name} SET n = n + 1 WHERE id <= %s", [150])
            except errors.InsufficientPrivilege as exc:
                assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on
                return str(exc)
        return None

    thread, out = in_thread(work)
    request = wait_for_request(gw)
    assert "150 rows" in request["statement"]
    table._admin(f"INSERT INTO {table.name} SELECT g, 0 FROM generate_series(-500, -1) g")
    decide(gw, True)
    thread.join(30)
    assert out and "it writes 650 rows, more than 150" in str(out[0])
    assert table.total() == 0
    verdicts = [r[1:] for r in records(gw, app)]
    assert verdicts[:3] == [("count", "rolled back"), ("approved", "blocked"), ("allow", "ok")]
