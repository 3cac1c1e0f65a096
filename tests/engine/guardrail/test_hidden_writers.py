"""Issue 12, round 3: writes not spelled UPDATE or DELETE, and protection turned off by other
names, classified as what they do (``classify``, ``protection``, ``bounds``, ``rules``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pglast import enums

from engine.guardrail import GuardrailSettings, Rule
from engine.guardrail.classify import Facts, classify
from engine.guardrail.guard import SessionGuard
from engine.guardrail.protection import CASCADING_FK, OFF, known_subcommands
from engine.guardrail.rules import Match, countable, judge_statement

REPO = Path(__file__).resolve().parents[3]


def one(sql: str) -> Facts:
    facts = classify(sql)
    assert len(facts) == 1
    return facts[0]


# --- 1. INSERT … ON CONFLICT DO UPDATE is an UPDATE -----------------------------------------

UPSERT = "ON CONFLICT (id) DO UPDATE SET status = 'refunded'"


@pytest.mark.parametrize("sql", [
    # The attack: every row of orders fed back into itself.
    f"INSERT INTO orders (id, status) OVERRIDING SYSTEM VALUE SELECT id, status FROM orders "
    f"{UPSERT}",
    f"INSERT INTO orders SELECT * FROM orders {UPSERT}",
    f"INSERT INTO public.orders AS o SELECT * FROM other {UPSERT}",
    f"INSERT INTO orders (id) SELECT 1 UNION ALL SELECT id FROM orders {UPSERT}",
    f"INSERT INTO orders (id) SELECT generate_series(1, 100000) {UPSERT}",
    f"INSERT INTO orders (id) (SELECT id FROM orders) {UPSERT}",
    f"INSERT INTO orders (id) WITH s AS (SELECT id FROM orders) SELECT id FROM s {UPSERT}",
    f"INSERT INTO orders (id) TABLE orders {UPSERT}",
    f"INSERT INTO orders (id) SELECT id FROM orders {UPSERT} WHERE excluded.id > 0",
    f"INSERT INTO orders (id) SELECT id FROM orders {UPSERT} WHERE true",
    f"INSERT INTO orders (id) SELECT id FROM orders {UPSERT} WHERE orders.id = orders.id",
    "INSERT INTO orders (id) SELECT id FROM orders ON CONFLICT ON CONSTRAINT orders_pkey "
    "DO UPDATE SET status = excluded.status",
])
def test_an_upsert_fed_by_a_query_is_an_unbounded_update(sql: str) -> None:
    facts = one(sql)
    assert {"INSERT", "UPDATE", "UPDATE WITHOUT WHERE"} <= facts.kinds
    assert facts.writes == {"orders"} or facts.writes == {"public.orders"}


@pytest.mark.parametrize("sql", [
    f"INSERT INTO orders (id) VALUES (1), (2) {UPSERT}",
    f"INSERT INTO orders (id) SELECT 7 {UPSERT}",
    f"INSERT INTO orders (id) SELECT id FROM orders {UPSERT} WHERE orders.status <> 'x'",
    f"INSERT INTO orders AS o (id) SELECT id FROM u {UPSERT} WHERE o.id < 10",
    f"INSERT INTO orders DEFAULT VALUES {UPSERT}",
])
def test_a_bounded_upsert_is_an_update_the_count_judges(sql: str) -> None:
    facts = one(sql)
    assert {"INSERT", "UPDATE"} <= facts.kinds
    assert "UPDATE WITHOUT WHERE" not in facts.kinds
    assert countable(facts)


@pytest.mark.parametrize("sql", [
    "INSERT INTO orders (id) SELECT id FROM orders ON CONFLICT DO NOTHING",
    "INSERT INTO orders (id) SELECT id FROM orders",
    "SELECT * FROM orders FOR UPDATE",
    "SELECT * FROM orders FOR NO KEY UPDATE SKIP LOCKED",
])
def test_what_rewrites_no_existing_row_is_no_update(sql: str) -> None:
    facts = one(sql)
    assert not facts.kinds & {"UPDATE", "DELETE", "MERGE"}


@pytest.mark.parametrize(("sql", "where"), [
    ("WITH w AS (INSERT INTO orders (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = 1 "
     "RETURNING id) SELECT * FROM w", "a writable CTE"),
    ("WITH w AS (INSERT INTO orders (id) SELECT id FROM orders ON CONFLICT (id) DO UPDATE "
     "SET n = 1) DELETE FROM log WHERE id = 1", "a writable CTE"),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN INSERT INTO orders (id) "
     "VALUES (1) ON CONFLICT (id) DO UPDATE SET n = 1; END$$", "a function body"),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC INSERT INTO orders (id) "
     "VALUES (1) ON CONFLICT (id) DO UPDATE SET n = 1; END", "a BEGIN ATOMIC body"),
    ("CREATE RULE r AS ON INSERT TO log DO ALSO INSERT INTO orders (id) VALUES (NEW.id) "
     "ON CONFLICT (id) DO UPDATE SET n = 1", "a rule action"),
    ("CREATE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN INSERT INTO orders (id) SELECT id "
     "FROM orders ON CONFLICT (id) DO UPDATE SET n = 1; END$$", "a procedure body"),
])
def test_an_upsert_inside_is_an_update_the_count_cannot_see(sql: str, where: str) -> None:
    facts = one(sql)
    assert "UPDATE" in facts.kinds, where
    assert not countable(facts), where


@pytest.mark.parametrize(("sql", "rule"), [
    (f"INSERT INTO orders (id, status) OVERRIDING SYSTEM VALUE SELECT id, status FROM orders "
     f"{UPSERT}", "review-unbounded-writes"),
    (f"INSERT INTO orders (id) SELECT id FROM orders {UPSERT} WHERE orders.id > 0",
     "review-big-writes"),
    ("CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO orders "
     "(id) VALUES (NEW.id) ON CONFLICT (id) DO UPDATE SET n = 1; RETURN NEW; END$$",
     "review-big-writes"),
    ("WITH w AS (INSERT INTO orders (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = 1 "
     "RETURNING id) SELECT * FROM w", "review-big-writes"),
])
def test_shipped_policy_holds_upserts(shipped: SessionGuard, sql: str, rule: str) -> None:
    judged = shipped.judge(sql)
    assert (judged.action, judged.rule) == ("review", rule), judged.verdict.reason


def test_a_counted_upsert_is_counted_from_its_tag(shipped: SessionGuard) -> None:
    judged = shipped.judge(f"INSERT INTO orders (id) VALUES (1) {UPSERT}")
    assert (judged.action, judged.rule) == ("review", "review-big-writes")
    assert judged.verdict.rows_over == 100  # the relay counts it (INSERT 0 n)


def test_copy_from_is_an_insert() -> None:
    rule = Rule("no-inserts-into-log", "block",
                Match(statements=frozenset({"INSERT"}), tables=("log",), access="write"))
    for sql in ("COPY log FROM STDIN", "COPY public.log (a, b) FROM STDIN WITH (FORMAT csv)"):
        assert judge_statement((rule,), one(sql)).action == "block", sql
    assert judge_statement((rule,), one("COPY log TO STDOUT")).action == "allow"


def test_rewriting_a_column_is_an_update() -> None:
    for sql in ("ALTER TABLE orders ALTER COLUMN status TYPE int USING 0",
                "ALTER TABLE orders ALTER status TYPE numeric(10, 0)"):
        assert {"UPDATE", "ALTER TABLE SET DATA TYPE"} <= one(sql).kinds


def test_truncate_meets_a_rows_over_rule() -> None:
    rule = Rule("big-writes", "review", Match(rows_over=10))
    verdict = judge_statement((rule,), one("TRUNCATE orders"))
    assert (verdict.action, verdict.rule, verdict.rows_over) == ("review", "big-writes", None)
    assert "cannot count" in verdict.reason


@pytest.mark.parametrize("sql", [
    "MERGE INTO t USING (SELECT 1 AS id UNION ALL SELECT id FROM t) s ON t.id = s.id "
    "WHEN MATCHED THEN DELETE",
    "MERGE INTO t USING (SELECT generate_series(1, 100000) AS id) s ON t.id = s.id "
    "WHEN MATCHED THEN DELETE",
])
def test_a_merge_source_that_makes_rows_is_not_literal(sql: str) -> None:
    assert "DELETE WITHOUT WHERE" in one(sql).kinds


@pytest.mark.parametrize("sql", [
    "DELETE FROM orders USING k WHERE k.id < 100",
    "DELETE FROM orders USING orders o2 WHERE orders.id = o2.id",
    "DELETE FROM orders o USING k WHERE k.flag",
])
def test_delete_using_without_a_condition_on_the_row_is_unbounded(sql: str) -> None:
    assert "DELETE WITHOUT WHERE" in one(sql).kinds


# --- 2. foreign keys whose actions write ------------------------------------------------------


@pytest.mark.parametrize(("sql", "writes"), [
    ("ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES k(id) "
     "ON DELETE CASCADE", {("DELETE", "orders")}),
    ("ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES k ON DELETE SET NULL",
     {("UPDATE", "orders")}),
    ("ALTER TABLE orders ADD FOREIGN KEY (c) REFERENCES k ON UPDATE CASCADE NOT VALID",
     {("UPDATE", "orders")}),
    ("ALTER TABLE orders ADD COLUMN c int REFERENCES k ON DELETE SET DEFAULT",
     {("UPDATE", "orders")}),
    ("CREATE TABLE c (a int REFERENCES k ON DELETE CASCADE)", {("DELETE", "c")}),
    ("CREATE TABLE s.c (a int, FOREIGN KEY (a) REFERENCES k (id) ON UPDATE SET NULL "
     "ON DELETE CASCADE)", {("DELETE", "s.c"), ("UPDATE", "s.c")}),
    ("create table c (a int constraint x references k match full on delete set null (a))",
     {("UPDATE", "c")}),
])
def test_a_cascading_foreign_key_is_code_that_writes_later(
        sql: str, writes: set[tuple[str, str]]) -> None:
    facts = one(sql)
    assert CASCADING_FK in facts.kinds
    found = {(kind, table) for part in facts.parts for kind in part.kinds
             for table in part.writes}
    assert found == writes
    assert all(part.deferred for part in facts.parts)
    assert not countable(facts)


@pytest.mark.parametrize("sql", [
    "ALTER TABLE orders ADD FOREIGN KEY (c) REFERENCES k",
    "ALTER TABLE orders ADD FOREIGN KEY (c) REFERENCES k ON DELETE RESTRICT "
    "ON UPDATE NO ACTION",
    "CREATE TABLE c (a int REFERENCES k)",
])
def test_a_foreign_key_that_only_checks_writes_nothing(sql: str) -> None:
    facts = one(sql)
    assert CASCADING_FK not in facts.kinds and not facts.parts
    assert not facts.kinds & {"UPDATE", "DELETE"}


@pytest.mark.parametrize("sql", [
    "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES k(id) "
    "ON DELETE CASCADE",
    "CREATE TABLE IF NOT EXISTS c (a int REFERENCES k ON DELETE SET NULL)",
    "CREATE TABLE c (a int REFERENCES k ON DELETE SET NULL)",  # c: whichever the path finds
    "ALTER TABLE orders ADD COLUMN c int REFERENCES k ON UPDATE CASCADE",
])
def test_shipped_policy_reviews_cascading_keys_once(shipped: SessionGuard, sql: str) -> None:
    judged = shipped.judge(sql)
    assert (judged.action, judged.rule) == ("review", "review-big-writes")
    assert "cannot count" in judged.verdict.reason


def test_a_cascading_key_of_a_new_table_writes_only_its_own_rows(shipped: SessionGuard) -> None:
    """The table the statement creates holds no rows but what the session puts there: its
    key's cascades are the session's own writes (a migration is not held for them)."""
    judged = shipped.judge("CREATE TABLE public.c (a int REFERENCES k ON DELETE SET NULL)")
    assert judged.action == "allow"


def test_a_rule_on_deletes_of_a_table_meets_its_cascade() -> None:
    rule = Rule("no-deletes-of-orders", "block",
                Match(statements=frozenset({"DELETE"}), tables=("orders",)))
    facts = one("ALTER TABLE orders ADD FOREIGN KEY (c) REFERENCES k ON DELETE CASCADE")
    assert judge_statement((rule,), facts).action == "block"


# --- 3. protection turned off by any name ------------------------------------------------------


def test_every_alter_table_subcommand_is_decided() -> None:
    assert {e.name for e in enums.AlterTableType} <= known_subcommands()


@pytest.mark.parametrize("sql", [
    "ALTER TABLE t DISABLE TRIGGER x", "ALTER TABLE t DISABLE TRIGGER ALL",
    "ALTER TABLE ONLY t DISABLE TRIGGER USER", "ALTER TABLE t ENABLE REPLICA TRIGGER x",
    "ALTER TABLE t DISABLE RULE r", "ALTER TABLE t ENABLE REPLICA RULE r",
    "ALTER TABLE t DISABLE ROW LEVEL SECURITY", "ALTER TABLE t NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE t REPLICA IDENTITY NOTHING", "ALTER TABLE t REPLICA IDENTITY FULL",
    "ALTER TABLE t DROP CONSTRAINT c", "ALTER TABLE t ALTER COLUMN a DROP NOT NULL",
    "ALTER TABLE t SET UNLOGGED", "ALTER TABLE t ALTER CONSTRAINT fk DEFERRABLE",
    "ALTER TABLE t ALTER CONSTRAINT fk DEFERRABLE INITIALLY DEFERRED",
    "ALTER TABLE t ALTER CONSTRAINT fk NOT ENFORCED",
    "ALTER TABLE t ADD COLUMN b int, DISABLE TRIGGER x",
    "ALTER VIEW v RESET (check_option)", "ALTER VIEW v SET (check_option = local)",
    "ALTER VIEW v SET (security_barrier = false)", "ALTER VIEW v RESET (security_invoker)",
    "ALTER EVENT TRIGGER e DISABLE", "ALTER EVENT TRIGGER e ENABLE REPLICA",
    "CREATE POLICY p ON t USING (true)", "ALTER POLICY p ON t USING (true)",
    "ALTER DOMAIN d DROP NOT NULL", "ALTER DOMAIN d DROP CONSTRAINT c",
    "DROP TRIGGER x ON t", "DROP RULE r ON t", "DROP POLICY p ON t",
    "SET session_replication_role = replica", "SET LOCAL session_replication_role TO local",
    "SELECT set_config('session_replication_role', 'replica', false)",
    "RESET session_replication_role",
    "ALTER ROLE bob SET session_replication_role = replica",
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql SET session_replication_role = replica "
    "AS 'SELECT 1'",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN "
    "ALTER TABLE t ENABLE REPLICA TRIGGER x; END$$",
])
def test_protection_turned_off_by_any_name(sql: str) -> None:
    assert OFF in one(sql).kinds


@pytest.mark.parametrize("sql", [
    "ALTER TABLE t ENABLE TRIGGER x", "ALTER TABLE t ENABLE TRIGGER ALL",
    "ALTER TABLE t ENABLE RULE r", "ALTER TABLE t ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE t FORCE ROW LEVEL SECURITY", "ALTER TABLE t ADD COLUMN b int",
    "ALTER TABLE t ALTER CONSTRAINT fk NOT DEFERRABLE", "ALTER TABLE t ALTER a SET NOT NULL",
    "ALTER VIEW v SET (check_option = cascaded)", "ALTER VIEW v SET (security_barrier)",
    "ALTER EVENT TRIGGER e ENABLE", "CREATE POLICY p ON t AS RESTRICTIVE USING (a > 0)",
    "SET session_replication_role = origin", "SET search_path = public",
    "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", "DROP TABLE t",
])
def test_what_keeps_protection_on(sql: str) -> None:
    assert OFF not in one(sql).kinds


def test_a_trigger_off_by_another_name_is_what_disable_trigger_rules_name() -> None:
    assert "ALTER TABLE DISABLE TRIGGER" in one("ALTER TABLE t ENABLE REPLICA TRIGGER x").kinds
    assert "ALTER TABLE DISABLE RULE" in one("ALTER TABLE t ENABLE REPLICA RULE r").kinds


@pytest.mark.parametrize("sql", [
    "ALTER TABLE orders ENABLE REPLICA TRIGGER audit",
    "ALTER TABLE orders ENABLE ALWAYS TRIGGER audit",
    "ALTER TABLE orders ENABLE REPLICA RULE r", "ALTER TABLE orders ENABLE ALWAYS RULE r",
    "ALTER TABLE orders DISABLE RULE r", "ALTER TABLE orders DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE orders NO FORCE ROW LEVEL SECURITY", "ALTER TABLE orders REPLICA IDENTITY "
    "NOTHING", "ALTER TABLE orders ALTER CONSTRAINT fk DEFERRABLE INITIALLY DEFERRED",
    "SET session_replication_role = replica",
])
def test_shipped_policy_reviews_protection_turned_off(shipped: SessionGuard, sql: str) -> None:
    judged = shipped.judge(sql)
    assert (judged.action, judged.rule) == ("review", "review-destructive-alter-table")


# --- 4. the wording of rows_over reasons -------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "UPDATE orders SET n = 1 WHERE id > 5", "DELETE FROM orders WHERE id > 5",
    "WITH d AS (DELETE FROM orders WHERE id > 5 RETURNING id) SELECT * FROM d",
    f"INSERT INTO orders (id) VALUES (1) {UPSERT}",
])
def test_a_rows_over_reason_says_what_writes(shipped: SessionGuard, sql: str) -> None:
    reason = shipped.judge(sql).verdict.reason
    assert not reason.startswith(("; ", ";", " ")), reason
    assert reason.startswith(("UPDATE orders", "DELETE orders")), reason
    assert "more than 100 rows" in reason


def test_a_rows_over_rule_with_other_criteria_keeps_them_first() -> None:
    rule = Rule("big-order-writes", "review", Match(rows_over=5, tables=("orders",)))
    verdict = judge_statement((rule,), one("UPDATE orders SET n = 1 WHERE id > 5"))
    assert verdict.reason == "uses orders; writes more than 5 rows"
    guard = SessionGuard((rule,), GuardrailSettings())
    assert guard.judge("SELECT 1").action == "allow"
