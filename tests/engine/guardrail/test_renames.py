"""Destruction not spelled DROP, whatever keyword spells it (issue 12, finding 2: ``ALTER INDEX
v3 RENAME TO x`` renamed a table). The gateway cannot see which kind of relation a name is, and
PostgreSQL lets ALTER TABLE act on any relation and ALTER INDEX rename any relation: every
relation rename or move carries the table kinds. Renaming a schema moves every table in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.guardrail.classify import classify
from engine.guardrail.guard import SessionGuard

REPO = Path(__file__).resolve().parents[3]


RELATION_RENAMES = [
    "ALTER INDEX v3 RENAME TO x",
    "ALTER INDEX IF EXISTS public.v3 RENAME TO x",
    "ALTER VIEW v3 RENAME TO x",
    "ALTER SEQUENCE v3 RENAME TO x",
    "ALTER MATERIALIZED VIEW v3 RENAME TO x",
    "ALTER FOREIGN TABLE v3 RENAME TO x",
    "ALTER TABLE v3 RENAME TO x",
    "alter index v3 rename to x",
]
RELATION_MOVES = [
    "ALTER VIEW v3 SET SCHEMA archive",
    "ALTER SEQUENCE v3 SET SCHEMA archive",
    "ALTER MATERIALIZED VIEW v3 SET SCHEMA archive",
    "ALTER FOREIGN TABLE v3 SET SCHEMA archive",
    "ALTER TABLE IF EXISTS v3 SET SCHEMA archive",
]
COLUMN_RENAMES = [
    "ALTER VIEW v3 RENAME COLUMN a TO b",
    "ALTER MATERIALIZED VIEW v3 RENAME COLUMN a TO b",
    "ALTER FOREIGN TABLE v3 RENAME a TO b",
    "ALTER TABLE v3 RENAME a TO b",
]


@pytest.mark.parametrize("sql", RELATION_RENAMES)
def test_a_relation_rename_is_a_table_rename(shipped: SessionGuard, sql: str) -> None:
    [facts] = classify(sql)
    assert {"ALTER TABLE", "ALTER TABLE RENAME", "RENAME TABLE"} <= facts.kinds
    assert facts.writes
    assert shipped.judge(sql).rule == "no-drop-column-or-rename-table"


@pytest.mark.parametrize("sql", RELATION_MOVES)
def test_a_relation_move_is_a_table_move(shipped: SessionGuard, sql: str) -> None:
    [facts] = classify(sql)
    assert {"ALTER TABLE", "ALTER TABLE SET SCHEMA"} <= facts.kinds
    assert shipped.judge(sql).rule == "no-drop-column-or-rename-table"


@pytest.mark.parametrize("sql", COLUMN_RENAMES)
def test_a_column_rename_of_any_relation_is_a_table_column_rename(sql: str) -> None:
    assert "ALTER TABLE RENAME COLUMN" in classify(sql)[0].kinds


@pytest.mark.parametrize("sql", [
    "ALTER SCHEMA public RENAME TO p2",
    'alter schema "public" rename to p2',
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS "
    "$$BEGIN ALTER SCHEMA public RENAME TO p2; END$$",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS "
    "$$BEGIN EXECUTE 'ALTER INDEX v3 RENAME TO x'; END$$",
])
def test_renaming_a_schema_or_hiding_a_rename_in_a_body_is_blocked(
        shipped: SessionGuard, sql: str) -> None:
    assert shipped.judge(sql).rule == "no-drop-column-or-rename-table"


@pytest.mark.parametrize("sql", [
    "ALTER FUNCTION f() RENAME TO g",
    "ALTER TYPE t RENAME VALUE 'a' TO 'b'",
    "ALTER INDEX i SET TABLESPACE t",
])
def test_other_renames_are_not_table_renames(sql: str) -> None:
    assert "ALTER TABLE RENAME" not in classify(sql)[0].kinds
