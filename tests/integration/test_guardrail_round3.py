"""Issue 12, round 3: the outside attacker's hidden writers and protection turned off, through
the real gateway with the example policy and a real PostgreSQL. Each effect is checked on the
target directly: no row rewritten, no foreign key that cascades, every trigger, rule and row
security policy still acting as before.

1. ``INSERT … ON CONFLICT DO UPDATE`` is an UPDATE: fed back from its own table it is held
   (unbounded); with a condition it is counted from its ``INSERT 0 n`` tag, in both protocols;
   inside a writable CTE or a function body it is held (uncounted);
2. a foreign key with ``ON DELETE CASCADE`` (or SET NULL) is code that writes later: held once;
3. ``ENABLE REPLICA TRIGGER``, ``DISABLE RULE``, ``NO FORCE ROW LEVEL SECURITY``, ``REPLICA
   IDENTITY``, ``ALTER CONSTRAINT … DEFERRABLE``, ``SET session_replication_role``: held;
4. the reason of a counted write says what writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import start_guarded, wait_for_request
from tests.integration.test_guardrail_procedural import held_and_denied, on_target
from tests.integration.test_guardrail_relay import decide, in_thread, records

pytestmark = pytest.mark.integration

ROWS = 2000
SETUP = f"""
SET ROLE gw_scram;
DROP TABLE IF EXISTS gw13_orders, gw13_k, gw13_log, gw13_child CASCADE;
DROP FUNCTION IF EXISTS gw13_audit(), gw13_up() CASCADE;
CREATE TABLE gw13_k (id int PRIMARY KEY);
INSERT INTO gw13_k SELECT generate_series(1, 100);
CREATE TABLE gw13_orders (id int PRIMARY KEY, status text NOT NULL, customer_id int);
INSERT INTO gw13_orders SELECT g, 'paid', 1 + g % 100 FROM generate_series(1, {ROWS}) g;
CREATE TABLE gw13_log (id int);
CREATE FUNCTION gw13_audit() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO gw13_log VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER gw13_audit AFTER UPDATE ON gw13_orders FOR EACH ROW EXECUTE FUNCTION gw13_audit();
CREATE RULE gw13_keep AS ON DELETE TO gw13_log DO INSTEAD NOTHING;
ALTER TABLE gw13_orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE gw13_orders FORCE ROW LEVEL SECURITY;
CREATE POLICY gw13_all ON gw13_orders USING (true);
ALTER TABLE gw13_orders ADD CONSTRAINT gw13_fk_checked FOREIGN KEY (customer_id)
  REFERENCES gw13_k (id);
RESET ROLE;
"""
TEARDOWN = """
DROP TABLE IF EXISTS gw13_orders, gw13_k, gw13_log, gw13_child CASCADE;
DROP FUNCTION IF EXISTS gw13_audit(), gw13_up() CASCADE;
"""


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("guarded12c"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(TEARDOWN, dbname="shop")


def rewritten(target: Target) -> object:
    """Rows of orders no longer as seeded."""
    return on_target(target, "SELECT count(*) FROM gw13_orders WHERE status <> 'paid'")


def reset(target: Target) -> None:
    on_target(target, "UPDATE gw13_orders SET status = 'paid' WHERE status <> 'paid' "
                      "RETURNING 1")


def protection(target: Target) -> tuple[object, ...]:
    """How the table's trigger, rule, row security, replica identity and foreign keys act."""
    return (
        on_target(target, "SELECT string_agg(tgenabled::text, ',') FROM pg_trigger "
                          "WHERE tgname = 'gw13_audit'"),
        on_target(target, "SELECT string_agg(ev_enabled::text, ',') FROM pg_rewrite "
                          "WHERE rulename = 'gw13_keep'"),
        on_target(target, "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class "
                          "WHERE relname = 'gw13_orders'"),
        on_target(target, "SELECT relreplident FROM pg_class WHERE relname = 'gw13_orders'"),
        on_target(target, "SELECT string_agg(conname || ':' || confdeltype::text || "
                          "confupdtype::text || condeferrable::text, ',' ORDER BY conname) "
                          "FROM pg_constraint "
                          "WHERE contype = 'f' AND conrelid IN ('gw13_orders'::regclass)"),
        on_target(target, "SELECT count(*) FROM pg_class WHERE relname = 'gw13_child'"),
    )


PROTECTED = ("O", "O", True, "d", "gw13_fk_checked:aafalse", 0)


def connect(gw: Gateway, app: str, simple: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn(application_name=app), autocommit=True,
                           cursor_factory=psycopg.ClientCursor if simple else psycopg.Cursor)


# --- 1. INSERT … ON CONFLICT DO UPDATE ---------------------------------------------------------

ATTACK = ("INSERT INTO gw13_orders (id, status, customer_id) OVERRIDING SYSTEM VALUE "
          "SELECT id, status, customer_id FROM gw13_orders "
          "ON CONFLICT (id) DO UPDATE SET status = 'refunded'")


@pytest.mark.parametrize("sql", [
    ATTACK,
    "insert into gw13_orders select * from gw13_orders on conflict on constraint "
    "gw13_orders_pkey do update set status = 'refunded'",
    "INSERT INTO gw13_orders AS o (id, status) SELECT id, 'x' FROM gw13_orders "
    "UNION ALL SELECT 1, 'x' ON CONFLICT (id) DO UPDATE SET status = excluded.status || 'x' "
    "WHERE excluded.id > 0",
    "INSERT INTO gw13_orders (id, status) SELECT generate_series(1, 5000), 'refunded' "
    "ON CONFLICT (id) DO UPDATE SET status = 'refunded'",
])
def test_an_upsert_fed_by_its_own_table_is_held_and_denied(guarded: Gateway, sql: str) -> None:
    request = held_and_denied(guarded, sql)
    assert request["rule"] == "review-unbounded-writes"
    assert rewritten(guarded.target) == 0
    assert on_target(guarded.target, "SELECT count(*) FROM gw13_orders") == ROWS


def upsert(upto: object, status: str = "refunded") -> str:
    return (f"INSERT INTO gw13_orders (id, status) SELECT id, status FROM gw13_orders "
            f"WHERE id <= {upto} ON CONFLICT (id) DO UPDATE SET status = '{status}' "
            "WHERE gw13_orders.status <> 'gone'")


def test_a_conditioned_upsert_over_the_limit_is_counted_then_held(guarded: Gateway) -> None:
    sql = upsert(150)

    def work() -> int:
        with connect(guarded, "r3-upsert-over") as conn:
            return conn.execute(sql).rowcount  # type: ignore[arg-type]

    thread, out = in_thread(work)
    request = wait_for_request(guarded)
    assert request["rule"] == "review-big-writes"
    # 150 rows of its own; its trigger's 150 inserts into gw13_log make the split of its
    # INSERT 0 150 between inserts and updates unknowable, so it is charged strictly.
    counted = re.search(r"it writes (\d+) rows", str(request["statement"]))
    assert counted is not None and int(counted.group(1)) >= 150
    assert rewritten(guarded.target) == 0  # run, counted, rolled back
    decide(guarded, False)
    thread.join(30)
    assert isinstance(out[0], errors.InsufficientPrivilege)
    assert rewritten(guarded.target) == 0
    assert records(guarded, "r3-upsert-over") == [(sql, "count", "rolled back"),
                                                  (sql, "denied", "denied")]


@pytest.mark.parametrize("simple", [True, False], ids=["simple", "extended"])
def test_a_conditioned_upsert_under_the_limit_runs_once(guarded: Gateway, simple: bool) -> None:
    app = f"r3-upsert-under-{simple}"
    try:
        with connect(guarded, app, simple) as conn:
            if simple:
                count = conn.execute(upsert(5)).rowcount  # type: ignore[arg-type]
            else:
                count = conn.execute(
                    "INSERT INTO gw13_orders (id, status) SELECT id, status FROM gw13_orders "
                    "WHERE id <= %s ON CONFLICT (id) DO UPDATE SET status = %s "
                    "WHERE gw13_orders.status <> 'gone'", (5, "refunded")).rowcount
        assert count == 5
        assert rewritten(guarded.target) == 5
        assert [r[1:] for r in records(guarded, app)] == [("count", "ok")]
    finally:
        reset(guarded.target)


@pytest.mark.parametrize("sql", [
    "WITH w AS (INSERT INTO gw13_orders (id, status) VALUES (1, 'x') ON CONFLICT (id) "
    "DO UPDATE SET status = 'refunded' RETURNING id) SELECT count(*) FROM w",
    "CREATE FUNCTION gw13_up() RETURNS void LANGUAGE plpgsql AS $$BEGIN INSERT INTO "
    "gw13_orders (id, status) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET status = "
    "'refunded'; END$$",
    "CREATE FUNCTION gw13_up() RETURNS void LANGUAGE sql BEGIN ATOMIC INSERT INTO "
    "gw13_orders (id, status) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET status = "
    "'refunded'; END",
])
def test_an_upsert_the_count_cannot_see_is_held(guarded: Gateway, sql: str) -> None:
    request = held_and_denied(guarded, sql)
    assert request["rule"] == "review-big-writes"
    assert "cannot count" in str(request["reason"])
    assert rewritten(guarded.target) == 0
    assert on_target(guarded.target, "SELECT count(*) FROM pg_proc "
                                     "WHERE proname = 'gw13_up'") == 0


# --- 2. foreign keys that write later ----------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "ALTER TABLE gw13_orders ADD CONSTRAINT gw13_fk FOREIGN KEY (customer_id) "
    "REFERENCES gw13_k (id) ON DELETE CASCADE",
    "alter table gw13_orders add foreign key (customer_id) references gw13_k "
    "on update cascade on delete set null not valid",
    "ALTER TABLE gw13_orders ADD COLUMN k2 int REFERENCES gw13_k ON DELETE SET DEFAULT",
    # A new table's cascades write only its own rows (not held); one that may exist already
    # is someone else's table.
    "CREATE TABLE IF NOT EXISTS gw13_child (k int REFERENCES gw13_k ON DELETE CASCADE)",
])
def test_a_cascading_foreign_key_is_held_and_denied(guarded: Gateway, sql: str) -> None:
    request = held_and_denied(guarded, sql)
    assert request["rule"] == "review-big-writes"
    assert protection(guarded.target) == PROTECTED


def test_without_the_cascade_a_counted_delete_removes_only_what_it_counts(
        guarded: Gateway) -> None:
    """The attack's second step: the keys' rows go only when nothing references them."""
    held_and_denied(guarded, "ALTER TABLE gw13_orders DROP CONSTRAINT gw13_fk_checked, "
                             "ADD CONSTRAINT gw13_fk FOREIGN KEY (customer_id) "
                             "REFERENCES gw13_k (id) ON DELETE CASCADE")
    with connect(guarded, "r3-fk-delete") as conn, pytest.raises(errors.ForeignKeyViolation):
        conn.execute("DELETE FROM gw13_k WHERE id <= 50")
    assert on_target(guarded.target, "SELECT count(*) FROM gw13_orders") == ROWS
    assert on_target(guarded.target, "SELECT count(*) FROM gw13_k") == 100


# --- 3. protection turned off by other names ---------------------------------------------------


@pytest.mark.parametrize("sql", [
    "ALTER TABLE gw13_orders ENABLE REPLICA TRIGGER gw13_audit",
    "ALTER TABLE gw13_orders ENABLE ALWAYS TRIGGER gw13_audit",
    "ALTER TABLE ONLY gw13_orders DISABLE TRIGGER USER",
    "ALTER TABLE gw13_log DISABLE RULE gw13_keep",
    "ALTER TABLE gw13_log ENABLE REPLICA RULE gw13_keep",
    "ALTER TABLE gw13_orders NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE gw13_orders DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE gw13_orders REPLICA IDENTITY NOTHING",
    "ALTER TABLE gw13_orders ALTER CONSTRAINT gw13_fk_checked DEFERRABLE INITIALLY DEFERRED",
    "ALTER TABLE gw13_orders ADD COLUMN note text, ENABLE REPLICA TRIGGER gw13_audit",
    "SET session_replication_role = replica",
    "SELECT set_config('session_replication_role', 'replica', false)",
])
def test_protection_turned_off_is_held_and_denied(guarded: Gateway, sql: str) -> None:
    request = held_and_denied(guarded, sql)
    assert request["rule"] == "review-destructive-alter-table"
    assert protection(guarded.target) == PROTECTED


def test_after_the_denials_the_trigger_still_fires(guarded: Gateway) -> None:
    before = on_target(guarded.target, "SELECT count(*) FROM gw13_log")
    try:
        with connect(guarded, "r3-trigger") as conn:
            assert conn.execute("UPDATE gw13_orders SET status = 'x' WHERE id = 7").rowcount == 1
            assert conn.execute("SHOW session_replication_role").fetchone() == ("origin",)
        assert on_target(guarded.target, "SELECT count(*) FROM gw13_log") == int(
            str(before)) + 1
    finally:
        reset(guarded.target)


# --- 4. the reason a counted write shows -------------------------------------------------------


def test_a_counted_write_s_reason_says_what_writes(guarded: Gateway) -> None:
    sql = "UPDATE gw13_orders SET status = 'x' WHERE id <= 120"
    notices: list[str] = []

    def work() -> Any:
        with connect(guarded, "r3-reason") as conn:
            conn.add_notice_handler(lambda n: notices.append(str(n.message_primary)))
            try:
                return conn.execute(sql).rowcount  # type: ignore[arg-type]
            except psycopg.Error as exc:
                return exc

    thread, out = in_thread(work)
    request = wait_for_request(guarded)
    decide(guarded, False)
    thread.join(30)
    assert isinstance(out[0], errors.InsufficientPrivilege)
    shown = [str(request["reason"]), *notices]
    assert all(": ;" not in text and not text.startswith(";") for text in shown), shown
    assert any('"review-big-writes": UPDATE gw13_orders' in text for text in notices), notices
    assert rewritten(guarded.target) == 0
