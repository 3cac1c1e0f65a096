"""Issue 12, the seventh outside attack: protection a DBA put in place (a trigger, a row
security policy's function, a function a trigger calls) stepped around without altering it —
a name rebound under it, a row trigger ahead of it, a table inheriting from its table, a
temporary table standing in for a table its code names."""

from __future__ import annotations

import pytest

from engine.guardrail.classify import classify
from engine.guardrail.guard import SessionGuard
from engine.guardrail.protection import OFF


@pytest.mark.parametrize("sql", [
    "ALTER FUNCTION is_frozen(text) RENAME TO is_frozen_old",
    "ALTER PROCEDURE p() RENAME TO q",
    "ALTER ROUTINE r RENAME TO s",
    "ALTER AGGREGATE a(int) RENAME TO b",
    "ALTER FUNCTION is_frozen(text) SET SCHEMA attic",
    "ALTER TYPE mood RENAME TO feeling",
    "ALTER DOMAIN amount RENAME TO money2",
    "ALTER TRIGGER orders_freeze ON orders RENAME TO zz_orders_freeze",
    "ALTER POLICY p ON salaries RENAME TO q",
    "ALTER RULE r ON orders RENAME TO s",
    "ALTER OPERATOR @@ (int, int) SET SCHEMA attic",
    "ALTER TYPE mood SET SCHEMA attic",
])
def test_a_name_code_calls_rebound_turns_protection_off(shipped: SessionGuard,
                                                         sql: str) -> None:
    assert OFF in classify(sql)[0].kinds
    assert shipped.judge(sql).action in ("review", "block")


@pytest.mark.parametrize("sql", [
    "ALTER TABLE orders RENAME COLUMN note TO remark",
    "ALTER TABLE orders RENAME CONSTRAINT c1 TO c2",
])
def test_renames_with_kinds_of_their_own_are_left_to_them(sql: str) -> None:
    assert OFF not in classify(sql)[0].kinds


@pytest.mark.parametrize("sql", [
    "CREATE TRIGGER zz BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION zz_set()",
    "CREATE TRIGGER a_skip BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION skip()",
    "CREATE TRIGGER t INSTEAD OF DELETE ON v FOR EACH ROW EXECUTE FUNCTION f()",
    "CREATE TRIGGER t BEFORE INSERT OR UPDATE ON public.orders FOR EACH ROW EXECUTE "
    "PROCEDURE f()",
])
def test_a_row_trigger_ahead_of_a_tables_writes_turns_protection_off(
        shipped: SessionGuard, sql: str) -> None:
    assert OFF in classify(sql)[0].kinds
    assert shipped.judge(sql).action == "review"


@pytest.mark.parametrize("sql", [
    "CREATE TRIGGER t AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION f()",
    "CREATE TRIGGER t BEFORE UPDATE ON orders EXECUTE FUNCTION f()",  # per statement
    "CREATE TABLE public.mine (id int); "
    "CREATE TRIGGER t BEFORE UPDATE ON public.mine FOR EACH ROW EXECUTE FUNCTION f()",
])
def test_other_triggers_and_triggers_on_the_sessions_own_tables_do_not(sql: str) -> None:
    assert OFF not in classify(sql)[-1].kinds


@pytest.mark.parametrize("sql", [
    "CREATE TABLE orders_x () INHERITS (orders)",
    "CREATE TABLE orders_2027 PARTITION OF orders FOR VALUES FROM (1) TO (2)",
    "CREATE TEMP TABLE o () INHERITS (public.orders)",
])
def test_a_table_made_to_show_in_an_existing_one_turns_protection_off(
        shipped: SessionGuard, sql: str) -> None:
    assert OFF in classify(sql)[0].kinds
    assert shipped.judge(sql).action == "review"


def test_inheriting_from_the_sessions_own_table_does_not() -> None:
    facts = classify("CREATE TABLE public.base (id int); "
                     "CREATE TABLE public.child () INHERITS (public.base)")
    assert OFF not in facts[-1].kinds


@pytest.mark.parametrize(("sql", "name"), [
    ("CREATE TEMP TABLE delete_permits (order_id bigint)", "delete_permits"),
    ("CREATE TEMPORARY TABLE managers AS SELECT session_user AS name", "managers"),
    ("CREATE TABLE pg_temp.audit_log (at timestamptz)", "audit_log"),
    ("CREATE TEMP VIEW managers AS SELECT 'alice'::text AS name", "managers"),
    # A temporary sequence is turned off outright (test_attack_round8.py): the catalog's
    # relations lookup lists no sequences.
])
def test_a_temporary_relation_is_asked_of_the_catalog(sql: str, name: str) -> None:
    assert f"rel:{name}" in classify(sql)[0].replaced


def test_a_temporary_table_of_an_existing_tables_name_turns_protection_off(
        shipped: SessionGuard) -> None:
    existing = {"rel:managers": True, "rel:scratch": False}
    shipped.function_exists = existing.get
    assert shipped.judge("CREATE TEMP TABLE managers (name text)").action == "review"
    assert shipped.judge("CREATE TEMP TABLE scratch (name text)").action == "allow"
    assert shipped.unread("CREATE TEMP TABLE unknown_yet (x int)") == frozenset(
        {"unknown_yet", "fn:type:unknown_yet"})  # its row type too (test_attack_round8.py)


def test_a_new_overload_of_a_function_the_target_has_turns_protection_off(
        shipped: SessionGuard) -> None:
    existing = {"refund_allowed": True, "brand_new": False}
    shipped.function_exists = existing.get
    made = "CREATE FUNCTION {}(cid int) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$"
    assert shipped.judge(made.format("refund_allowed")).action == "review"
    assert shipped.judge(made.format("brand_new")).action == "allow"


@pytest.mark.parametrize("sql", [
    "ALTER FUNCTION is_manager() SECURITY DEFINER",
    "ALTER FUNCTION is_manager() SECURITY INVOKER",
    "ALTER PROCEDURE p() SECURITY DEFINER",
    "REFRESH MATERIALIZED VIEW revenue_by_customer WITH NO DATA",
])
def test_privileges_code_runs_with_and_a_view_emptied_are_reviewed(
        shipped: SessionGuard, sql: str) -> None:
    assert OFF in classify(sql)[0].kinds
    assert shipped.judge(sql).action in ("review", "block")


def test_refreshing_with_data_is_not() -> None:
    assert OFF not in classify("REFRESH MATERIALIZED VIEW revenue_by_customer")[0].kinds
