"""``bounds``: which WHERE clauses (and MERGE joins) restrict the rows a write touches.

Two classes count as touching every row: conditions that never look at the target's row
(row-blind) and conditions that only compare the row with itself (true for every row whose
columns are not NULL). Each list holds many spellings of each, so that a new spelling of a
known class fails here before it gets through a gateway.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pglast.parser import parse_sql_json

from engine.guardrail.bounds import Reach, Target, merge_unbounded, where_reach
from engine.guardrail.classify import classify

FUZZ = settings(database=None, deadline=None, max_examples=300)


def statement(sql: str) -> dict[str, Any]:
    tree = orjson.loads(parse_sql_json(sql))
    (_, node), = tree["stmts"][0]["stmt"].items()
    assert isinstance(node, dict)
    return dict(node)


def reach(where: str, table: str = "t") -> Reach:
    node = statement(f"DELETE FROM {table} {where}")
    return where_reach(node.get("whereClause"), Target.of(node["relation"],
                                                          node.get("usingClause")))


def kinds(sql: str) -> set[str]:
    facts = classify(sql)
    assert len(facts) == 1
    return facts[0].kinds


# Conditions that never look at the target's row: every row or none.
ROW_BLIND = [
    "WHERE 1 BETWEEN 0 AND 2", "WHERE 5 BETWEEN SYMMETRIC 9 AND 1", "WHERE 3 NOT BETWEEN 5 AND 9",
    "WHERE EXISTS (SELECT 1)", "WHERE EXISTS (SELECT 1 FROM u)", "WHERE EXISTS (TABLE u)",
    "WHERE EXISTS (SELECT * FROM pg_class c WHERE c.relname = 'u')",
    "WHERE (SELECT count(*) FROM u) > 0", "WHERE (SELECT true)", "WHERE coalesce(true, false)",
    "WHERE coalesce(NULL, true)", "WHERE COALESCE(NULL::boolean, 1 = 1)", "WHERE $1",
    "WHERE $1 = $1", "WHERE $1::boolean", "WHERE current_user = 'alice'",
    "WHERE session_user <> 'nobody'", "WHERE now() > '2000-01-01'", "WHERE random() < 2",
    "WHERE pg_backend_pid() > 0", "WHERE length('abc') = 3", "WHERE 1 IN (1, 2)",
    "WHERE 'a' IN ('a')", "WHERE 2 NOT IN (3, 4)", "WHERE true IS TRUE", "WHERE NULL IS UNKNOWN",
    "WHERE false IS NOT TRUE", "WHERE NULL IS NOT DISTINCT FROM NULL",
    "WHERE 1 IS DISTINCT FROM 2", "WHERE CASE WHEN true THEN true END",
    "WHERE CASE WHEN 1 = 2 THEN false ELSE true END", "WHERE 1 + 1 = 2", "WHERE -1 < 0",
    "WHERE 'a' || 'b' = 'ab'", "WHERE greatest(1, 2) = 2", "WHERE nullif(1, 2) = 1",
    "WHERE 1 = ANY(ARRAY[1, 2])", "WHERE ARRAY[1] = ARRAY[1]", "WHERE 'x' LIKE '%'",
    "WHERE id = 1 OR EXISTS (SELECT 1)", "WHERE id = 1 OR $1", "WHERE (1, 2) = (1, 2)",
    "WHERE 1 = 1 AND 2 = 2 AND $1", "WHERE NOT NOT $1", "WHERE u_flag() IS NOT FALSE",
    "WHERE 'abc' ~ 'b'", "WHERE 1 < ALL(ARRAY[2, 3])", "WHERE NOT EXISTS (SELECT 1 FROM u)",
]

# Conditions that look at the row only to compare it with itself.
TRUE_OF_EVERY_ROW = [
    "WHERE id IS NOT NULL", "WHERE NOT (id IS NULL)", "WHERE NOT id IS NULL",
    "WHERE t.id IS NOT NULL", "WHERE public.t.id IS NOT NULL", "WHERE id NOTNULL",
    "WHERE (id IS NULL) IS NOT TRUE", "WHERE (id IS NULL) IS FALSE",
    "WHERE (id = 1) IS NOT UNKNOWN", "WHERE (id, name) IS NOT NULL", "WHERE id = id",
    "WHERE t.id = id", "WHERE id = t.id", "WHERE \"id\" = ID", "WHERE id >= id",
    "WHERE id <= id", "WHERE id IS NOT DISTINCT FROM id", "WHERE (id, name) = (id, name)",
    "WHERE id + 0 = id + 0", "WHERE lower(name) = lower(name)",
    "WHERE coalesce(id, 0) = coalesce(id, 0)", "WHERE id::text = id::text",
    "WHERE id IN (id)", "WHERE id IN (1, id)", "WHERE id = ANY(ARRAY[id])",
    "WHERE id BETWEEN id AND id", "WHERE flag OR NOT flag", "WHERE id = 1 OR id <> 1",
    "WHERE id < 5 OR id >= 5", "WHERE 5 > id OR id >= 5", "WHERE id IS NULL OR id IS NOT NULL",
    "WHERE id > 0 OR NOT (id > 0)", "WHERE (flag IS TRUE) OR (flag IS NOT TRUE)",
    "WHERE name LIKE '%'", "WHERE name ILIKE '%%'", "WHERE name SIMILAR TO '%'",
    "WHERE name ~ ''", "WHERE name ~ '.*'", "WHERE name ~* '^'",
    "WHERE id IN (SELECT id FROM t)", "WHERE id IN (SELECT t.id FROM t)",
    "WHERE id IN (SELECT x.id FROM t x)", "WHERE id IN (SELECT DISTINCT id FROM t)",
    "WHERE id IN (SELECT id FROM public.t)", "WHERE id = ANY (SELECT id FROM t)",
    "WHERE id IN (SELECT id FROM t WHERE true)", "WHERE id IN (SELECT id FROM t WHERE id = id)",
    "WHERE (id, name) IN (SELECT id, name FROM t)", "WHERE id = ANY(ARRAY(SELECT id FROM t))",
    "WHERE EXISTS (SELECT 1 FROM t AS s WHERE s.id = t.id)",
    "WHERE EXISTS (SELECT 1 FROM t s WHERE s.id = id)", "WHERE EXISTS (SELECT 1 FROM t)",
    "WHERE CASE WHEN id > 5 THEN true ELSE true END", "WHERE id = id AND name = name",
    "WHERE id IS NOT NULL AND true", "WHERE NOT (id IS NULL OR false)",
    "WHERE id IS NOT NULL OR id = 3", "WHERE (id = id) = true", "WHERE (id IS NULL) = false",
    "WHERE (id IS NULL) <> true", "WHERE id = (SELECT id)",
    "WHERE id = (SELECT id FROM t t2 WHERE t2.id = t.id)",
]


@pytest.mark.parametrize("where", ["", *ROW_BLIND, *TRUE_OF_EVERY_ROW])
def test_update_and_delete_that_touch_every_row(where: str) -> None:
    assert kinds(f"DELETE FROM t {where}") - {"SELECT"} == {"DELETE", "DELETE WITHOUT WHERE"}
    assert kinds(f"UPDATE t SET a = 1 {where}") - {"SELECT"} == {"UPDATE",
                                                                  "UPDATE WITHOUT WHERE"}


@pytest.mark.parametrize("where", ROW_BLIND)
def test_row_blind_conditions(where: str) -> None:
    assert reach(where) in (Reach.BLIND, Reach.ALL)


@pytest.mark.parametrize("where", TRUE_OF_EVERY_ROW)
def test_conditions_true_of_every_row(where: str) -> None:
    assert reach(where) == Reach.ALL


BOUNDED = [
    "WHERE id = 1", "WHERE id = $1", "WHERE id = ANY($1)", "WHERE id IN (1, 2, 3)",
    "WHERE id BETWEEN 1 AND 5", "WHERE id IN (SELECT id FROM u)",
    "WHERE id IN (SELECT id FROM t LIMIT 10)", "WHERE id IN (SELECT id FROM t OFFSET 1)",
    "WHERE id IN (SELECT id FROM t WHERE status = 'x')", "WHERE id IN (SELECT parent FROM t)",
    "WHERE id IN (SELECT max(id) FROM t GROUP BY status)",
    "WHERE id IN (SELECT id FROM t UNION SELECT 1)",
    "WHERE EXISTS (SELECT 1 FROM u WHERE u.tid = t.id)",
    "WHERE EXISTS (SELECT 1 FROM u WHERE u.tid = id)",
    "WHERE EXISTS (SELECT 1 FROM t s WHERE s.id = t.id + 1)",
    "WHERE EXISTS (SELECT 1 FROM u WHERE flag)",  # flag might be t's: it looks at the row
    "WHERE id = 1 OR id = 2", "WHERE id < 5 OR id > 5", "WHERE flag", "WHERE NOT flag",
    "WHERE name LIKE 'a%'", "WHERE name ~ '^a'", "WHERE lower(name) = 'x'",
    "WHERE coalesce(flag, false)", "WHERE CASE WHEN id > 5 THEN true ELSE false END",
    "WHERE random() < 0.5 AND id = 3", "WHERE $1 AND id = 3", "WHERE created < now()",
    "WHERE CURRENT OF c", "WHERE t.id = u.id", "WHERE (id = 1) = true",
    "WHERE id = (SELECT max(id) FROM t)", "WHERE id = (SELECT id FROM t t2 WHERE t2.id = 5)",
    # Provably false: touches nothing.
    "WHERE false", "WHERE 1 = 2", "WHERE NULL", "WHERE NULL = NULL", "WHERE 1 BETWEEN 3 AND 5",
    "WHERE 1 IN (2, 3)", "WHERE NULL IN (1)", "WHERE 1 NOT IN (1)", "WHERE 1 IS DISTINCT FROM 1",
    "WHERE false AND $1", "WHERE id IS NULL", "WHERE NOT (id IS NOT NULL)", "WHERE id <> id",
    "WHERE id < id", "WHERE id IS DISTINCT FROM id", "WHERE name NOT LIKE '%'",
    "WHERE id NOT IN (SELECT id FROM t)", "WHERE NOT EXISTS (SELECT 1 FROM t s WHERE s.id = t.id)",
    "WHERE flag AND NOT flag",
    # True of every row only given the data: the effect-based check's business, not this one.
    "WHERE id > -1", "WHERE id >= 0", "WHERE name <> 'no such name'",
]


@pytest.mark.parametrize("where", BOUNDED)
def test_bounded_conditions(where: str) -> None:
    assert "DELETE WITHOUT WHERE" not in kinds(f"DELETE FROM t {where}")
    assert "UPDATE WITHOUT WHERE" not in kinds(f"UPDATE t SET a = 1 {where}")
    assert reach(where) in (Reach.SOME, Reach.NONE)


@pytest.mark.parametrize(("sql", "unbounded"), [
    # Another table's columns are not the target's row: a cross join touches every row.
    ("UPDATE t SET a = u.a FROM u WHERE u.id = 5", True),
    ("DELETE FROM t USING u WHERE u.flag", True),
    ("DELETE FROM t USING u WHERE u.id = u.id", True),
    ("UPDATE t SET a = 1 FROM u", True),
    # The target's own table joined to itself on the same column: each row finds itself.
    ("UPDATE t SET a = 1 FROM t t2 WHERE t.id = t2.id", True),
    ("DELETE FROM t USING t AS s WHERE s.id = t.id", True),
    ("DELETE FROM t AS x WHERE x.id IS NOT NULL", True),
    ("DELETE FROM public.t WHERE t.id = public.t.id", True),
    ("UPDATE ONLY t SET a = 1 WHERE id = id", True),
    ("UPDATE t SET a = u.a FROM u WHERE u.id = t.uid", False),
    ("DELETE FROM t USING u WHERE t.id = u.id", False),
    ("UPDATE t SET a = 1 FROM t t2 WHERE t.parent = t2.id", False),
    ("UPDATE t SET a = 1 FROM t t2 WHERE t2.id = 5 AND t.id = t2.parent", False),
    ("DELETE FROM t AS x WHERE x.id = 3", False),
])
def test_from_and_using(sql: str, unbounded: bool) -> None:
    found = kinds(sql) & {"UPDATE WITHOUT WHERE", "DELETE WITHOUT WHERE"}
    assert bool(found) == unbounded


@pytest.mark.parametrize(("sql", "expected"), [
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", {"DELETE WITHOUT WHERE"}),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1",
     {"UPDATE WITHOUT WHERE"}),
    ("MERGE INTO t USING t AS s ON t.id = s.id WHEN MATCHED THEN DELETE",
     {"DELETE WITHOUT WHERE"}),
    ("MERGE INTO t USING (SELECT * FROM t) s ON t.id = s.id WHEN MATCHED THEN DELETE",
     {"DELETE WITHOUT WHERE"}),
    ("MERGE INTO t USING (VALUES (1)) v(id) ON true WHEN MATCHED THEN DELETE",
     {"DELETE WITHOUT WHERE"}),
    ("MERGE INTO t USING (SELECT 1 AS id) v ON t.id = t.id WHEN MATCHED THEN DELETE",
     {"DELETE WITHOUT WHERE"}),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.flag THEN DELETE",
     {"DELETE WITHOUT WHERE"}),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND true THEN DELETE",
     {"DELETE WITHOUT WHERE"}),
    ("MERGE INTO t USING (VALUES (1)) v(id) ON t.id = v.id "
     "WHEN NOT MATCHED BY SOURCE THEN DELETE", {"DELETE WITHOUT WHERE"}),
    ("MERGE INTO t x USING s ON x.id = s.id WHEN MATCHED THEN UPDATE SET a = 1 "
     "WHEN MATCHED AND x.a > 1 THEN DELETE", {"UPDATE WITHOUT WHERE"}),
    # A literal list of rows compared with the row: like WHERE id IN (1, 2).
    ("MERGE INTO t USING (VALUES (1), (2)) v(id) ON t.id = v.id WHEN MATCHED THEN DELETE",
     set()),
    ("MERGE INTO t USING (SELECT 1 AS id) v ON t.id = v.id WHEN MATCHED THEN UPDATE SET a = 1",
     set()),
    ("MERGE INTO t USING (VALUES ($1, $2)) v(id, a) ON t.id = v.id "
     "WHEN MATCHED THEN UPDATE SET a = v.a WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.a)",
     set()),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND t.status = 'old' THEN DELETE",
     set()),
    ("MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)", set()),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING", set()),
])
def test_merge(sql: str, expected: set[str]) -> None:
    assert merge_unbounded(statement(sql)) == expected
    assert kinds(sql) & {"UPDATE WITHOUT WHERE", "DELETE WITHOUT WHERE"} == expected


def test_merge_names_what_it_does() -> None:
    assert kinds("MERGE INTO t USING (VALUES (1)) v(id) ON t.id = v.id WHEN MATCHED THEN "
                 "UPDATE SET a = 1 WHEN NOT MATCHED THEN INSERT VALUES (1)") == {
        "MERGE", "UPDATE", "INSERT", "SELECT"}


def test_unbounded_write_inside_code_that_runs_later() -> None:
    body = kinds("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
                 "DELETE FROM t WHERE id IS NOT NULL; END $$")
    assert "DELETE WITHOUT WHERE" in body
    # A PL/pgSQL variable compared with a column looks at the row.
    body = kinds("CREATE FUNCTION f(p int) RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
                 "DELETE FROM t WHERE id = p; END $$")
    assert "DELETE WITHOUT WHERE" not in body


# --- fuzzing: whatever the condition, the answer is one of the four, and fast -------------

_ATOMS = ["id", "t.id", "u.id", "1", "NULL", "$1", "'a'", "true", "name", "now()", "flag"]
_OPS = ["=", "<>", "<", ">=", "IS DISTINCT FROM"]


@st.composite
def _conditions(draw: st.DrawFn, depth: int = 0) -> str:
    choice = draw(st.integers(0, 6 if depth < 3 else 2))
    if choice <= 1:
        return f"{draw(st.sampled_from(_ATOMS))} {draw(st.sampled_from(_OPS))} " \
               f"{draw(st.sampled_from(_ATOMS))}"
    if choice == 2:
        return f"{draw(st.sampled_from(_ATOMS))} IS {draw(st.sampled_from(['', 'NOT ']))}NULL"
    if choice == 3:
        return f"NOT ({draw(_conditions(depth + 1))})"
    if choice == 4:
        return f"({draw(_conditions(depth + 1))}) OR ({draw(_conditions(depth + 1))})"
    if choice == 5:
        return f"({draw(_conditions(depth + 1))}) AND ({draw(_conditions(depth + 1))})"
    return f"EXISTS (SELECT 1 FROM t s WHERE {draw(_conditions(depth + 1))})"


@settings(database=None, deadline=None, max_examples=300)
@given(_conditions())
def test_fuzz_conditions(condition: str) -> None:
    result = reach(f"USING u WHERE {condition}")
    assert isinstance(result, Reach)
    # NOT of a condition never turns "looks at the row" into "touches every row".
    negated = reach(f"USING u WHERE NOT ({condition})")
    if result == Reach.SOME:
        assert negated == Reach.SOME
