"""Writes judged by their effect (issue 12, ``rows_over``) through the gateway and a real
PostgreSQL, with the example rules and one more: review writes over 100 rows. Each effect is
checked on the target directly, and the records say what ran."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.conftest import Gateway, Target, start_gateway, stop_gateway
from tests.integration.guarded import example_rules, wait_for_request
from tests.integration.test_guardrail_relay import decide, in_thread, records

pytestmark = pytest.mark.integration

BIG_WRITES = """  - name: big-writes
    action: review
    match: {rows_over: 100}
"""
_names = itertools.count(1)


@pytest.fixture(scope="module")
def gw(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(pg_target, tmp_path_factory.mktemp("rows-over"),
                            rules=example_rules() + BIG_WRITES)
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
    assert "150 rows" in request["statement"] and request["rule"] == "big-writes"
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
                conn.commit()  # the transaction goes on: the first UPDATE commits
                return str(exc)
        return None

    thread, out = in_thread(work)
    wait_for_request(gw)
    assert table.total() == 0  # the client's transaction is open; the big one rolled back
    decide(gw, False)
    thread.join(30)
    assert out and "denied" in str(out[0])
    assert table.total() == 10
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


def test_the_extended_protocol_is_refused_with_what_to_do(gw: Gateway) -> None:
    table = Table(gw.target)
    with psycopg.connect(gw.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.FeatureNotSupported, match="simple Query"):
            conn.execute(f"UPDATE {table.name} SET n = n + 1 WHERE id <= %s", [5])
    assert table.total() == 0
