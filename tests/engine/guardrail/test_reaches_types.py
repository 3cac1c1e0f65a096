"""Issue 12: code reached without a call. A cast into a user's type runs its domain's CHECKs
or a ``CREATE CAST … WITH FUNCTION``, so it reaches code as ``SELECT f()`` does
(``Facts.reaches``); PostgreSQL's own types do not (``builtin_names.TYPES``)."""

from __future__ import annotations

import pytest

from engine.guardrail.classify import classify, classify_text
from engine.guardrail.rules import Match, Rule, judge_statement

INTO_USER_TYPES = [
    "SELECT 1::mydomain",
    "SELECT 'x'::mytype",
    "SELECT CAST(1 AS mytype)",
    "SELECT ARRAY[1]::mydomain[]",
    "SELECT mytype 'x'",  # a typed literal
    "SELECT ROW(1, 2)::mycomposite",
    "SELECT 'x'::public.text",  # another schema's, whatever its name
    'SELECT \'x\'::"Text"',  # quoted: not pg_catalog's text
    "SELECT 1::cardinal_number",  # information_schema's only with its schema
    "SELECT 'x'::pg_catalog.no_such_type",
    "SELECT x FROM t WHERE y = (SELECT 'x'::mydomain)",
    "UPDATE t SET a = b::mydomain WHERE id = 1",
    "INSERT INTO t VALUES ('x'::mydomain)",
    "ALTER TABLE t ADD COLUMN c mydomain",  # each row's NULL or DEFAULT meets its CHECKs
    "ALTER TABLE t ALTER COLUMN c TYPE mydomain",
    "ALTER TABLE t ALTER COLUMN c TYPE text USING c::mydomain",
    "ALTER DOMAIN mydomain VALIDATE CONSTRAINT c",
    "PREPARE p (mydomain) AS SELECT $1",  # each EXECUTE converts its arguments
    "EXPLAIN SELECT 'x'::mydomain",  # planning folds the constant cast
]
BUILT_IN = [
    "SELECT 1::int, 2::bigint, 3::smallint, 4::numeric(9, 2), 5::double precision",
    "SELECT 'x'::text, 'x'::varchar(3), 'x'::char(2), 'x'::\"char\", 'x'::name",
    "SELECT '2020-01-01'::date, now()::timestamptz, '1 day'::interval, 'x'::bytea",
    "SELECT timestamp '2020-01-01', interval '1 day', bit '101', json '{}', jsonb '{}'",
    "SELECT '{}'::int[], '{}'::text[][], 'x'::regclass, 'x'::pg_catalog.text",
    "SELECT 1::information_schema.cardinal_number, ROW(1)::record",
    "SELECT CAST(x AS uuid), x::inet, x::tsvector FROM t",
    "ALTER TABLE t ADD COLUMN c int, ALTER COLUMN d TYPE bigint",
    "PREPARE p (int, text) AS SELECT $1, $2",
    "CREATE TABLE t (c mydomain)",  # no row yet: nothing converted
]


@pytest.mark.parametrize("sql", INTO_USER_TYPES)
def test_a_cast_into_a_user_s_type_reaches_code(sql: str) -> None:
    assert classify(sql)[0].reaches


@pytest.mark.parametrize("sql", BUILT_IN)
def test_casts_into_postgresql_s_own_types_do_not(sql: str) -> None:
    assert not classify(sql)[0].reaches


def test_in_a_shadowed_session_an_unqualified_type_may_be_a_user_s() -> None:
    shadowed = classify_text("SELECT 'x'::text", shadowed=True)[0][0]
    assert shadowed.reaches
    # The parser writes int and varchar as pg_catalog's: still PostgreSQL's own.
    assert not classify_text("SELECT 1::int, 'x'::varchar", shadowed=True)[0][0].reaches


def test_a_cast_stored_for_later_is_not_opaque_but_read_where_it_runs() -> None:
    """A view or a default holding a cast into an enum (pg_dump writes them) is not held as
    code never read: where it runs, the catalog's copy is judged (``engine.pg.storedcode``)."""
    facts = classify("CREATE TABLE t (s status DEFAULT 'new'::status)")[0]
    assert "OPAQUE BODY" not in facts.kinds


def test_a_cast_is_counted_by_what_its_code_writes() -> None:
    rule = (Rule("big", "review", Match(rows_over=100)),)
    verdict = judge_statement(rule, classify("SELECT 1::mydomain")[0])
    assert verdict.rows_over == 100 and not verdict.tag_counts and verdict.calls_code
    held = judge_statement(rule, classify("PREPARE p (mydomain) AS SELECT $1")[0])
    assert held.action == "review" and held.rows_over is None  # cannot be counted: held
