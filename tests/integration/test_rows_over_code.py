"""Issue 12, "judge writes by their effect … and what procedural code reaches": a statement
that writes nothing itself but calls code already on the target — a PL/pgSQL or SQL function,
a set-returning function, a procedure, an operator's function, a query passed as text — is
counted by what that code writes, and held by the example policy's ``review-big-writes``
(over 100 rows) in both protocols, in autocommit and in a transaction; denied, it leaves every
row in place. A procedure that commits cannot be counted inside the gateway's transaction: it
is held, and once approved runs as the procedure it is. Code that writes little passes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from tests.conftest import Gateway, Target, stop_gateway
from tests.engine.pg import build as b
from tests.integration.guarded import approved, denied, operator, start_guarded, wait_for_request
from tests.integration.wire import Wire, errors_in

pytestmark = pytest.mark.integration

SETUP = """
SET ROLE gw_scram;
DROP TABLE IF EXISTS gw12c_log, gw12c_done CASCADE;
CREATE TABLE gw12c_log (id int);
INSERT INTO gw12c_log SELECT generate_series(1, 500);
CREATE TABLE gw12c_done (note text);
CREATE OR REPLACE FUNCTION gw12c_purge() RETURNS int LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw12c_log; RETURN 1; END$$;
CREATE OR REPLACE FUNCTION gw12c_sql_purge() RETURNS SETOF int LANGUAGE sql AS
  $$UPDATE gw12c_log SET id = -id RETURNING 1$$;
CREATE OR REPLACE PROCEDURE gw12c_proc() LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw12c_log WHERE id > 0; END$$;
CREATE OR REPLACE FUNCTION gw12c_op(a int, b int) RETURNS bool LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw12c_log; RETURN a = b; END$$;
DROP OPERATOR IF EXISTS @~~@ (int, int);
CREATE OPERATOR @~~@ (LEFTARG = int, RIGHTARG = int, FUNCTION = gw12c_op);
CREATE OR REPLACE FUNCTION gw12c_five() RETURNS int LANGUAGE sql AS
  $$DELETE FROM gw12c_log WHERE id > 495 RETURNING 1$$;
CREATE OR REPLACE PROCEDURE gw12c_commits() LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO gw12c_done VALUES ('committed'); COMMIT; DELETE FROM gw12c_log; END$$;
CREATE OR REPLACE FUNCTION gw12c_empty() RETURNS int LANGUAGE plpgsql AS
  $$BEGIN TRUNCATE gw12c_log; RETURN 0; END$$;
CREATE OR REPLACE FUNCTION gw12c_rewrite() RETURNS int LANGUAGE plpgsql AS
  $$BEGIN ALTER TABLE gw12c_log ALTER COLUMN id TYPE int USING -id; RETURN 0; END$$;
CREATE OR REPLACE FUNCTION public.pi() RETURNS float8 LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw12c_log; RETURN 3; END$$;
RESET ROLE;
"""
CLEANUP = ("DROP TABLE IF EXISTS gw12c_log, gw12c_done CASCADE; "
           "DROP OPERATOR IF EXISTS @~~@ (int, int); "
           "DROP FUNCTION IF EXISTS gw12c_purge(), gw12c_sql_purge(), gw12c_op(int, int), "
           "gw12c_five(), gw12c_empty(), gw12c_rewrite(), public.pi(), gw12c_purge(int); "
           "DROP PROCEDURE IF EXISTS gw12c_proc(), gw12c_commits();")


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("code12"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def rows(target: Target, sql: str = "SELECT count(*) FROM gw12c_log WHERE id > 0") -> object:
    with psycopg.connect(target.superuser(), dbname="shop", autocommit=True) as admin:
        row = admin.execute(sql).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


CALLS = [
    ("SELECT gw12c_purge() WHERE %s = 1", (1,)),
    ("SELECT count(*) FROM gw12c_sql_purge() WHERE %s = 1", (1,)),
    ("CALL gw12c_proc()", None),
    ("SELECT %s @~~@ 2", (1,)),
    ("SELECT query_to_xml('SELECT gw12c_purge()', true, true, '') WHERE %s = 1", (1,)),
    ("SELECT 1 FROM generate_series(1, 2) g WHERE public.gw12c_purge() = %s", (1,)),
]


NAMES = ["plpgsql", "sql-setof", "procedure", "operator", "query-text", "qualified"]
CASES = [pytest.param(sql, params, protocol, id=f"{name}-{protocol}")
         for name, (sql, params) in zip(NAMES, CALLS, strict=True)
         for protocol in (("simple", "extended") if params else ("simple",))]


@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in a transaction"])
@pytest.mark.parametrize(("sql", "params", "protocol"), CASES)
def test_what_the_code_a_statement_calls_writes_is_counted(
        guarded: Gateway, sql: str, params: tuple[object, ...] | None, protocol: str,
        in_transaction: bool) -> None:
    simple = protocol == "simple"
    text = sql % params if simple and params is not None else sql
    cursor = psycopg.ClientCursor if simple else psycopg.Cursor

    def work() -> None:
        with psycopg.connect(guarded.dsn(), autocommit=True, cursor_factory=cursor) as conn:
            if in_transaction:
                conn.execute("BEGIN")
            conn.execute(text, None if simple else params)  # type: ignore[arg-type]

    request = denied(guarded, work)
    assert request["rule"] == "review-big-writes"
    if "query_to_xml" in sql:
        # PostgreSQL's volatile query_to_xml runs any SQL: held unrun, not counted by running
        # it (what it does a rollback may not undo; outside attack round 18)
        assert "does not count them by running it" in str(request["reason"])
    else:
        assert "the code it calls writes 500 rows" in str(request["statement"])
    assert rows(guarded.target) == 500


@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in a transaction"])
def test_code_run_while_a_statement_is_planned_cannot_pass_uncounted(
        guarded: Gateway, in_transaction: bool) -> None:
    """Found by the outside attack: an IMMUTABLE function with constant arguments runs when
    the statement is planned (a Bind), before the count that begins at its Execute."""
    guarded.target.cluster.sql(
        "CREATE OR REPLACE FUNCTION gw12c_imm(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE "
        "AS $$BEGIN RETURN gw12c_purge() + x; END$$; "
        "GRANT EXECUTE ON FUNCTION gw12c_imm(int) TO PUBLIC", dbname="shop")
    try:
        for sql in ("SELECT gw12c_imm(0) WHERE %s = 1",
                    "UPDATE gw12c_done SET note = 'x' WHERE note = %s AND gw12c_imm(0) > 0"):
            def work(sql: str = sql) -> None:
                with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
                    if in_transaction:
                        conn.execute("BEGIN")
                    try:
                        conn.execute(sql, ("1",) if "note" in sql else (1,), prepare=True)
                    finally:
                        if in_transaction:
                            conn.execute("COMMIT")  # aborted by the denial: rolls back

            request = denied(guarded, work)
            assert "when PostgreSQL planned the statement" in str(request["statement"])
            assert rows(guarded.target) == 500
    finally:
        guarded.target.cluster.sql("DROP FUNCTION IF EXISTS gw12c_imm(int)", dbname="shop")


@pytest.mark.parametrize("stores", [
    "CREATE VIEW gw12c_v AS SELECT gw12c_purge()",
    "CREATE TEMP TABLE gw12c_t (x int DEFAULT gw12c_purge())",
    "CREATE MATERIALIZED VIEW gw12c_mv AS SELECT gw12c_purge() WITH NO DATA",
])
def test_code_stored_to_run_later_is_read_when_it_is_stored(guarded: Gateway,
                                                             stores: str) -> None:
    """Found by the outside attack: a view, a default, a materialized view made through the
    gateway over a writing function let later statements run it, uncounted."""
    def work() -> None:
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            conn.execute(stores)

    request = denied(guarded, work)
    assert request["rule"] == "review-opaque-code"
    assert rows(guarded.target) == 500


def test_code_that_writes_little_passes(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT gw12c_five()").fetchone() == (1,)
        conn.execute("INSERT INTO gw12c_log SELECT generate_series(496, 500)")
    with operator(guarded) as client:
        assert not client.call("approvals")["pending"]
    assert rows(guarded.target) == 500


def test_a_procedure_that_commits_is_held_and_runs_whole_once_approved(
        guarded: Gateway) -> None:
    outcome: list[object] = []

    def run() -> None:
        try:
            with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
                conn.execute("CALL gw12c_commits()")
                outcome.append("ran")
        except psycopg.Error as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        request = wait_for_request(guarded)
        assert "it ends transactions itself" in str(request["statement"])
        # Held, nothing of it stands: the gateway's transaction was rolled back whole.
        assert rows(guarded.target, "SELECT count(*) FROM gw12c_done") == 0
        assert rows(guarded.target) == 500
        with operator(guarded) as client:
            client.call("approve", request=request["id"], reason="the nightly purge")
    finally:
        worker.join(30)
    assert outcome == ["ran"]
    assert rows(guarded.target, "SELECT count(*) FROM gw12c_done") == 1
    assert rows(guarded.target, "SELECT count(*) FROM gw12c_log") == 0
    guarded.target.cluster.sql("INSERT INTO gw12c_log SELECT generate_series(1, 500); "
                               "TRUNCATE gw12c_done", dbname="shop")


@pytest.mark.parametrize("call", ["SELECT gw12c_empty()", "SELECT gw12c_rewrite()"],
                         ids=["truncate", "rewrite"])
def test_a_table_emptied_or_rewritten_by_the_code_is_held(guarded: Gateway, call: str) -> None:
    """TRUNCATE and a rewrite reset the table's counts: the count reads nothing, but the
    table's file changed, and that is held."""
    def work() -> None:
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            conn.execute(call)

    request = denied(guarded, work)
    assert "emptied or rewritten" in str(request["statement"])
    assert rows(guarded.target) == 500


def test_a_schema_ahead_of_pg_catalog_makes_a_built_in_name_a_user_s(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        # The SET is held itself (the eighth attack: a DBA's code run in this session
        # would call the user's functions and operators); approved, what follows still is.
        made, failed = approved(guarded, lambda: conn.execute(
            "SET search_path = public, pg_catalog"))
        assert made["rule"] == "review-destructive-alter-table" and failed is None
        request = denied(guarded, lambda: conn.execute("SELECT pi()"))
    assert "the code it calls writes 500 rows" in str(request["statement"])
    assert rows(guarded.target) == 500


def test_a_function_the_session_created_does_not_vouch_for_another_of_its_name(
        guarded: Gateway) -> None:
    try:
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            # A new function of a name the target has: held (an overload that matches a
            # caller's arguments better is the one that runs — the seventh attack).
            made, failed = approved(guarded, lambda: conn.execute(
                "CREATE FUNCTION gw12c_purge(x int) RETURNS int LANGUAGE sql "
                "AS 'SELECT 1'"))
            assert made["rule"] == "review-destructive-alter-table" and failed is None
            request = denied(guarded, lambda: conn.execute("SELECT gw12c_purge()"))
    finally:
        guarded.target.cluster.sql("DROP FUNCTION IF EXISTS gw12c_purge(int)", dbname="shop")
    assert "the code it calls writes 500 rows" in str(request["statement"])
    assert rows(guarded.target) == 500


@pytest.mark.parametrize("declare", ["DECLARE c CURSOR FOR SELECT gw12c_purge()",
                                     "DECLARE c CURSOR WITH HOLD FOR SELECT gw12c_purge()"])
def test_a_cursor_over_code_is_refused_before_a_fetch_can_run_it(guarded: Gateway,
                                                               declare: str) -> None:
    """Its query runs at each FETCH, not when it would be approved: it cannot be."""
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("BEGIN")
        with pytest.raises(errors.InsufficientPrivilege, match="cannot be approved"):
            conn.execute(declare)  # type: ignore[arg-type]
    assert rows(guarded.target) == 500


WRITE_ALL = "DELETE FROM gw12c_log WHERE id > 0 RETURNING id"


def raw_login(gateway: Gateway) -> Wire:
    wire = Wire(gateway.port())
    wire.login("alice", gateway.tokens["alice"])
    return wire


@pytest.mark.parametrize("run_it", [
    # the portal bound, the segment ended, then a Query runs it by name
    [b.parse(WRITE_ALL, "s1") + b.bind(statement="s1", portal="p1") + b.SYNC,
     b.query("FETCH ALL FROM p1")],
    # in one pipeline: another portal's statement fetches from it
    [b.parse(WRITE_ALL, "s1") + b.bind(statement="s1", portal="p1")
     + b.pbes("SELECT length(cursor_to_xml('p1', 100000, false, false, '')::text)")],
    # the unnamed portal, fetched from by a named one
    [b.parse(WRITE_ALL) + b.bind() + b.parse("SELECT cursor_to_xml('', 100000, false, false, "
                                              "'')", "s2")
     + b.bind(statement="s2", portal="p2") + b.execute("p2") + b.SYNC],
], ids=["fetch-later", "cursor-to-xml", "unnamed"])
@pytest.mark.parametrize("in_transaction", [False, True], ids=["implicit", "in a transaction"])
def test_a_counted_portal_cannot_be_run_by_anything_but_its_execute(
        guarded: Gateway, run_it: list[bytes], in_transaction: bool) -> None:
    """Found by the outside attack: a counted write's portal, bound and left unexecuted, ran
    whole under FETCH or cursor_to_xml, uncounted. Whatever comes between its Bind and its
    Execute but a Describe of it is refused, and the portal never runs."""
    wire = raw_login(guarded)
    try:
        if in_transaction:
            wire.query("BEGIN")
        answers = []
        for data in run_it:
            wire.send(data)
            answers += wire.until(b"Z")
        refused = errors_in(answers)
        assert refused and refused[0]["C"] == "0A000", answers
        assert "another message came before its Execute" in refused[0]["M"]
        if in_transaction:
            wire.query("ROLLBACK")
    finally:
        wire.close()
    assert rows(guarded.target) == 500


def test_a_counted_portal_described_then_executed_is_counted(guarded: Gateway) -> None:
    """What drivers send — Bind, Describe of the portal, Execute — is counted as before."""
    wire = raw_login(guarded)
    try:
        wire.send(b.parse("UPDATE gw12c_log SET id = id WHERE id <= 3", "s3")
                  + b.bind(statement="s3", portal="p3") + b.describe("P", "p3")
                  + b.execute("p3") + b.SYNC)
        answers = wire.until(b"Z")
        assert not errors_in(answers)
        assert any(tag == ord("C") and body.startswith(b"UPDATE 3") for tag, body in answers)
    finally:
        wire.close()


@pytest.mark.parametrize("sql", [b"SELECT 1", b"SELECT $1::text",
                                 b"INSERT INTO gw12c_done VALUES ($1)"])
def test_a_parameter_typed_by_oid_runs_its_domain_checks_counted(
        guarded: Gateway, sql: bytes) -> None:
    """Found by the outside attack on issue 14: a Parse may give a parameter a type by OID
    that the text never names; the input of a domain-typed parameter runs the domain's CHECK
    at the Bind, and a CHECK may call a writing function."""
    guarded.target.cluster.sql(
        "CREATE DOMAIN gw12c_dom AS text CHECK (gw12c_purge() = 1)", dbname="shop")
    try:
        with psycopg.connect(guarded.target.superuser(), dbname="shop") as admin:
            row = admin.execute("SELECT 'gw12c_dom'::regtype::oid").fetchone()
            assert row is not None
            oid = int(row[0])

        def work() -> None:
            with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
                pg = conn.pgconn
                pg.prepare(b"gw12c_typed", sql, [oid])
                result = pg.exec_prepared(b"gw12c_typed", [b"x"])
                state = result.error_field(psycopg.pq.DiagnosticField.SQLSTATE)
                if state:
                    raise psycopg.errors.lookup(state.decode())(result.error_message.decode())

        request = denied(guarded, work)
        assert "the code it calls" in str(request["statement"])
        assert rows(guarded.target) == 500
    finally:
        guarded.target.cluster.sql("DROP DOMAIN IF EXISTS gw12c_dom", dbname="shop")
