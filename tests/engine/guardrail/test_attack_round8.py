"""Issue 13, the eighth outside attack: temporary objects made by other statement shapes or by
code at run time, types in the temporary schema, a search_path or a user's object that makes
PostgreSQL's own names a user's, and ALTER FUNCTION's other actions (STRICT: a CHECK function
returns NULL, which passes)."""

from __future__ import annotations

import pytest

from engine.guardrail.classify import classify
from engine.guardrail.guard import SessionGuard
from engine.guardrail.protection import OFF

# The target's catalog has none of the names asked: what is off is off without asking.
_NOTHING: dict[str, bool] = {}


@pytest.mark.parametrize(("sql", "name"), [
    ("SELECT * INTO TEMP audit_log FROM orders", "audit_log"),
    ("SELECT 1 AS at INTO TEMPORARY TABLE audit_log", "audit_log"),
    ("SELECT 1 AS at INTO pg_temp.audit_log", "audit_log"),
    ("SELECT 1 AS at INTO TEMP audit_log UNION SELECT 2", "audit_log"),
    ("SELECT 1 AS at INTO TEMP audit_log UNION SELECT 2 EXCEPT SELECT 3", "audit_log"),
    ("WITH w AS (SELECT 1 AS at) SELECT at INTO TEMP audit_log FROM w", "audit_log"),
    ("EXPLAIN ANALYZE CREATE TEMP TABLE managers AS SELECT 'x'::text AS name", "managers"),
    ("EXPLAIN (ANALYZE) SELECT 'x'::text AS name INTO TEMP managers", "managers"),
    ("EXPLAIN CREATE TEMPORARY TABLE managers AS SELECT 'x'::text AS name", "managers"),
])
def test_every_shape_of_a_temporary_relation_is_asked_of_the_catalog(
        shipped: SessionGuard, sql: str, name: str) -> None:
    assert f"rel:{name}" in classify(sql)[0].replaced
    shipped.function_exists = {f"rel:{name}": True}.get
    assert shipped.judge(sql).action in ("review", "block")


@pytest.mark.parametrize("sql", [
    "CREATE TEMP SEQUENCE audit_seq",
    "CREATE SEQUENCE pg_temp.order_ids",
    "SELECT * INTO TEMP pg_settings FROM pg_settings",
    "CREATE TEMP VIEW pg_roles AS SELECT 'x'::name AS rolname",
    "CREATE TEMP TABLE pg_stat_activity (pid int)",
    "CREATE DOMAIN pg_temp.order_amount AS numeric",
    "CREATE TYPE pg_temp.order_status AS ENUM ('open', 'closed')",
    "CREATE TYPE pg_temp.pair AS (a int, b int)",
    "CREATE TYPE pg_temp.span AS RANGE (subtype = int4)",
    "CREATE TYPE pg_temp.shell",
    "CREATE TYPE pg_temp_3.order_status AS ENUM ('open')",
])
def test_temporary_objects_the_catalog_lookup_cannot_judge_are_off(
        shipped: SessionGuard, sql: str) -> None:
    shipped.function_exists = _NOTHING.get
    assert OFF in classify(sql)[0].kinds
    assert shipped.judge(sql).action in ("review", "block")


@pytest.mark.parametrize("sql", [
    "CREATE FUNCTION mk() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
    "CREATE TEMP TABLE audit_log (at timestamptz); END $$",
    "CREATE FUNCTION mk() RETURNS void LANGUAGE sql AS $$ "
    "CREATE TEMP VIEW managers AS SELECT 'x'::text AS name $$",
    "CREATE FUNCTION mk() RETURNS void LANGUAGE sql AS $$ SELECT 1 AS at INTO TEMP audit_log $$",
    "CREATE FUNCTION mk() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
    "CREATE TEMP SEQUENCE audit_seq; END $$",
    "CREATE PROCEDURE mk() LANGUAGE sql BEGIN ATOMIC SELECT 1; END; "
    "CREATE FUNCTION mk2() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
    "CREATE TABLE pg_temp.audit_log (at timestamptz); END $$",
    "DO $$ BEGIN CREATE TEMP TABLE audit_log (at timestamptz); END $$",
    "DO $$ BEGIN CREATE DOMAIN pg_temp.order_amount AS numeric; END $$",
    "CREATE FUNCTION t_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "CREATE TEMP TABLE IF NOT EXISTS audit_log (at timestamptz); RETURN NULL; END $$",
    "CREATE FUNCTION mk() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
    "CREATE TYPE pg_temp.order_status AS ENUM ('open'); END $$",
])
def test_code_that_makes_temporary_objects_when_it_runs_is_off(
        shipped: SessionGuard, sql: str) -> None:
    shipped.function_exists = _NOTHING.get
    assert OFF in classify(sql)[-1].kinds
    assert shipped.judge(sql).action in ("review", "block")


@pytest.mark.parametrize("sql", [
    "SET search_path = public, pg_catalog",
    "SET search_path TO attic, pg_catalog, public",
    "SET LOCAL search_path = public, pg_catalog",
    "SET SESSION search_path = '$user', public, pg_catalog",
    "SELECT set_config('search_path', 'public, pg_catalog', false)",
    "SELECT set_config('search_path', 'public,pg_catalog', true)",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = public, pg_catalog "
    "AS $$ SELECT 1 $$",
    "ALTER ROLE alice SET search_path = public, pg_catalog",
])
def test_a_search_path_ahead_of_pg_catalog_is_off(shipped: SessionGuard, sql: str) -> None:
    shipped.function_exists = _NOTHING.get
    assert OFF in classify(sql)[0].kinds
    assert shipped.judge(sql).action in ("review", "block")


@pytest.mark.parametrize("sql", [
    "SET search_path = public",
    "SET search_path = pg_catalog, public",
])
def test_a_search_path_after_pg_catalog_is_not(sql: str) -> None:
    assert OFF not in classify(sql)[0].kinds


@pytest.mark.parametrize("sql", [
    "CREATE OPERATOR public.<= (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = le_any)",
    "CREATE OPERATOR = (LEFTARG = text, RIGHTARG = text, FUNCTION = eq_any)",
    "CREATE OPERATOR attic.~~ (LEFTARG = text, RIGHTARG = text, FUNCTION = like_any)",
    "CREATE TEXT SEARCH CONFIGURATION public.english (COPY = pg_catalog.english)",
    "CREATE TEXT SEARCH CONFIGURATION simple (COPY = pg_catalog.simple)",
    "CREATE TEXT SEARCH DICTIONARY public.english_stem (TEMPLATE = snowball, "
    "LANGUAGE = english)",
    'CREATE COLLATION public."C" FROM pg_catalog."C"',
    "CREATE CONVERSION public.latin1_to_utf8 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8",
    "CREATE DEFAULT CONVERSION mine FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8",
    "CREATE AGGREGATE public.sum(bigint) (SFUNC = int8pl, STYPE = bigint)",
    "CREATE DOMAIN public.int4 AS integer CHECK (VALUE > 0)",
    "CREATE TYPE public.text AS ENUM ('a')",
    "CREATE TYPE attic.date AS (d int)",
    "CREATE TYPE public.int8range AS RANGE (subtype = int8)",
    "CREATE TYPE public.numeric",
])
def test_a_user_object_named_like_postgresqls_own_is_off(
        shipped: SessionGuard, sql: str) -> None:
    shipped.function_exists = _NOTHING.get
    assert OFF in classify(sql)[0].kinds
    assert shipped.judge(sql).action in ("review", "block")


@pytest.mark.parametrize("sql", [
    "CREATE OPERATOR public.<=> (LEFTARG = int, RIGHTARG = int, FUNCTION = f)",
    "CREATE TEXT SEARCH CONFIGURATION public.shop_words (COPY = pg_catalog.english)",
    "CREATE DOMAIN public.order_amount AS numeric",
    "CREATE TYPE mood AS ENUM ('sad', 'ok')",
    "CREATE AGGREGATE public.my_sum(bigint) (SFUNC = int8pl, STYPE = bigint)",
])
def test_user_objects_of_new_names_are_not(sql: str) -> None:
    assert OFF not in classify(sql)[0].kinds


@pytest.mark.parametrize("action", [
    "STRICT", "RETURNS NULL ON NULL INPUT", "CALLED ON NULL INPUT", "IMMUTABLE", "STABLE",
    "VOLATILE", "LEAKPROOF", "NOT LEAKPROOF", "PARALLEL SAFE", "PARALLEL UNSAFE",
    "COST 1000", "ROWS 5", "SUPPORT my_support",
])
@pytest.mark.parametrize("what", ["FUNCTION check_amount(numeric)", "PROCEDURE p()",
                                  "ROUTINE r"])
def test_every_alter_function_action_is_off(shipped: SessionGuard, what: str,
                                            action: str) -> None:
    sql = f"ALTER {what} {action}"
    assert OFF in classify(sql)[0].kinds
    assert shipped.judge(sql).action in ("review", "block")


@pytest.mark.parametrize("sql", [
    "CREATE TEMP TABLE order_amount (x numeric)",
    "SELECT 1::numeric AS x INTO TEMP order_amount",
    "CREATE TEMP VIEW order_amount AS SELECT 1::numeric AS x",
])
def test_a_temporary_relation_named_like_a_type_turns_protection_off(
        shipped: SessionGuard, sql: str) -> None:
    """Its row type, in pg_temp, is found ahead of the domain ``order_amount`` that a DBA's
    PL/pgSQL declaration or cast names."""
    assert "type:order_amount" in classify(sql)[0].replaced
    shipped.function_exists = {"rel:order_amount": False, "type:order_amount": True}.get
    assert shipped.judge(sql).action in ("review", "block")
    shipped.function_exists = {"rel:order_amount": False, "type:order_amount": False}.get
    assert shipped.judge(sql).action == "allow"


@pytest.mark.parametrize("sql", [
    "ALTER FUNCTION check_amount(numeric) OWNER TO bob",
    "ALTER PROCEDURE p() OWNER TO CURRENT_USER",
    "ALTER ROUTINE r OWNER TO bob",
    "ALTER AGGREGATE a(int) OWNER TO bob",
    "ALTER FUNCTION check_amount(numeric) DEPENDS ON EXTENSION hstore",
    "ALTER FUNCTION check_amount(numeric) NO DEPENDS ON EXTENSION hstore",
])
def test_other_alter_function_statements_are_off(shipped: SessionGuard, sql: str) -> None:
    assert OFF in classify(sql)[0].kinds
    assert shipped.judge(sql).action in ("review", "block")


def test_an_owner_change_of_other_objects_is_not() -> None:
    assert OFF not in classify("ALTER TYPE mood OWNER TO bob")[0].kinds
