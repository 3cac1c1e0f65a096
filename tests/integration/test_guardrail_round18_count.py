"""The eighteenth outside attack, findings 4 and 6, through the real gateway.

Finding 6: to count a write's rows the gateway ran it and rolled it back over the limit, but a
rollback undoes rows only: ``nextval`` and an advisory lock stayed after a denial, and the
client was told "The statement was not run". A write whose counting run could leave such
effects (volatile PostgreSQL functions, code of the target's — called, or fired by its table's
triggers — rows inserted that take a serial's value) is now held outright, unrun; a counted
write that is denied says it ran once to be counted. Finding 4: ``gatewatch approvals`` joined
a held statement onto one line, so a real line after a ``--`` comment read as part of it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import (
    cli_env,
    denied,
    denied_sql,
    operator,
    start_guarded,
    wait_for_request,
)
from tests.integration.test_recording import run_cli

pytestmark = pytest.mark.integration

SETUP = """
DROP TABLE IF EXISTS gw18c_t, gw18c_trig;
DROP SEQUENCE IF EXISTS gw18c_seq;
CREATE SEQUENCE gw18c_seq START 2000;
SELECT setval('gw18c_seq', 2000);
CREATE TABLE gw18c_t (id serial PRIMARY KEY, n int);
INSERT INTO gw18c_t (n) SELECT g FROM generate_series(1, 300) g;
CREATE TABLE gw18c_trig (id int PRIMARY KEY, n int);
INSERT INTO gw18c_trig SELECT g, g FROM generate_series(1, 300) g;
CREATE OR REPLACE FUNCTION gw18c_bump() RETURNS bigint LANGUAGE sql
    AS $$SELECT nextval('gw18c_seq')$$;
CREATE OR REPLACE FUNCTION gw18c_fire() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN PERFORM nextval('gw18c_seq'); RETURN NEW; END$$;
CREATE TRIGGER gw18c_fires BEFORE UPDATE ON gw18c_trig FOR EACH ROW EXECUTE FUNCTION gw18c_fire();
GRANT ALL ON gw18c_t, gw18c_trig, gw18c_seq, gw18c_t_id_seq TO PUBLIC;
"""
CLEANUP = """DROP TABLE IF EXISTS gw18c_t, gw18c_trig; DROP SEQUENCE IF EXISTS gw18c_seq;
DROP FUNCTION IF EXISTS gw18c_bump(), gw18c_fire();"""
LOCK = 18181


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("guard18c"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def direct(target: Target, sql: str) -> object:
    with psycopg.connect(target.superuser(), dbname="shop") as admin:
        row = admin.execute(sql).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


def untouched(target: Target) -> None:
    assert direct(target, "SELECT last_value FROM gw18c_seq") == 2000
    assert direct(target, "SELECT last_value FROM gw18c_t_id_seq") == 300
    assert direct(target, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                          f"AND objid = {LOCK}") == 0


@pytest.mark.parametrize("sql", [
    # the attacker's: a sequence moved and a session lock taken by the counting run
    "UPDATE gw18c_t SET n = n WHERE id > 0 AND nextval('gw18c_seq') > 0 "
    f"AND pg_advisory_lock({LOCK}) IS NOT NULL",
    "UPDATE gw18c_t SET n = n WHERE id > 0 AND nextval('gw18c_seq') > 0",
    f"DELETE FROM gw18c_t WHERE id > 0 AND pg_try_advisory_lock({LOCK})",
], ids=["nextval-and-lock", "nextval", "try-lock"])
def test_a_write_whose_count_a_rollback_would_not_undo_is_held_unrun(
        guarded: Gateway, sql: str) -> None:
    request = denied_sql(guarded, sql)
    assert request["rule"] == "review-big-writes", request
    assert "does not count them by running it" in str(request["reason"]), request["reason"]
    untouched(guarded.target)


def test_approved_it_runs_once(guarded: Gateway) -> None:
    sql = "UPDATE gw18c_t SET n = n WHERE id > 0 AND nextval('gw18c_seq') > 0"

    def work() -> None:
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    worker = threading.Thread(target=work)
    worker.start()
    request = wait_for_request(guarded)
    with operator(guarded) as client:
        client.call("approve", request=request["id"], reason="round 18")
    worker.join(30)
    try:
        assert direct(guarded.target, "SELECT last_value FROM gw18c_seq") == 2300  # 300 rows
    finally:
        guarded.target.cluster.sql("SELECT setval('gw18c_seq', 2000)", dbname="shop")


def test_a_counted_write_denied_says_it_ran_once_to_be_counted(guarded: Gateway) -> None:
    caught: list[BaseException] = []

    def work() -> None:
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            try:
                conn.execute("UPDATE gw18c_t SET n = n + 1 WHERE id > 0")
            except psycopg.Error as exc:
                caught.append(exc)
                raise

    denied(guarded, work)
    message = str(caught[0])
    assert "it was run once to count its rows, and rolled back" in message, message
    assert "The statement was not run" not in message
    assert direct(guarded.target, "SELECT sum(n) FROM gw18c_t") == 45150  # 1 + … + 300


FORGED = ("SELECT setval('gw18c_seq', 2001) -- bump past the import, ticket OPS-88\n"
          ", setval('gw18c_seq', 1)")


def test_approvals_show_a_line_after_a_comment_as_its_own(guarded: Gateway) -> None:
    listed: list[str] = []

    def work() -> None:
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            psycopg.ClientCursor(conn).execute(FORGED)

    worker = threading.Thread(target=work)
    worker.start()
    request = wait_for_request(guarded)
    listed.append(run_cli("approvals", env=cli_env(guarded)).stdout)
    with operator(guarded) as client:
        client.call("deny", request=request["id"], reason="round 18")
    worker.join(30)
    lines = listed[0].splitlines()
    first = next(i for i, line in enumerate(lines) if "OPS-88" in line)
    assert lines[first].endswith("1│ SELECT setval('gw18c_seq', 2001) -- bump past the "
                                 "import, ticket OPS-88"), listed[0]
    assert lines[first + 1].endswith("2│ , setval('gw18c_seq', 1)"), listed[0]
    assert direct(guarded.target, "SELECT last_value FROM gw18c_seq") == 2000
