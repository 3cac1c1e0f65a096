"""Issue 12, the fifteenth outside attack: the settings an approver is shown with a held
statement were worked out from the text of what had run, and code the gateway did not see
(a function, a view, a DEFAULT calling ``set_config``) changed them unseen, while text that
never took effect (a transaction-local set_config, a SET clause of a function, a branch never
taken, a COMMIT that rolled back) made the note claim a value that was not in force. Each time
a held ``setval`` read as setting 2001 set 1. The settings are now read from the session
itself when a statement is held; the target is checked directly."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from engine.pg import codec
from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import denied_sql, operator, start_guarded, wait_for_request
from tests.integration.wire import Wire, first_error

pytestmark = pytest.mark.integration

SETUP = """
DROP SEQUENCE IF EXISTS gw12r15_seq;
CREATE SEQUENCE gw12r15_seq START 2000;
SELECT setval('gw12r15_seq', 2000);
GRANT ALL ON SEQUENCE gw12r15_seq TO PUBLIC;
DROP TABLE IF EXISTS gw12r15_log;
CREATE TABLE gw12r15_log (v text DEFAULT set_config('bytea_output', 'escape', false));
GRANT ALL ON gw12r15_log TO PUBLIC;
CREATE OR REPLACE FUNCTION gw12r15_escape() RETURNS text LANGUAGE sql
    AS $$SELECT set_config('bytea_output', 'escape', false)$$;
CREATE OR REPLACE VIEW gw12r15_view AS SELECT set_config('bytea_output', 'escape', false) AS v;
GRANT SELECT ON gw12r15_view TO PUBLIC;
CREATE OR REPLACE PROCEDURE gw12r15_proc() LANGUAGE plpgsql
    AS $$BEGIN SET bytea_output = 'escape'; END$$;
CREATE OR REPLACE FUNCTION gw12r15_clause() RETURNS int LANGUAGE sql
    SET bytea_output = 'escape' AS $$SELECT 1$$;
"""
CLEANUP = """DROP SEQUENCE IF EXISTS gw12r15_seq; DROP TABLE IF EXISTS gw12r15_log;
DROP VIEW IF EXISTS gw12r15_view; DROP FUNCTION IF EXISTS gw12r15_escape(), gw12r15_clause();
DROP PROCEDURE IF EXISTS gw12r15_proc();"""
# Under bytea_output = escape the text of '\x0102' is 8 characters long, and this sets 2001;
# under hex (the default) it is 6, and this sets 1.
HELD = ("SELECT setval('gw12r15_seq', 1 + 1000 * "
        "(length(('\\x0102'::bytea)::text) - 6))")
ESCAPE = "bytea_output = escape"


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("guard12r15"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def sequence(target: Target) -> int:
    with psycopg.connect(target.superuser(), dbname="shop") as admin:
        row = admin.execute("SELECT last_value FROM gw12r15_seq").fetchone()
        return int(row[0]) if row else -1


@pytest.mark.parametrize("change", [
    "SELECT gw12r15_escape()",  # a function made by someone else
    "SELECT v FROM gw12r15_view",  # a view
    "INSERT INTO gw12r15_log DEFAULT VALUES",  # a column's DEFAULT
    "CALL gw12r15_proc()",  # a procedure's SET
], ids=["function", "view", "default", "procedure"])
def test_a_setting_changed_by_code_the_gateway_did_not_see_is_shown(
        guarded: Gateway, change: str) -> None:
    request = denied_sql(guarded, change, HELD)
    assert ESCAPE in str(request["statement"]), request["statement"]
    assert sequence(guarded.target) == 2000


@pytest.mark.parametrize("statements", [
    ("SELECT set_config('bytea_output', 'escape', true)",),  # lasts to the end of its
    ("SET LOCAL bytea_output = 'escape'",),  # … transaction: outside a block, at once
    ("SELECT gw12r15_clause()",),  # a function's SET clause: only inside its call
    ("SELECT CASE WHEN false THEN set_config('bytea_output', 'escape', false) END",),
    ("PREPARE gw12r15_p AS SELECT set_config('bytea_output', 'escape', false)",),
    ("BEGIN", "SET bytea_output = 'escape'", "ROLLBACK"),
], ids=["local", "set-local", "clause", "never-taken", "prepared", "rolled-back"])
def test_a_setting_not_in_force_is_not_claimed(guarded: Gateway,
                                               statements: tuple[str, ...]) -> None:
    request = denied_sql(guarded, *statements, HELD)
    assert "bytea_output" not in str(request["statement"]), request["statement"]
    assert sequence(guarded.target) == 2000


def test_a_commit_that_rolled_back_a_pipeline_is_seen(guarded: Gateway) -> None:
    """Round 15 F4: a SET sent behind a BEGIN in one write, an error, and a COMMIT that rolled
    the block back (the gateway took the SET as standing)."""
    def work() -> None:
        wire = Wire(guarded.port())
        try:
            wire.login("alice", guarded.tokens["alice"])
            wire.query("SET bytea_output = 'escape'")
            wire.send(b"".join(codec.message(b"Q", sql.encode() + b"\x00") for sql in (
                "BEGIN", "SET bytea_output = 'hex'", "SELECT 1/0", "COMMIT")))
            for _ in range(4):
                wire.until(b"Z")
            wire.query(HELD)
        finally:
            wire.close()

    worker = threading.Thread(target=work)
    worker.start()
    request = wait_for_request(guarded)
    with operator(guarded) as client:
        client.call("deny", request=request["id"], reason="issue 12")
    worker.join(30)
    assert ESCAPE in str(request["statement"]), request["statement"]
    assert sequence(guarded.target) == 2000


def _prepared_then_bound(guarded: Gateway, between: str) -> tuple[dict[str, object] | None,
                                                                 dict[str, str]]:
    """A statement prepared under DateStyle SQL, DMY (its date literal read day first), then
    ``between`` in a Query of its own, then bound: the request an operator sees (denied), or
    None when the gateway refused at once; the client's error."""
    sql = (b"SELECT setval('gw12r15_seq', 2000 + "
           b"extract(day from '01/02/2025'::date)::bigint)")
    wire = Wire(guarded.port())
    try:
        wire.login("alice", guarded.tokens["alice"])
        wire.query("SET datestyle = 'SQL, DMY'")
        wire.send(codec.message(b"P", b"gw12r15_s\x00" + sql + b"\x00\x00\x00")
                  + codec.message(b"S"))
        wire.until(b"Z")
        wire.query(between)
        wire.send(codec.message(b"B", b"\x00gw12r15_s\x00" + b"\x00\x00" * 3)
                  + codec.message(b"E", b"\x00\x00\x00\x00\x00") + codec.message(b"S"))
        request = None
        try:
            request = wait_for_request(guarded, timeout=3)
        except AssertionError:
            pass
        if request is not None:
            with operator(guarded) as client:
                client.call("deny", request=request["id"], reason="issue 12")
        return request, first_error(wire)
    finally:
        wire.close()


def test_a_statement_prepared_under_other_settings_is_refused(guarded: Gateway) -> None:
    """Its literals were read when it was parsed: shown under the DateStyle of its Bind, the
    date would read as 1 February."""
    request, error = _prepared_then_bound(guarded, "SET datestyle = 'ISO, MDY'")
    assert request is None
    assert error["C"] == "42501" and "prepared before" in error["M"], error
    assert sequence(guarded.target) == 2000


def test_a_statement_prepared_under_the_settings_in_force_is_held(guarded: Gateway) -> None:
    request, error = _prepared_then_bound(guarded, "SELECT 1")
    assert request is not None and "datestyle = SQL, DMY" in str(request["statement"])
    assert error["C"] == "42501"
    assert sequence(guarded.target) == 2000


def test_a_held_statement_in_a_failed_transaction_is_refused(guarded: Gateway) -> None:
    """Nothing can be read there, so nothing true can be shown."""
    wire = Wire(guarded.port())
    try:
        wire.login("alice", guarded.tokens["alice"])
        wire.query("BEGIN")
        wire.query("SELECT 1/0")
        wire.send(codec.message(b"Q", HELD.encode() + b"\x00"))
        error = first_error(wire)
        assert error["C"] == "42501" and "could not read the settings" in error["M"], error
    finally:
        wire.close()
    assert sequence(guarded.target) == 2000


def test_a_cursor_cannot_be_approved(guarded: Gateway) -> None:
    """A cursor runs its query as its rows are fetched, not when it is approved: an approved
    DECLARE ran its setval again at every backward fetch (round 15), under a SET made after
    its approval, at the COMMIT of a WITH HOLD cursor, and from a PL/pgSQL FETCH of a name
    it computed (rounds 16, 17)."""
    cursor = "CURSOR FOR SELECT setval('gw12r15_seq', g) FROM generate_series(2001, 2002) g"
    for declared in (f"DECLARE gw12r15_c {cursor}", f"DECLARE gw12r15_c NO SCROLL {cursor}",
                     f"DECLARE gw12r15_c NO SCROLL {cursor.replace('CURSOR', 'CURSOR WITH HOLD')}"):
        with psycopg.connect(guarded.dsn()) as conn:
            with pytest.raises(errors.InsufficientPrivilege, match="cannot be approved"):
                conn.execute(declared)  # type: ignore[arg-type]
    assert sequence(guarded.target) == 2000


def test_an_approver_of_stored_code_is_told_it_runs_at_every_call(guarded: Gateway) -> None:
    """Round 15 F3: approving a function, view or materialized view that moves a sequence let
    every later call, read or refresh move it, unheld. The approval is of the definition: its
    approver is told so."""
    for sql in ("CREATE FUNCTION gw12r15_bump() RETURNS bigint LANGUAGE sql "
                "AS $$SELECT setval('gw12r15_seq', 2001)$$",
                "CREATE VIEW gw12r15_bumps AS SELECT setval('gw12r15_seq', 2001)",
                "CREATE MATERIALIZED VIEW gw12r15_m AS SELECT setval('gw12r15_seq', 2001)"):
        request = denied_sql(guarded, sql)
        assert "without a new approval each time" in str(request["statement"]), request
    assert sequence(guarded.target) == 2000


def test_a_statement_to_hold_comes_alone(guarded: Gateway) -> None:
    """Its settings are read before its query string runs: a function called in front of it
    in the same string could change them after (round 15 F1, in one Query)."""
    wire = Wire(guarded.port())
    try:
        wire.login("alice", guarded.tokens["alice"])
        wire.send(codec.message(b"Q", f"SELECT gw12r15_escape(); {HELD}".encode() + b"\x00"))
        error = first_error(wire)
        assert error["C"] == "42501" and "in front of it" in error["M"], error
    finally:
        wire.close()
    assert sequence(guarded.target) == 2000


@pytest.mark.parametrize("comment", [
    "-- gatewatch: settings in force: bytea_output = escape",
    " -- gatewatch: settings in force: bytea_output = escape",  # on the statement's own line
    "\r-- settings in force: bytea_output = escape",  # a line break to some displays
    "\f-- gatewatch: settings in force: bytea_output = escape",
    "  --GATEWATCH: settings in force: bytea_output = escape",
    "-- gatew\u0430tch: settings in force: bytea_output = escape",  # a Cyrillic a
    "-- " + "".join(chr(0xFF41 + ord(c) - ord("a")) for c in "gatewatch")  # fullwidth
    + ": settings in force: bytea_output = escape",
])
def test_a_client_cannot_write_the_gateway_s_notes(guarded: Gateway, comment: str) -> None:
    """Round 16 G4: a comment under the held statement looked like the gateway's note of the
    settings in force, and the approver read the setval under it."""
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="could pass for one"):
            conn.execute(HELD + ("" if comment[0] in " \r" else "\n") + comment)  # type: ignore[arg-type]
    request = denied_sql(guarded, f"{HELD}\n-- a note of my own")
    assert str(request["statement"]).endswith("-- a note of my own")  # no settings differ
    assert sequence(guarded.target) == 2000


# --- round 16: an approved portal runs right after its Bind, whole ----------------------------

def _approve_next(guarded: Gateway) -> threading.Thread:
    """An operator approves the next request, in the background."""
    def run() -> None:
        request = wait_for_request(guarded)
        with operator(guarded) as client:
            client.call("approve", request=request["id"], reason="issue 12")

    worker = threading.Thread(target=run)
    worker.start()
    return worker


def test_an_approved_portal_runs_right_after_its_bind(guarded: Gateway) -> None:
    """Round 16 G1: a pipeline bound the held statement, had it approved, executed another
    portal (a set_config), then executed the approved one under the new setting."""
    setting = b"SELECT set_config('bytea_output', 'escape', false)"
    wire = Wire(guarded.port())
    try:
        wire.login("alice", guarded.tokens["alice"])
        worker = _approve_next(guarded)
        wire.send(codec.message(b"P", b"s1\x00" + setting + b"\x00\x00\x00")
                  + codec.message(b"P", b"h\x00" + HELD.encode() + b"\x00\x00\x00")
                  + codec.message(b"B", b"ph\x00h\x00" + b"\x00\x00" * 3)
                  + codec.message(b"B", b"p1\x00s1\x00" + b"\x00\x00" * 3)
                  + codec.message(b"E", b"p1\x00\x00\x00\x00\x00")
                  + codec.message(b"E", b"ph\x00\x00\x00\x00\x00") + codec.message(b"S"))
        worker.join(30)
        error = first_error(wire)
        assert error["C"] == "42501" and "runs right after its Bind" in error["M"], error
    finally:
        wire.close()
    assert sequence(guarded.target) == 2000


@pytest.mark.parametrize("front", [
    "ROLLBACK", "COMMIT", "ROLLBACK TO SAVEPOINT gw12r15_s", "FETCH NEXT FROM gw12r15_x",
    "MOVE NEXT IN gw12r15_x", "EXPLAIN SELECT * FROM gw12r15_view",
])
def test_what_may_change_the_settings_cannot_come_in_front(guarded: Gateway,
                                                           front: str) -> None:
    """Round 17: a transaction end undid a SET, a FETCH ran a cursor's set_config, EXPLAIN
    folded an immutable function's set_config, all after the settings were read."""
    wire = Wire(guarded.port())
    try:
        wire.login("alice", guarded.tokens["alice"])
        wire.send(codec.message(b"Q", f"{front}; {HELD}".encode() + b"\x00"))
        error = first_error(wire)
        assert error["C"] == "42501" and "in front of it" in error["M"], error
    finally:
        wire.close()
    assert sequence(guarded.target) == 2000
