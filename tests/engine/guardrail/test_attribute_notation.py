"""Outside attack round 18: PostgreSQL reads ``x.f`` / ``(x).f`` as the call ``f(x)`` when ``f``
is no column of ``x`` (attribute notation), for a scalar ``x`` too and for a function whose
other parameters have defaults. The classifier saw a field selection and no call:
``(pid).pg_terminate_backend`` was allowed where ``pg_terminate_backend(pid)`` is blocked, and
``(q).ts_stat`` ran SQL built at run time. A name a function has is judged as that call."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from engine.guardrail import attribute
from engine.guardrail.classify import classify
from engine.guardrail.guard import SessionGuard
from engine.guardrail.rules import GuardrailSettings, Match, Rule
from engine.pg.heldtext import unseen_before


@pytest.mark.parametrize(("sql", "rule"), [
    ("SELECT (pid).pg_terminate_backend FROM pg_stat_activity", "no-backend-control"),
    ("SELECT pg_stat_activity.pg_terminate_backend FROM pg_stat_activity",
     "no-backend-control"),
    ("SELECT 1 FROM pg_stat_activity a WHERE (a.pid).pg_cancel_backend",
     "no-backend-control"),
    ("SELECT CASE WHEN true THEN (pid).pg_cancel_backend END FROM pg_stat_activity",
     "no-backend-control"),
    ("SELECT (x.a[1]).pg_cancel_backend FROM (SELECT ARRAY[1] AS a) x", "no-backend-control"),
    ("SELECT ((x).a).pg_cancel_backend FROM (SELECT ROW(1) AS x) s", "no-backend-control"),
    ("SELECT ('slot').pg_drop_replication_slot", "no-backend-control"),
    ("SELECT ('/etc/passwd').pg_read_file", "no-server-file-functions"),
    ("SELECT ('/tmp').pg_ls_dir", "no-server-file-functions"),
    ("SELECT ('/tmp/x').pg_file_unlink", "no-server-file-functions"),  # adminpack's: not 15's own
    ("SELECT ('dbname=x').dblink_connect", "no-dblink"),
    ("SELECT (q).ts_stat FROM (VALUES (format('SELECT %s', 1))) v(q)", "no-dynamic-sql"),
    ("SELECT (q || '').ts_stat FROM (VALUES ('x')) v(q)", "no-dynamic-sql"),
    ("SELECT (q).dblink_exec FROM (VALUES ('x')) v(q)", "no-dblink"),
    ("CREATE VIEW v AS SELECT (pid).pg_terminate_backend FROM pg_stat_activity",
     "no-backend-control"),
    ("CREATE TABLE t (a int DEFAULT (1).pg_cancel_backend::int)", "no-backend-control"),
    ("ALTER TABLE orders ADD COLUMN a bool DEFAULT (1).pg_cancel_backend",
     "no-backend-control"),
    ("CREATE FUNCTION f() RETURNS bool LANGUAGE sql AS "
     "'SELECT (1).pg_terminate_backend'", "no-backend-control"),
    ("DO $$ BEGIN PERFORM (1).pg_terminate_backend; END $$", "no-do-blocks"),
])
def test_a_function_called_in_attribute_notation_meets_its_rules(
        shipped: SessionGuard, sql: str, rule: str) -> None:
    judgement = shipped.judge(sql)
    assert judgement.action == "block", (sql, judgement.verdict)
    assert rule in {v.rule for v in judgement.statements}, judgement.statements


@pytest.mark.parametrize(("sql", "rule"), [
    ("SELECT (o).lo_unlink FROM (VALUES (16411::oid)) v(o)", "review-large-object-writes"),
    ("SELECT (16411::oid).lo_unlink", "review-large-object-writes"),
    # ts_stat's constant query is read as the SQL it is: its setval is reviewed
    ("SELECT ('SELECT to_tsvector(setval(''orders_id_seq'', 1)::text)').ts_stat",
     "review-sequence-resets"),
])
def test_a_held_function_called_in_attribute_notation_is_held(
        shipped: SessionGuard, sql: str, rule: str) -> None:
    judgement = shipped.judge(sql)
    assert judgement.action == "review", (sql, judgement.verdict)
    assert judgement.verdict.rule == rule


@pytest.mark.parametrize("sql", [
    "SELECT c.full_name, c.email, c.*, (c).id FROM customers c",
    "SELECT (r).f1, (r).* FROM (SELECT ROW(1, 2) AS r) s",
    "SELECT o.id, orders.status FROM orders o JOIN orders ON o.id = orders.id",
])
def test_ordinary_columns_stay_columns(shipped: SessionGuard, sql: str) -> None:
    assert shipped.judge(sql).action == "allow", shipped.judge(sql).verdict


def test_a_qualified_column_bounds_a_write_as_a_bare_one_does(shipped: SessionGuard) -> None:
    bare = shipped.judge("UPDATE orders SET status = 'x' WHERE id = 5")
    qualified = shipped.judge("UPDATE orders o SET status = 'x' WHERE o.id = 5")
    assert (qualified.action, qualified.verdict.rule, qualified.verdict.calls_code) == (
        bare.action, bare.verdict.rule, bare.verdict.calls_code)


def test_the_call_is_listed_with_its_argument() -> None:
    facts = classify("SELECT (q).ts_stat, c.name, c.email FROM v, customers c")[0]
    assert {"ts_stat", "name"} <= facts.functions
    assert "DYNAMIC SQL" in facts.kinds and facts.reaches
    assert facts.attributes == {"email"}  # no function of PostgreSQL's: asked of the catalog
    assert "email" in facts.builtins


@pytest.mark.parametrize(("kind", "node", "names"), [
    ("ColumnRef", {"fields": [{"String": {"sval": "t"}}, {"String": {"sval": "f"}}]}, ["f"]),
    ("ColumnRef", {"fields": [{"String": {"sval": "t"}}, {"A_Star": {}}]}, []),
    ("ColumnRef", {"fields": [{"String": {"sval": "f"}}]}, []),
    ("A_Indirection", {"arg": {"ColumnRef": {}}, "indirection": [
        {"String": {"sval": "a"}}, {"A_Indices": {}}, {"String": {"sval": "b"}}]}, ["a", "b"]),
    ("A_Indirection", {"arg": {}, "indirection": [{"A_Star": {}}]}, []),
])
def test_selections(kind: str, node: dict[str, object], names: list[str]) -> None:
    assert [n for n, _ in attribute.selections(kind, node)] == names


RULES = (Rule("review-big-writes", "review", Match(rows_over=100)),
         Rule("no-opaque", "block", Match(statements=frozenset({"OPAQUE BODY"}))),
         Rule("no-wipe", "block", Match(functions=("wipe_*",))))


class Catalog:
    """Whether the target has a user's function of a name (absent: never read)."""

    def __init__(self, known: Mapping[str, bool | None]) -> None:
        self.known = known

    def __call__(self, name: str, fresh: bool) -> bool | None:
        return self.known.get(name)


def guard(known: Mapping[str, bool | None]) -> SessionGuard:
    g = SessionGuard(RULES, GuardrailSettings())
    g.overloads = Catalog(known)
    return g


def test_a_user_s_function_of_the_selected_name_is_counted_as_a_call() -> None:
    sql = "SELECT (o).archive FROM orders o"
    assert guard({"archive": True}).judge(sql).verdict.calls_code
    assert guard({"archive": True}).judge(sql).verdict.rows_over == 100
    assert guard({"archive": False}).judge(sql).action == "allow"  # a column after all
    g = guard({})
    assert "fn:archive" in g.unread(sql)  # read first
    g.looked(frozenset({"fn:archive"}))
    assert g.judge(sql).verdict.calls_code  # still not known: fail closed


@pytest.mark.parametrize("sql", [
    "CREATE VIEW v AS SELECT (o).archive FROM orders o",
    "CREATE TABLE t (a int DEFAULT (1).archive)",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$SELECT (1).archive$$",
])
def test_a_user_s_function_selected_in_stored_code_makes_it_opaque(sql: str) -> None:
    assert guard({"archive": True}).judge(sql).verdict.rule == "no-opaque"
    assert guard({"archive": False}).judge(sql).action == "allow"


def test_a_rule_naming_a_function_matches_its_attribute_notation() -> None:
    assert guard({}).judge("SELECT (o).wipe_all FROM orders o").verdict.rule == "no-wipe"


def test_a_function_the_session_created_is_called_in_attribute_notation() -> None:
    g = guard({"wipe": False})
    created = g.started("CREATE FUNCTION public.wipe(n int) RETURNS int LANGUAGE sql "
                        "AS 'DELETE FROM orders RETURNING 1'")
    assert created is not None
    g.finished(created)
    assert g.judge("SELECT (1).wipe").verdict.calls_code


@pytest.mark.parametrize(("text", "unseen"), [
    ("SELECT (q).ts_stat FROM (VALUES ('x')) v(q); UPDATE orders SET status = 'x'", True),
    ("SELECT (1).archive; UPDATE orders SET status = 'x'", True),  # a user's, maybe
    ("SELECT 1; UPDATE orders SET status = 'x'", False),
])
def test_attribute_notation_in_front_of_a_held_statement(text: str, unseen: bool) -> None:
    assert unseen_before(text, 1) is unseen


def test_a_select_of_a_set_returning_function_in_attribute_notation_makes_rows() -> None:
    """``INSERT … SELECT (a).unnest ON CONFLICT DO UPDATE`` is not a literal list of rows."""
    from engine.guardrail.bounds import literal_select
    from engine.masking.lineage import parse

    stmts = parse("SELECT ('{1,2}'::int[]).unnest")
    assert stmts is not None
    assert not literal_select(stmts[0]["SelectStmt"])
    stmts = parse("SELECT 1, 'a'")
    assert stmts is not None
    assert literal_select(stmts[0]["SelectStmt"])
