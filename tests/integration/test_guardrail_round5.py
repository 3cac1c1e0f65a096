"""Issue 12, the fifth outside attack, against a real PostgreSQL 15 through the example policy:

- a function named like SQL/JSON syntax of a newer grammar (``json_scalar``) is a plain call on
  15, counted by what it writes;
- code that changes the session's search_path where the gateway does not read it (a view or a
  function calling set_config, an UPDATE through a view over pg_settings) no longer lets a
  user's ``pi()`` pass for PostgreSQL's: the search_path is read back after every count;
- a function that runs SQL text cannot be bound to an operator.
Each attack's effect is checked on the target.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import denied, start_guarded

pytestmark = pytest.mark.integration

SETUP = """
SET ROLE gw_scram;
DROP TABLE IF EXISTS gw5_victim CASCADE;
CREATE TABLE gw5_victim (id int);
INSERT INTO gw5_victim SELECT generate_series(1, 300);
CREATE OR REPLACE FUNCTION public.json_scalar(x int) RETURNS int LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw5_victim WHERE id > 0; RETURN x; END$$;
CREATE OR REPLACE FUNCTION public.pi() RETURNS float8 LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw5_victim WHERE id > 0; RETURN 3; END$$;
CREATE OR REPLACE VIEW gw5_shadow AS
  SELECT set_config('search_path', 'public, pg_catalog', false) AS path;
CREATE OR REPLACE FUNCTION gw5_setter() RETURNS text LANGUAGE sql AS
  $$SELECT set_config('search_path', 'public, pg_catalog', false)$$;
CREATE OR REPLACE VIEW gw5_settings AS SELECT name, setting FROM pg_settings;
RESET ROLE;
"""
CLEANUP = ("DROP TABLE IF EXISTS gw5_victim CASCADE; DROP VIEW IF EXISTS gw5_shadow, "
           "gw5_settings; DROP FUNCTION IF EXISTS public.json_scalar(int), public.pi(), "
           "gw5_setter();")


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("round5"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def intact(target: Target) -> int:
    with psycopg.connect(target.superuser(), dbname="shop", autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FROM gw5_victim WHERE id > 0").fetchone()
        return int(row[0]) if row else -1


@pytest.mark.parametrize("connection", ["shop", "shop_masked"])
def test_a_function_named_like_newer_syntax_is_counted(guarded: Gateway,
                                                       connection: str) -> None:
    def work() -> None:
        with psycopg.connect(guarded.dsn(connection), autocommit=True) as conn:
            conn.execute("SELECT json_scalar(0)")

    request = denied(guarded, work)
    assert "writes 300 rows" in str(request["statement"])
    assert intact(guarded.target) == 300


SHADOWING = [
    pytest.param("SELECT * FROM gw5_shadow", id="view-calling-set_config"),
    pytest.param("SELECT gw5_setter()", id="function-calling-set_config"),
    pytest.param("UPDATE gw5_settings SET setting = 'public, pg_catalog' "
                 "WHERE name = 'search_path'", id="update-through-a-view-over-pg_settings"),
]


@pytest.mark.parametrize("connection", ["shop", "shop_masked"])
@pytest.mark.parametrize("shadow", SHADOWING)
def test_a_search_path_changed_by_code_is_read_back(guarded: Gateway, shadow: str,
                                                    connection: str) -> None:
    def work() -> None:
        with psycopg.connect(guarded.dsn(connection), autocommit=True) as conn:
            conn.execute(shadow)
            assert conn.execute("SHOW search_path").fetchone() == ("public, pg_catalog",)
            conn.execute("SELECT pi()")  # now the user's, which deletes every row

    request = denied(guarded, work)
    assert "writes 300 rows" in str(request["statement"])
    assert intact(guarded.target) == 300


def test_a_function_that_runs_sql_text_cannot_be_bound_to_an_operator(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CREATE OPERATOR public.##### (RIGHTARG = text, FUNCTION = ts_stat)")
    with psycopg.connect(guarded.target.superuser(), dbname="shop", autocommit=True) as admin:
        assert admin.execute("SELECT count(*) FROM pg_operator WHERE oprname = '#####'"
                             ).fetchone() == (0,)


@pytest.mark.parametrize("connection", ["shop", "shop_masked"])
def test_replacing_a_function_a_check_calls_is_held_a_new_one_is_not(
        guarded: Gateway, connection: str) -> None:
    """Sixth outside attack: ``CREATE OR REPLACE FUNCTION public.positive(int) … SELECT true``
    turned off the CHECK that called it. A function that exists on the target may be what a
    policy, a CHECK or a default calls: replacing it is DISABLE PROTECTION (reviewed); a
    function that does not exist yet (a migration's first run) is created as before."""
    target = guarded.target
    target.cluster.sql(
        "SET ROLE gw_scram; CREATE OR REPLACE FUNCTION public.gw5_positive(x int) RETURNS bool "
        "LANGUAGE sql AS 'SELECT x > 0'; CREATE TABLE IF NOT EXISTS gw5_ledger "
        "(amount int CHECK (public.gw5_positive(amount))); RESET ROLE;", dbname="shop")
    replace = ("CREATE OR REPLACE FUNCTION public.gw5_positive(x int) RETURNS bool "
               "LANGUAGE sql AS 'SELECT true'")
    fresh = f"gw5_fresh_{connection}"
    try:
        def work() -> None:
            with psycopg.connect(guarded.dsn(connection), autocommit=True) as conn:
                conn.execute(replace)

        request = denied(guarded, work)
        assert request["rule"] == "review-destructive-alter-table"
        with psycopg.connect(guarded.dsn(connection), autocommit=True) as conn:
            with pytest.raises(errors.CheckViolation):
                conn.execute("INSERT INTO gw5_ledger VALUES (-5)")  # the CHECK still holds
            conn.execute(f"CREATE OR REPLACE FUNCTION public.{fresh}() RETURNS int "
                         "LANGUAGE sql AS 'SELECT 1'")  # new: not held
            assert conn.execute(f"SELECT public.{fresh}()").fetchone() == (1,)
    finally:
        target.cluster.sql(f"DROP TABLE IF EXISTS gw5_ledger; DROP FUNCTION IF EXISTS "
                           f"public.gw5_positive(int), public.{fresh}()", dbname="shop")
