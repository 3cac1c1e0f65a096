"""Issue 12, "judge writes by their effect … and what procedural code reaches", for code that a
statement runs without naming it: a trigger, a rule or a column default on the table an INSERT
writes, a view whose query calls a function. Installed on the target by its owner (not through
the gateway, where it would have been judged when created), that code is followed through the
connection's catalog (the one masking keeps): the statement is counted by what the code writes
and held by the example policy's ``review-big-writes``. Denied, every row stays. A table with no
code, or code that runs only on writes when the statement reads, passes as before.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import denied, operator, start_guarded

pytestmark = pytest.mark.integration

SETUP = """
SET ROLE gw_scram;
DROP TABLE IF EXISTS gw12s_log, gw12s_trig, gw12s_rule, gw12s_default, gw12s_plain CASCADE;
CREATE TABLE gw12s_log (id int);
INSERT INTO gw12s_log SELECT generate_series(1, 500);
CREATE OR REPLACE FUNCTION gw12s_purge() RETURNS int LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw12s_log WHERE id > 0; RETURN 1; END$$;
CREATE OR REPLACE FUNCTION gw12s_trigger() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN UPDATE gw12s_log SET id = -id; RETURN NEW; END$$;
CREATE TABLE gw12s_trig (id int);
CREATE TRIGGER gw12s_after AFTER INSERT ON gw12s_trig FOR EACH ROW
  EXECUTE FUNCTION gw12s_trigger();
CREATE TABLE gw12s_rule (id int);
CREATE RULE gw12s_also AS ON INSERT TO gw12s_rule DO ALSO DELETE FROM gw12s_log;
CREATE TABLE gw12s_default (id int, stamp int DEFAULT gw12s_purge());
CREATE VIEW gw12s_view AS SELECT gw12s_purge() AS done;
CREATE VIEW gw12s_outer AS SELECT * FROM gw12s_view;
CREATE TABLE gw12s_plain (id int, at timestamptz DEFAULT now());
RESET ROLE;
"""
CLEANUP = ("DROP TABLE IF EXISTS gw12s_log, gw12s_trig, gw12s_rule, gw12s_default, gw12s_plain "
           "CASCADE; DROP FUNCTION IF EXISTS gw12s_purge(), gw12s_trigger() CASCADE;")


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("stored12"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def intact(target: Target) -> int:
    with psycopg.connect(target.superuser(), dbname="shop", autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FROM gw12s_log WHERE id > 0").fetchone()
        return int(row[0]) if row else -1


STATEMENTS = [
    pytest.param("INSERT INTO gw12s_trig VALUES (%s)", id="trigger"),
    pytest.param("INSERT INTO gw12s_rule VALUES (%s)", id="rule"),
    pytest.param("INSERT INTO gw12s_default (id) VALUES (%s)", id="default"),
    pytest.param("SELECT * FROM gw12s_view WHERE 1 = %s", id="view"),
    pytest.param("SELECT * FROM public.gw12s_outer WHERE 1 = %s", id="view-over-a-view"),
    pytest.param("INSERT INTO gw12s_plain (id) SELECT done FROM gw12s_view WHERE 1 = %s",
                 id="insert-from-a-view"),
]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in a transaction"])
@pytest.mark.parametrize("sql", STATEMENTS)
def test_code_stored_on_what_a_statement_names_is_counted(
        guarded: Gateway, sql: str, protocol: str, in_transaction: bool) -> None:
    simple = protocol == "simple"
    cursor = psycopg.ClientCursor if simple else psycopg.Cursor

    def work() -> None:
        with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True,
                             cursor_factory=cursor) as conn:
            if in_transaction:
                conn.execute("BEGIN")
            conn.execute(sql, (1,))  # type: ignore[arg-type]

    request = denied(guarded, work)
    assert request["rule"] == "review-big-writes"
    assert "writes 500 rows" in str(request["statement"])
    assert intact(guarded.target) == 500


def test_a_copy_into_a_table_known_to_carry_code_is_held(guarded: Gateway) -> None:
    """A COPY cannot be counted (its rows flow while it runs): into a table the catalog knows
    to carry code, it meets the rule and is held."""
    def work() -> None:
        with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM gw12s_trig")  # the catalog reads the table
            with conn.cursor().copy("COPY gw12s_trig FROM STDIN") as copy:
                copy.write_row((1,))

    request = denied(guarded, work)
    assert request["rule"] == "review-big-writes"
    assert intact(guarded.target) == 500


def test_tables_without_code_and_reads_of_tables_with_write_code_pass(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute("INSERT INTO gw12s_plain (id) VALUES (1)")  # now() is PostgreSQL's own
        conn.execute("INSERT INTO gw12s_plain (id) SELECT g FROM generate_series(1, 300) g")
        assert conn.execute("SELECT count(*) FROM gw12s_trig").fetchone() == (0,)
        with conn.cursor().copy("COPY gw12s_plain (id) FROM STDIN") as copy:
            for i in range(200):
                copy.write_row((i,))
        assert conn.execute("SELECT count(*) FROM gw12s_plain").fetchone() == (501,)
    with operator(guarded) as client:
        assert not client.call("approvals")["pending"]
    assert intact(guarded.target) == 500
