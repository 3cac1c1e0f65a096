"""Issue 12 through the real gateway and a real PostgreSQL, with the example policy: code that
runs later (PL/pgSQL bodies, procedures, triggers, rules, DO), SQL passed as text, functions
reached without a call, and destruction not spelled DROP. Each attack is refused or held (and
denied), and its effect is checked on the target directly: the object was not created, the
victim's session lives, the column and the table are still there. Ordinary work — a PL/pgSQL
function that touches its own tables, its trigger, pgbench — passes and nothing is held.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from tests.conftest import ROOT, Gateway, Target, need, stop_gateway
from tests.integration.guarded import approved, denied, operator, start_guarded, wait_for_request
from tests.integration.test_recording import run_cli

pytestmark = pytest.mark.integration

SETUP = """
SET ROLE gw_scram;
DROP TABLE IF EXISTS gw12_items, gw12_log CASCADE;
DROP FUNCTION IF EXISTS gw12_unseen() CASCADE;
CREATE TABLE gw12_items (id int PRIMARY KEY, x int NOT NULL, note text);
INSERT INTO gw12_items SELECT i, i, 'n' || i FROM generate_series(1, 100) AS i;
CREATE TABLE gw12_log (id serial PRIMARY KEY, item int);
-- A trigger function created behind the gateway's back: the gateway never saw its body.
CREATE FUNCTION gw12_unseen() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN UPDATE gw12_items SET x = 0; RETURN NEW; END $$;
RESET ROLE;
"""


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("guarded12"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql("DROP TABLE IF EXISTS gw12_items, gw12_log CASCADE; "
                              "DROP FUNCTION IF EXISTS gw12_unseen() CASCADE;", dbname="shop")


@pytest.fixture
def victim(guarded: Gateway) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """Another session of the gateway's target role: what pg_terminate_backend would kill."""
    with psycopg.connect(guarded.target.direct(), autocommit=True) as conn:
        yield conn


def on_target(target: Target, sql: str) -> object:
    with psycopg.connect(target.superuser(), autocommit=True) as admin:
        row = admin.execute(sql).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


def state(target: Target) -> tuple[object, ...]:
    """What the attacks would change: rows and their values, columns, the tables' names,
    functions, operators, triggers and rules the tests could have created."""
    return (
        on_target(target, "SELECT count(*) FROM gw12_items WHERE x = id"),
        on_target(target, "SELECT count(*) FROM gw12_log"),
        on_target(target, "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute "
                          "WHERE attrelid = 'public.gw12_items'::regclass AND attnum > 0 "
                          "AND NOT attisdropped"),
        on_target(target, "SELECT count(*) FROM pg_class WHERE relname LIKE 'gw12%' "
                          "AND relkind = 'r'"),
        on_target(target, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'gw12%'"),
        on_target(target, "SELECT count(*) FROM pg_operator WHERE oprname = '@~@'"),
        on_target(target, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'gw12%'"),
        on_target(target, "SELECT count(*) FROM pg_rules WHERE rulename LIKE 'gw12%'"),
        on_target(target, "SELECT count(*) FROM pg_aggregate a JOIN pg_proc p "
                          "ON p.oid = a.aggfnoid WHERE p.proname = 'kill'"),
    )


BEFORE = (100, 0, "id,x,note", 2, 1, 0, 0, 0, 0)


def alive(victim: psycopg.Connection[tuple[object, ...]]) -> bool:
    return victim.execute("SELECT 1").fetchone() == (1,)


def refused(gateway: Gateway, sql: str, protocol: str = "simple") -> str:
    cursor = psycopg.ClientCursor if protocol == "simple" else psycopg.Cursor
    with psycopg.connect(gateway.dsn(), autocommit=True, cursor_factory=cursor) as conn:
        with pytest.raises(errors.InsufficientPrivilege) as info:
            conn.execute(sql)  # type: ignore[arg-type]
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on
    return str(info.value)


def held_and_denied(gateway: Gateway, sql: str) -> dict[str, object]:
    """Run ``sql``: it must be held for approval; an operator denies it."""
    with psycopg.connect(gateway.dsn(), autocommit=True,
                         cursor_factory=psycopg.ClientCursor) as conn:
        request = denied(gateway, lambda: conn.execute(sql))  # type: ignore[arg-type]
        assert conn.execute("SELECT 1").fetchone() == (1,)
    return request


def no_pending(gateway: Gateway) -> bool:
    with operator(gateway) as client:
        return not client.call("approvals")["pending"]


# --- 1. procedural code is read --------------------------------------------------------------

BLOCKED_CODE = [
    ("CREATE FUNCTION gw12_exec(q text) RETURNS void LANGUAGE plpgsql AS "
     "$$BEGIN EXECUTE q; END$$", "no-dynamic-sql", "SELECT gw12_exec('DROP TABLE gw12_items')"),
    ("create or replace function gw12_exec(q text) returns void language plpgsql as "
     "'begin execute q using 1; end'", "no-dynamic-sql",
     "SELECT gw12_exec('DROP TABLE gw12_items')"),
    ("CREATE FUNCTION gw12_fmt(t text) RETURNS void LANGUAGE plpgsql AS "
     "$$BEGIN EXECUTE format('DROP TABLE %I', t); END$$", "no-dynamic-sql",
     "SELECT gw12_fmt('gw12_items')"),
    ("CREATE FUNCTION gw12_pw() RETURNS void LANGUAGE plpgsql AS $$BEGIN "
     "EXECUTE 'ALTER ROLE CURRENT_USER PASSWORD ''owned'''; END$$", "no-role-or-grant-changes",
     "SELECT gw12_pw()"),
    ("CREATE PROCEDURE gw12_wipe() LANGUAGE plpgsql AS $$BEGIN TRUNCATE gw12_items; END$$",
     "no-truncate", "CALL gw12_wipe()"),
    ("CREATE FUNCTION gw12_drop() RETURNS void LANGUAGE sql BEGIN ATOMIC "
     "DROP TABLE gw12_items; END", None, "SELECT gw12_drop()"),
    ("CREATE FUNCTION gw12_kill(p int) RETURNS bool LANGUAGE sql AS "
     "$$ SELECT pg_terminate_backend(p) $$", "no-backend-control", "SELECT gw12_kill(0)"),
    ("DO $$BEGIN EXECUTE 'DROP TABLE gw12_items'; END$$", "no-drop", None),
    ("DO $$DECLARE q text := 'DROP TABLE gw12_items'; BEGIN EXECUTE q; END$$", None, None),
]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize(("sql", "rule", "then"), BLOCKED_CODE,
                         ids=[s[:50] for s, _, _ in BLOCKED_CODE])
def test_procedural_attacks_are_refused_and_create_nothing(
        guarded: Gateway, protocol: str, sql: str, rule: str | None,
        then: str | None) -> None:
    message = refused(guarded, sql, protocol)
    if rule is not None:
        assert f'statement blocked by rule "{rule}"' in message
    if then is not None:  # what the attacker meant to run next finds nothing to run
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            with pytest.raises(errors.UndefinedFunction):
                conn.execute(then)  # type: ignore[arg-type]
    assert state(guarded.target) == BEFORE
    with psycopg.connect(guarded.target.direct()) as still:  # the password was not changed
        assert still.execute("SELECT 1").fetchone() == (1,)


HELD_CODE = [
    # A trigger function that rewrites every row when it fires: its body is an unbounded write.
    "CREATE FUNCTION gw12_trg() RETURNS trigger LANGUAGE plpgsql AS "
    "$$BEGIN UPDATE gw12_items SET x = 0; RETURN NEW; END$$",
    # A trigger bound to a function the gateway never saw created: opaque.
    "CREATE TRIGGER gw12_t AFTER INSERT ON gw12_log FOR EACH ROW EXECUTE FUNCTION gw12_unseen()",
    # A rule whose action deletes every row whenever someone inserts.
    "CREATE RULE gw12_r AS ON INSERT TO gw12_log DO ALSO DELETE FROM gw12_items",
    "CREATE RULE gw12_r AS ON INSERT TO gw12_log DO ALSO UPDATE gw12_items SET x = 0 "
    "WHERE id IS NOT NULL",
    # A body in a language the gateway cannot read.
    "CREATE FUNCTION gw12_perl() RETURNS int LANGUAGE plperl AS 'return 1'",
]


@pytest.mark.parametrize("sql", HELD_CODE, ids=[s[:50] for s in HELD_CODE])
def test_code_that_needs_eyes_is_held_and_when_denied_changes_nothing(
        guarded: Gateway, sql: str) -> None:
    request = held_and_denied(guarded, sql)
    assert request["statement"].split("\n-- gatewatch: ")[0] == sql  # (then the gateway's notes)
    assert request["rule"] in ("review-unbounded-writes", "review-opaque-code")
    # What the trigger or rule would have done on the next insert does not happen.
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO gw12_log (item) VALUES (1)")
    assert state(guarded.target)[0] == 100  # no row rewritten, none deleted
    guarded.target.cluster.sql("TRUNCATE gw12_log", dbname="shop")
    assert state(guarded.target) == BEFORE


def test_psql_sends_the_same_attacks_and_they_are_refused(guarded: Gateway) -> None:
    need("psql")
    script = ("CREATE FUNCTION gw12_exec(q text) RETURNS void LANGUAGE plpgsql AS "
              "$$BEGIN EXECUTE q; END$$;\n"
              "SELECT gw12_exec('DROP TABLE gw12_items');\n"
              "CREATE OPERATOR @~@ (FUNCTION = pg_terminate_backend, LEFTARG = int, "
              "RIGHTARG = bigint);\n"
              "ALTER TABLE gw12_items DROP COLUMN note;\n"
              "ALTER TABLE gw12_items RENAME TO gw12_gone;\n"
              "SELECT query_to_xml('SELECT pg_terminate_backend(0)', true, true, '');\n")
    out = subprocess.run(["psql", "-X", "-d", guarded.dsn()], input=script,
                         capture_output=True, text=True, timeout=60, env=guarded.env())
    for rule in ("no-dynamic-sql", "no-backend-control", "no-drop-column-or-rename-table"):
        assert f'statement blocked by rule "{rule}"' in out.stderr
    assert "function gw12_exec(unknown) does not exist" in out.stderr
    assert state(guarded.target) == BEFORE


# --- 2. SQL passed as text ---------------------------------------------------------------------

TEXT_ATTACKS = [
    ("SELECT query_to_xml('select pg_terminate_backend({pid})', true, true, '')",
     "no-backend-control"),
    ("SELECT query_to_xmlschema('select pg_terminate_backend({pid})', true, true, '')",
     "no-backend-control"),
    ("SELECT query_to_xml_and_xmlschema(query => 'select pg_terminate_backend({pid})', "
     "nulls => true, tableforest => true, targetns => '')", "no-backend-control"),
    ("SELECT * FROM ts_stat('select pg_terminate_backend({pid})::text::tsvector')",
     "no-backend-control"),
    ("SELECT ts_rewrite('a'::tsquery, 'select pg_terminate_backend({pid})::text::tsquery, "
     "''b''::tsquery')", "no-backend-control"),
    ("SELECT query_to_xml(q, true, true, '') FROM (SELECT 'select pg_terminate_backend("
     "{pid})' AS q) s", "no-dynamic-sql"),
    ("SELECT query_to_xml('select ' || 'pg_terminate_backend({pid})', true, true, '')",
     "no-dynamic-sql"),
]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize(("sql", "rule"), TEXT_ATTACKS, ids=[s[:50] for s, _ in TEXT_ATTACKS])
def test_sql_passed_as_text_is_judged(guarded: Gateway, victim: psycopg.Connection[
        tuple[object, ...]], protocol: str, sql: str, rule: str) -> None:
    message = refused(guarded, sql.format(pid=victim.info.backend_pid), protocol)
    assert f'statement blocked by rule "{rule}"' in message
    assert alive(victim)


def test_a_query_string_bound_as_a_parameter_is_dynamic_sql(
        guarded: Gateway, victim: psycopg.Connection[tuple[object, ...]]) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="no-dynamic-sql"):
            conn.execute("SELECT query_to_xml(%s, true, true, '')",
                         [f"select pg_terminate_backend({victim.info.backend_pid})"])
        # An ordinary query handed over as a constant is read and allowed.
        row = conn.execute("SELECT query_to_xml('SELECT count(*) AS n FROM gw12_items', "
                           "true, true, '')").fetchone()
        assert row is not None and "<n>100</n>" in str(row[0])
    assert alive(victim)


# --- 3. functions reached without a call -------------------------------------------------------

BINDINGS = [
    "CREATE OPERATOR @~@ (FUNCTION = pg_terminate_backend, LEFTARG = int, RIGHTARG = bigint)",
    "CREATE OPERATOR @~@ (PROCEDURE = pg_catalog.pg_terminate_backend, LEFTARG = int, "
    "RIGHTARG = bigint)",
    "CREATE AGGREGATE kill(int) (SFUNC = pg_terminate_backend, STYPE = bigint, INITCOND = '0')",
    "CREATE TABLE gw12_bomb (pid int, b bool DEFAULT pg_terminate_backend({pid}))",
    "CREATE TABLE gw12_bomb (pid int, b bool GENERATED ALWAYS AS (pg_terminate_backend(pid)) "
    "STORED)",
    "ALTER TABLE gw12_items ADD COLUMN b bool DEFAULT pg_terminate_backend({pid})",
    "CREATE INDEX gw12_idx ON gw12_items ((pg_terminate_backend({pid} + 0 * id)))",
    "CREATE DOMAIN gw12_dom AS int CHECK (pg_terminate_backend(VALUE))",
    "CREATE VIEW gw12_view AS SELECT pg_terminate_backend({pid})",
    "CREATE FUNCTION gw12_alias(int) RETURNS bool LANGUAGE internal AS 'pg_terminate_backend'",
]


@pytest.mark.parametrize("sql", BINDINGS, ids=[s[:50] for s in BINDINGS])
def test_binding_a_blocked_function_is_blocked(
        guarded: Gateway, victim: psycopg.Connection[tuple[object, ...]], sql: str) -> None:
    refused(guarded, sql.format(pid=victim.info.backend_pid))
    assert state(guarded.target) == BEFORE
    assert on_target(guarded.target, "SELECT count(*) FROM pg_type WHERE typname LIKE "
                                     "'gw12%' AND typtype = 'd'") == 0  # no domain
    assert alive(victim)


def test_the_operator_attack_of_the_issue(
        guarded: Gateway, victim: psycopg.Connection[tuple[object, ...]]) -> None:
    pid = victim.info.backend_pid
    message = refused(guarded, "CREATE OPERATOR @~@ (FUNCTION = pg_terminate_backend, "
                               "LEFTARG = int, RIGHTARG = bigint)")
    assert 'statement blocked by rule "no-backend-control"' in message
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.UndefinedFunction, match="operator does not exist"):
            conn.execute(f"SELECT {pid} @~@ 0::bigint")  # type: ignore[arg-type]
    assert alive(victim)


# --- 5. destruction not spelled DROP ------------------------------------------------------------

DESTRUCTIVE = [
    ("ALTER TABLE gw12_items DROP COLUMN note", "no-drop-column-or-rename-table"),
    ("alter table public.gw12_items drop note cascade", "no-drop-column-or-rename-table"),
    ("ALTER TABLE IF EXISTS gw12_items ADD COLUMN y int, DROP COLUMN note",
     "no-drop-column-or-rename-table"),
    ("ALTER TABLE gw12_items RENAME TO gw12_gone", "no-drop-column-or-rename-table"),
    ("ALTER TABLE gw12_items SET SCHEMA pg_temp", "no-drop-column-or-rename-table"),
    ("CREATE FUNCTION gw12_f() RETURNS void LANGUAGE plpgsql AS $$BEGIN "
     "ALTER TABLE gw12_items DROP COLUMN note; END$$", "no-drop-column-or-rename-table"),
]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize(("sql", "rule"), DESTRUCTIVE, ids=[s[:50] for s, _ in DESTRUCTIVE])
def test_destruction_not_spelled_drop_is_refused(guarded: Gateway, protocol: str, sql: str,
                                                 rule: str) -> None:
    assert f'statement blocked by rule "{rule}"' in refused(guarded, sql, protocol)
    assert state(guarded.target) == BEFORE


@pytest.mark.parametrize("sql", [
    "ALTER TABLE gw12_items RENAME COLUMN note TO remark",
    "ALTER TABLE gw12_items ALTER COLUMN x TYPE text",
    "ALTER TABLE gw12_items DROP CONSTRAINT gw12_items_pkey",
    # 4. writes that touch every row without looking like it
    "DELETE FROM gw12_items WHERE id IS NOT NULL",
    "UPDATE gw12_items SET x = 0 WHERE 1 BETWEEN 0 AND 2",
    "DELETE FROM gw12_items WHERE id IN (SELECT id FROM gw12_items)",
    "MERGE INTO gw12_items t USING gw12_items s ON t.id = s.id WHEN MATCHED THEN DELETE",
])
def test_other_destructive_forms_are_held(guarded: Gateway, sql: str) -> None:
    held_and_denied(guarded, sql)
    assert state(guarded.target) == BEFORE
    assert on_target(guarded.target, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                     "'gw12_items_pkey'") == 1


# --- ordinary work passes, and nothing is held ------------------------------------------------


def test_ordinary_functions_triggers_and_writes_pass(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        # A function whose UPDATE runs later, uncounted, meets review-big-writes (rows_over)
        # when it is created: an operator approves it once.
        worker = threading.Thread(target=conn.execute, args=("""
            CREATE FUNCTION gw12_touch(n int) RETURNS int LANGUAGE plpgsql AS $$
            DECLARE total int;
            BEGIN
              INSERT INTO gw12_log (item) VALUES (n);
              UPDATE gw12_items SET note = 'touched' WHERE id = n;
              SELECT count(*) INTO total FROM gw12_log WHERE item = n;
              RETURN total;
            END $$""",))
        worker.start()
        request = wait_for_request(guarded)
        assert request["rule"] == "review-big-writes"
        with operator(guarded) as client:
            client.call("approve", request=request["id"], reason="issue 12")
        worker.join(30)
        # The trigger binds a function created in the same text, under its schema: its body
        # is the one bound (a failed CREATE would stop the text before the trigger).
        # A BEFORE row trigger on a table the session did not create may veto or rewrite
        # rows ahead of the table's own triggers: it waits for a review (the seventh attack).
        psycopg.ClientCursor(conn).execute("""
            CREATE FUNCTION public.gw12_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN NEW.note := coalesce(NEW.note, '') || '*'; RETURN NEW; END $$""")
        made, failed = approved(guarded, lambda: conn.execute("""
            CREATE TRIGGER gw12_stamp BEFORE UPDATE ON gw12_items
            FOR EACH ROW EXECUTE FUNCTION public.gw12_stamp()"""))
        assert made["rule"] == "review-destructive-alter-table" and failed is None
        assert conn.execute("SELECT gw12_touch(7)").fetchone() == (1,)
        assert conn.execute("SELECT gw12_touch(%s)", [7]).fetchone() == (2,)
        conn.execute("UPDATE gw12_items SET x = x WHERE id = %s", [8])
        assert conn.execute("SELECT note FROM gw12_items WHERE id = 7").fetchone() == (
            "touched*",)
        with conn.cursor() as cur:
            cur.executemany("UPDATE gw12_items SET x = x + 0 WHERE id = %s",
                            [(i,) for i in range(1, 20)])
        assert no_pending(guarded)
    assert on_target(guarded.target, "SELECT count(*) FROM pg_trigger "
                                     "WHERE tgname = 'gw12_stamp'") == 1
    guarded.target.cluster.sql(
        "DROP TRIGGER gw12_stamp ON gw12_items; DROP FUNCTION gw12_stamp(), gw12_touch(int);"
        "UPDATE gw12_items SET note = 'n' || id, x = id; TRUNCATE gw12_log;", dbname="shop")
    assert state(guarded.target) == BEFORE


def test_pgbench_passes_and_is_never_held(guarded: Gateway) -> None:
    need("pgbench")
    init = subprocess.run(["pgbench", "-i", "-s", "1", "-q", guarded.target.direct()],
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    for mode in ("simple", "prepared"):
        run = subprocess.run(["pgbench", "-n", "-M", mode, "-c", "2", "-j", "2", "-t", "50",
                              guarded.dsn()], capture_output=True, text=True, timeout=120,
                             env=guarded.env())
        assert run.returncode == 0, run.stderr
        assert "number of transactions actually processed: 100/100" in run.stdout
        assert "number of failed transactions: 0" in run.stdout
    assert no_pending(guarded)


# --- 6. policy explain shows each statement inside -------------------------------------------


def test_policy_explain_shows_the_verdict_of_each_statement_inside(tmp_path: Path) -> None:
    def explain(sql: str) -> str:
        out = run_cli("policy", "explain", "-c", str(ROOT / "policies.yaml"), "--connection",
                      "shop", "--user", "alice", "--sql", sql)
        assert out.returncode == 0, out.stderr
        return out.stdout

    shown = explain("CREATE FUNCTION f(q text) RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n"
                    "  UPDATE orders SET status = 'paid' WHERE id = 1;\n  EXECUTE q;\n"
                    "  DELETE FROM orders WHERE id IS NOT NULL;\nEND $$")
    assert shown.startswith("verdict: BLOCK (rule no-dynamic-sql)")
    assert "inside it:" in shown
    # Run later, the UPDATE's rows cannot be counted: review-big-writes (rows_over) holds it.
    assert "- review rule review-big-writes: body of f, line 3: statement" in shown
    assert "UPDATE orders SET status = 'paid' WHERE id = 1" in shown
    assert "- block  rule no-dynamic-sql: body of f, line 4: EXECUTE" in shown
    assert "- review rule review-unbounded-writes: body of f, line 5: statement" in shown
    block = explain("DO $$ BEGIN PERFORM pg_sleep(0); EXECUTE 'TRUNCATE orders'; END $$")
    assert "- block  rule no-truncate: DO block, line 1: EXECUTE of a constant string" in block
    rule = explain("CREATE RULE r AS ON INSERT TO orders DO ALSO DELETE FROM customers")
    assert "- review rule review-unbounded-writes: rule action 1" in rule
    text = explain("SELECT query_to_xml('SELECT pg_reload_conf()', true, true, '')")
    assert "- block  rule no-backend-control: query_to_xml's query" in text
