"""Issue 12, "judge writes by their effect … and what procedural code reaches": a write whose
own count is small but which makes the target write many more rows — through a trigger, a
rule, or a foreign key's cascade that already exist on the target — is counted whole and held
by the example policy's ``review-big-writes`` (over 100 rows), in both protocols; denied, it
leaves every row in place. Writes that stay small pass.
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
DROP TABLE IF EXISTS gw12h_k, gw12h_c, gw12h_audit, gw12h_log CASCADE;
DROP FUNCTION IF EXISTS gw12h_purge(), gw12h_purge_log();
CREATE TABLE gw12h_k (id int PRIMARY KEY, note text);
INSERT INTO gw12h_k SELECT i, 'n' FROM generate_series(1, 10) AS i;
CREATE TABLE gw12h_c (id int PRIMARY KEY, k int REFERENCES gw12h_k ON DELETE CASCADE);
INSERT INTO gw12h_c SELECT i, (i % 10) + 1 FROM generate_series(1, 2000) AS i;
CREATE TABLE gw12h_audit (n int);
INSERT INTO gw12h_audit SELECT generate_series(1, 300);
CREATE FUNCTION gw12h_purge() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw12h_audit; RETURN NEW; END$$;
CREATE TRIGGER gw12h_purge AFTER UPDATE OF note ON gw12h_k
  FOR EACH STATEMENT EXECUTE FUNCTION gw12h_purge();
CREATE TABLE gw12h_log (id int);
INSERT INTO gw12h_log SELECT generate_series(1, 500);
CREATE FUNCTION gw12h_purge_log() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw12h_log; RETURN NULL; END$$;
CREATE CONSTRAINT TRIGGER gw12h_later AFTER UPDATE OF id ON gw12h_k
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gw12h_purge_log();
CREATE VIEW gw12h_v AS SELECT id, note FROM gw12h_k;
CREATE RULE gw12h_wipe AS ON UPDATE TO gw12h_v DO INSTEAD DELETE FROM gw12h_log;
RESET ROLE;
"""
STATE = ("SELECT (SELECT count(*) FROM gw12h_k) || '/' || (SELECT count(*) FROM gw12h_c) || '/' "
         "|| (SELECT count(*) FROM gw12h_audit) || '/' || (SELECT count(*) FROM gw12h_log)")
BEFORE = "10/2000/300/500"


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("hidden12"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql("DROP TABLE IF EXISTS gw12h_k, gw12h_c, gw12h_audit, gw12h_log "
                              "CASCADE; DROP FUNCTION IF EXISTS gw12h_purge(), gw12h_purge_log();",
                              dbname="shop")


def state(target: Target) -> object:
    with psycopg.connect(target.superuser(), dbname="shop", autocommit=True) as admin:
        row = admin.execute(STATE).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


def held_and_denied(gateway: Gateway, sql: str, params: tuple[object, ...] | None,
                    in_transaction: bool) -> dict[str, object]:
    cursor = psycopg.ClientCursor if params is None else psycopg.Cursor
    with psycopg.connect(gateway.dsn(), autocommit=True, cursor_factory=cursor) as conn:

        def work() -> None:
            try:
                if in_transaction:
                    conn.execute("BEGIN")
                conn.execute(sql, params)  # type: ignore[arg-type]
            finally:
                if in_transaction:
                    conn.execute("ROLLBACK")

        return denied(gateway, work)


HIDDEN = [
    # one row of its own; 200 more through the existing ON DELETE CASCADE
    ("DELETE FROM gw12h_k WHERE id = %s", (1,)),
    # one row of its own; the statement trigger deletes 300
    ("UPDATE gw12h_k SET note = 'x' WHERE id = %s", (2,)),
    # a view's INSTEAD rule: the tag says UPDATE 0, the rule deletes 500
    ("UPDATE gw12h_v SET note = 'x' WHERE id = %s", (3,)),
    # a deferred constraint trigger: it would delete 500 at COMMIT, after the count
    ("UPDATE gw12h_k SET id = id WHERE id = %s", (4,)),
]


@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in a transaction"])
@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize(("sql", "params"), HIDDEN, ids=["cascade", "trigger", "rule", "deferred"])
def test_rows_written_beside_the_statement_are_counted(
        guarded: Gateway, sql: str, params: tuple[object, ...], protocol: str,
        in_transaction: bool) -> None:
    request = held_and_denied(guarded, sql if protocol == "extended" else sql % params,
                              params if protocol == "extended" else None, in_transaction)
    assert request["rule"] == "review-big-writes"
    # The approver sees what it wrote, the rows beside it included.
    assert "through triggers, rules or foreign keys), more than 100" in str(request["statement"])
    assert state(guarded.target) == BEFORE


def test_small_writes_with_small_side_effects_pass(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with conn.transaction():
            conn.execute("DELETE FROM gw12h_c WHERE id <= %s", (5,))
        assert conn.execute("SELECT count(*) FROM gw12h_c").fetchone() == (1995,)
        conn.execute("INSERT INTO gw12h_c SELECT i, (i % 10) + 1 FROM generate_series(1, 5) i")
    with operator(guarded) as client:
        assert not client.call("approvals")["pending"]
    assert state(guarded.target) == BEFORE
