"""Issue 12's outside attacker, through the real gateway with the example policy and a real
PostgreSQL: each bypass class is refused or held (and denied), and its effect is checked on the
target directly — the table and the role's password are untouched, the relation keeps its name,
no aggregate, trigger or function was created, the victim's rows are all there.

1. a body the server reads differently from the gateway (standard_conforming_strings turned
   off inside a call, then a body with a backslash in a string compiled under it);
2. destruction not spelled DROP (``ALTER INDEX t RENAME`` of a table, ``ALTER SCHEMA RENAME``);
3. a function bound without a call (the old aggregate syntax's ``SFUNC1``);
4. a trigger judged by a body that does not exist (a failed ``CREATE FUNCTION`` whose body the
   gateway remembered).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import approved, start_guarded
from tests.integration.test_guardrail_procedural import held_and_denied, on_target, refused

pytestmark = pytest.mark.integration

SETUP = """
SET ROLE gw_scram;
DROP TABLE IF EXISTS gw12b_v3, gw12b_v4, gw12b_v5 CASCADE;
DROP FUNCTION IF EXISTS gw12b_b(), gw12b_tf() CASCADE;
DROP AGGREGATE IF EXISTS gw12b_mk(bytea);
CREATE TABLE gw12b_v3 (id int PRIMARY KEY);
CREATE TABLE gw12b_v4 (id int);
CREATE TABLE gw12b_v5 (id int);
INSERT INTO gw12b_v5 SELECT generate_series(1, 10);
-- What the attacker finds already there (created behind the gateway's back): a function
-- whose body hides statements behind a backslash, and a trigger function that wipes v5.
CREATE FUNCTION gw12b_b() RETURNS void LANGUAGE plpgsql AS $b$
BEGIN PERFORM 'a\\', '\\n; DROP TABLE gw12b_v5; -- '; END $b$;
CREATE FUNCTION public.gw12b_tf() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN DELETE FROM gw12b_v5; RETURN NEW; END $$;
RESET ROLE;
"""
TEARDOWN = """
DROP TABLE IF EXISTS gw12b_v3, gw12b_v4, gw12b_v5, gw12b_x CASCADE;
DROP FUNCTION IF EXISTS gw12b_a(), gw12b_b(), gw12b_tf() CASCADE;
DROP AGGREGATE IF EXISTS gw12b_mk(bytea);
"""


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("guarded12b"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(TEARDOWN, dbname="shop")


def state(target: Target) -> tuple[object, ...]:
    return (
        on_target(target, "SELECT count(*) FROM pg_class WHERE relname IN "
                          "('gw12b_v3', 'gw12b_v4', 'gw12b_v5') AND relkind = 'r' "
                          "AND relnamespace = 'public'::regnamespace"),
        on_target(target, "SELECT count(*) FROM gw12b_v5"),
        on_target(target, "SELECT count(*) FROM pg_namespace WHERE nspname = 'public'"),
        on_target(target, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'gw12b%'"),
        on_target(target, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'gw12b%'"),
        on_target(target, "SELECT count(*) FROM pg_settings WHERE name = "
                          "'standard_conforming_strings' AND reset_val = 'on'"),
        on_target(target, "SELECT count(*) FROM pg_db_role_setting"),
    )


BEFORE = (3, 10, 1, 2, 0, 1, 0)


def still_logs_in(target: Target) -> bool:
    with psycopg.connect(target.direct()) as conn:  # the password was not changed
        return conn.execute("SELECT 1").fetchone() == (1,)


# --- 1. a body read differently by PostgreSQL than by the gateway -----------------------------

READING = [
    # The attack: a turns standard_conforming_strings off for the call, then calls b.
    "CREATE FUNCTION gw12b_a() RETURNS void LANGUAGE plpgsql AS $$BEGIN "
    "SET LOCAL standard_conforming_strings = off; PERFORM gw12b_b(); END$$",
    "CREATE FUNCTION gw12b_a() RETURNS void LANGUAGE plpgsql AS $$BEGIN "
    "PERFORM set_config('standard_conforming_strings', 'off', true); PERFORM gw12b_b(); END$$",
    "CREATE FUNCTION gw12b_a() RETURNS void LANGUAGE sql "
    "SET standard_conforming_strings = off AS 'SELECT gw12b_b()'",
    "CREATE FUNCTION gw12b_a() RETURNS void LANGUAGE plpgsql AS $$BEGIN "
    "EXECUTE 'SET LOCAL standard_conforming_strings = off'; PERFORM gw12b_b(); END$$",
    "ALTER FUNCTION gw12b_b() SET standard_conforming_strings = off",
    "ALTER ROLE CURRENT_USER SET standard_conforming_strings = off",
    "ALTER DATABASE shop SET standard_conforming_strings = off",
    "DO $$BEGIN PERFORM set_config('standard_conforming_strings', 'off', true); "
    "PERFORM gw12b_b(); END$$",
]


@pytest.mark.parametrize("sql", READING, ids=[s[:60] for s in READING])
def test_settings_that_change_how_sql_is_read_are_refused_wherever_changed(
        guarded: Gateway, sql: str) -> None:
    message = refused(guarded, sql)
    assert "gateway-sql-reading" in message or "no-do-blocks" in message
    assert state(guarded.target) == BEFORE


# A body the server would read two ways: with the setting on, a harmless PERFORM of strings;
# with it off, an ALTER ROLE and a DROP. It is held as opaque code, and denied.
TWO_WAYS = [
    "CREATE FUNCTION gw12b_x() RETURNS void LANGUAGE plpgsql AS $b$BEGIN "
    "PERFORM 'a\\', '\\n; ALTER ROLE CURRENT_USER PASSWORD ''owned''; DROP TABLE gw12b_v5; "
    "-- '; END$b$",
    "CREATE FUNCTION gw12b_x() RETURNS void LANGUAGE plpgsql AS $b$BEGIN "
    "RAISE NOTICE 'a\\', '; DROP TABLE gw12b_v5; --'; END$b$",
    "CREATE FUNCTION gw12b_x() RETURNS void LANGUAGE sql AS $b$SELECT 'a\\', $$; "
    "DROP TABLE gw12b_v5; --'$b$",
]


@pytest.mark.parametrize("sql", TWO_WAYS, ids=[s[60:110] for s in TWO_WAYS])
def test_a_body_that_reads_two_ways_is_held_and_when_denied_is_not_created(
        guarded: Gateway, sql: str) -> None:
    request = held_and_denied(guarded, sql)
    assert request["rule"] == "review-opaque-code"
    assert state(guarded.target) == BEFORE
    assert still_logs_in(guarded.target)


# --- 2. destruction not spelled DROP -----------------------------------------------------------

RENAMES = [
    "ALTER INDEX gw12b_v3 RENAME TO gw12b_gone",
    "ALTER INDEX IF EXISTS public.gw12b_v3 RENAME TO gw12b_gone",
    "ALTER TABLE gw12b_v3 RENAME TO gw12b_gone",
    "ALTER SCHEMA public RENAME TO gw12b_p2",
    "CREATE FUNCTION gw12b_x() RETURNS void LANGUAGE plpgsql AS "
    "$$BEGIN ALTER INDEX gw12b_v3 RENAME TO gw12b_gone; END$$",
]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize("sql", RENAMES, ids=[s[:50] for s in RENAMES])
def test_renames_of_tables_and_schemas_are_refused(guarded: Gateway, protocol: str,
                                                   sql: str) -> None:
    message = refused(guarded, sql, protocol)
    assert 'statement blocked by rule "no-drop-column-or-rename-table"' in message
    assert state(guarded.target) == BEFORE


# --- 3. a function bound without a call --------------------------------------------------------

AGGREGATES = [
    "CREATE AGGREGATE gw12b_mk(bytea) (SFUNC1 = lo_from_bytea, STYPE1 = oid, INITCOND1 = '0')",
    "CREATE AGGREGATE gw12b_mk (BASETYPE = bytea, SFUNC1 = lo_from_bytea, STYPE1 = oid, "
    "INITCOND1 = '0')",
    'CREATE AGGREGATE gw12b_mk(bytea) ("sfunc1" = pg_catalog.lo_from_bytea, STYPE = oid, '
    "INITCOND = '0')",
]


@pytest.mark.parametrize("sql", AGGREGATES, ids=[s[:60] for s in AGGREGATES])
def test_an_aggregate_bound_to_a_blocked_function_is_refused(guarded: Gateway,
                                                             sql: str) -> None:
    message = refused(guarded, sql)
    assert 'statement blocked by rule "no-server-file-functions"' in message
    assert on_target(guarded.target, "SELECT count(*) FROM pg_aggregate a JOIN pg_proc p "
                                     "ON p.oid = a.aggfnoid WHERE p.proname = 'gw12b_mk'") == 0
    assert on_target(guarded.target, "SELECT count(*) FROM pg_largeobject_metadata") == 0


# --- 4. a trigger judged by a body that does not exist ----------------------------------------

HARMLESS_TF = ("CREATE FUNCTION public.gw12b_tf() RETURNS trigger LANGUAGE plpgsql AS "
               "$$BEGIN RETURN NEW; END$$")
TRIGGER = ("CREATE TRIGGER gw12b_t AFTER INSERT ON gw12b_v4 FOR EACH ROW "
           "EXECUTE FUNCTION public.gw12b_tf()")


def test_a_trigger_after_a_failed_create_function_is_held(guarded: Gateway) -> None:
    # The attack: the CREATE fails ("already exists"), its harmless body must mean nothing.
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        # A CREATE of a name the target has is held (a new overload may be the one that
        # runs); approved, the target refuses it.
        _, failed = approved(guarded, lambda: conn.execute(HARMLESS_TF))
        assert isinstance(failed, psycopg.errors.DuplicateFunction), failed
    request = held_and_denied(guarded, TRIGGER)
    assert request["rule"] == "review-opaque-code"
    # Unqualified, the same.
    held_and_denied(guarded, TRIGGER.replace("public.gw12b_tf", "gw12b_tf"))
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO gw12b_v4 VALUES (1)")
        conn.execute("DELETE FROM gw12b_v4 WHERE id = 1")
    assert state(guarded.target) == BEFORE  # v5 is whole, no trigger


def test_in_one_text_a_failed_create_function_stops_the_trigger(guarded: Gateway) -> None:
    # The same text: the gateway reads the harmless body; the server stops at the failed
    # CREATE and never creates the trigger, so allowing it is sound.
    with psycopg.connect(guarded.dsn(), autocommit=True,
                         cursor_factory=psycopg.ClientCursor) as conn:
        # (Held first, as a CREATE of a name the target has: approved, the server stops.)
        _, failed = approved(guarded, lambda: conn.execute(f"{HARMLESS_TF}; {TRIGGER}"))
        assert isinstance(failed, psycopg.errors.DuplicateFunction), failed
        conn.execute("INSERT INTO gw12b_v4 VALUES (1)")
        conn.execute("DELETE FROM gw12b_v4 WHERE id = 1")
    assert state(guarded.target) == BEFORE


def test_in_one_text_a_replaced_trigger_function_is_held(guarded: Gateway) -> None:
    # CREATE OR REPLACE of a trigger function, then the trigger, in one text: replacing a
    # trigger function changes what every trigger calling it does (a guard made a no-op, as
    # the fifth outside attack did), so it is held whatever the new body; denied, nothing of
    # it runs (v5 keeps its rows, no trigger).
    sql = f"{HARMLESS_TF.replace('CREATE FUNCTION', 'CREATE OR REPLACE FUNCTION')}; {TRIGGER}"
    try:
        request = held_and_denied(guarded, sql)
        assert request["rule"] == "review-destructive-alter-table"
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            conn.execute("INSERT INTO gw12b_v4 VALUES (1)")
        assert on_target(guarded.target, "SELECT count(*) FROM gw12b_v5") == 10
        assert on_target(guarded.target, "SELECT count(*) FROM pg_trigger "
                                         "WHERE tgname = 'gw12b_t'") == 0
    finally:
        guarded.target.cluster.sql(
            "DROP TRIGGER IF EXISTS gw12b_t ON gw12b_v4; TRUNCATE gw12b_v4; "
            "CREATE OR REPLACE FUNCTION public.gw12b_tf() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN DELETE FROM gw12b_v5; RETURN NEW; END $$; "
            "ALTER FUNCTION public.gw12b_tf() OWNER TO gw_scram;", dbname="shop")
    assert state(guarded.target) == BEFORE
