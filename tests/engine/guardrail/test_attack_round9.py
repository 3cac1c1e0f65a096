"""Issue 12, the ninth and tenth outside attacks, judged with the shipped rules: a sequence
moved by setval, a SECURITY DEFINER function (a grant by another name), and table rewrites
under an exclusive lock (SET ACCESS METHOD, ADD COLUMN with a volatile DEFAULT, a serial, an
identity or a stored generated column)."""

from __future__ import annotations

import pytest

from engine.guardrail.guard import SessionGuard


@pytest.mark.parametrize(("sql", "rule"), [
    ("SELECT setval('orders_id_seq', 1, false)", "review-sequence-resets"),
    ("SELECT pg_catalog.setval(pg_get_serial_sequence('orders', 'id'), 1)",
     "review-sequence-resets"),
    ("CREATE FUNCTION peek() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER "
     "AS 'SELECT note FROM orders'", "no-role-or-grant-changes"),
    ("CREATE PROCEDURE p() LANGUAGE sql EXTERNAL SECURITY DEFINER AS 'SELECT 1'",
     "no-role-or-grant-changes"),
    ("ALTER FUNCTION peek() SECURITY DEFINER", "no-role-or-grant-changes"),
    ("ALTER TABLE orders SET ACCESS METHOD heap", "review-destructive-alter-table"),
    ("ALTER TABLE orders ADD COLUMN z text DEFAULT gen_random_uuid()::text",
     "review-destructive-alter-table"),
    ("ALTER TABLE orders ADD COLUMN d int DEFAULT (random() * 0)::int",
     "review-destructive-alter-table"),
    ("ALTER TABLE orders ADD COLUMN g numeric GENERATED ALWAYS AS (amount * 0) STORED",
     "review-destructive-alter-table"),
    ("ALTER TABLE orders ADD COLUMN i int GENERATED ALWAYS AS IDENTITY",
     "review-destructive-alter-table"),
    ("ALTER TABLE orders ADD COLUMN s bigserial", "review-destructive-alter-table"),
])
def test_stopped(shipped: SessionGuard, sql: str, rule: str) -> None:
    judgement = shipped.judge(sql)
    assert (judgement.action, judgement.rule) in (("review", rule), ("block", rule))


@pytest.mark.parametrize("sql", [
    "SELECT nextval('orders_id_seq')",
    "CREATE FUNCTION plain() RETURNS int LANGUAGE sql SECURITY INVOKER AS 'SELECT 1'",
    "ALTER TABLE orders ADD COLUMN created_at timestamptz DEFAULT now()",
    "ALTER TABLE orders ADD COLUMN note2 text DEFAULT 'none'",
    "ALTER TABLE orders ADD COLUMN n int",
])
def test_ordinary_work_is_not(shipped: SessionGuard, sql: str) -> None:
    assert shipped.judge(sql).action == "allow"
