"""Issue 13, the eighth outside attack, through the gateway with the shipped rules: a DBA's
protection (a permit check a trigger makes) stepped around by a temporary table made some
other way (SELECT INTO, inside EXPLAIN ANALYZE, by a function when it runs), a
temporary sequence or type, or a search_path and an operator that make PostgreSQL's own names
a user's. Each is held for review now; the protection still holds after the denial."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import denied, start_guarded

pytestmark = pytest.mark.integration

SETUP = """
DROP TABLE IF EXISTS gw13r8_orders, gw13r8_permits CASCADE;
CREATE TABLE gw13r8_orders (id int PRIMARY KEY, status text);
INSERT INTO gw13r8_orders SELECT g, 'paid' FROM generate_series(1, 10) g;
CREATE TABLE gw13r8_permits (order_id int);
CREATE OR REPLACE FUNCTION gw13r8_guard() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF NOT EXISTS (SELECT 1 FROM gw13r8_permits WHERE order_id = OLD.id)
       OR OLD.id <= 1000 THEN
      RAISE EXCEPTION 'needs a permit';
    END IF;
    RETURN OLD;
  END $$;
CREATE TRIGGER gw13r8_guard BEFORE DELETE ON gw13r8_orders FOR EACH ROW
  EXECUTE FUNCTION gw13r8_guard();
GRANT ALL ON gw13r8_orders, gw13r8_permits TO PUBLIC;
DROP DOMAIN IF EXISTS gw13r8_amount;
CREATE DOMAIN gw13r8_amount AS numeric CHECK (VALUE > 0);
"""
CLEANUP = """DROP TABLE IF EXISTS gw13r8_orders, gw13r8_permits CASCADE;
DROP FUNCTION IF EXISTS gw13r8_guard(), gw13r8_mk() CASCADE;
DROP OPERATOR IF EXISTS public.<= (integer, integer);
DROP DOMAIN IF EXISTS gw13r8_amount;"""


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("protect13r8"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def orders(target: Target) -> int:
    with psycopg.connect(target.superuser(), dbname="shop") as admin:
        row = admin.execute("SELECT count(*) FROM gw13r8_orders").fetchone()
        return int(row[0]) if row else -1


@pytest.mark.parametrize("sql", [
    # 1. a temporary table of the permits table's name, by other statement shapes
    "SELECT g AS order_id INTO TEMP gw13r8_permits FROM generate_series(1, 10) g",
    "EXPLAIN ANALYZE CREATE TEMP TABLE gw13r8_permits AS SELECT 1 AS order_id",
    "CREATE TEMP SEQUENCE gw13r8_seq",
    "CREATE DOMAIN pg_temp.gw13r8_amount AS numeric",
    # a temporary table's row type, found ahead of the DBA's domain of its name
    "CREATE TEMP TABLE gw13r8_amount (x numeric)",
    # 2. code that makes one when it runs
    "CREATE FUNCTION gw13r8_mk() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
    "CREATE TEMP TABLE gw13r8_permits AS SELECT 1 AS order_id; END $$",
    "CREATE FUNCTION gw13r8_mk() RETURNS void LANGUAGE sql AS "
    "$$ SELECT 1 AS order_id INTO TEMP gw13r8_permits $$",
    # (a DO block that does so is blocked by the shipped rules as any DO block is)
    # 4. the DBA's operators (<=) made a user's
    "SET search_path = public, pg_catalog",
    "SELECT set_config('search_path', 'public, pg_catalog', false)",
    "CREATE OPERATOR public.<= (LEFTARG = integer, RIGHTARG = integer, "
    "FUNCTION = pg_catalog.int4ne)",
])
def test_protection_stepped_around_is_held(guarded: Gateway, sql: str) -> None:
    def work() -> None:
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    request = denied(guarded, work)
    assert request["rule"] == "review-destructive-alter-table", request
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("DELETE FROM gw13r8_orders WHERE id = 1")
    assert orders(guarded.target) == 10


def test_a_temporary_table_of_a_new_name_is_not(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("SELECT 1 AS x INTO TEMP gw13r8_scratch")
        assert conn.execute("SELECT count(*) FROM gw13r8_scratch").fetchone() == (1,)


def test_a_search_path_ahead_of_pg_catalog_is_refused_at_login(guarded: Gateway) -> None:
    """A startup parameter cannot be held for review as its SET is: the login is refused."""
    from engine.pg import codec
    from tests.integration.wire import Wire, first_error

    for path, refused in (("public, pg_catalog", True), ("public", False)):
        wire = Wire(guarded.port())  # libpq cannot send it; a hand-made client can
        try:
            wire.send(codec.startup_message({"user": "alice", "database": "shop",
                                             "search_path": path}))
            tag, _ = wire.recv() or (0, b"")
            assert tag == ord("R")
            wire.send(codec.password_message(guarded.tokens["alice"].encode() + b"\x00"))
            if refused:
                assert "ahead of pg_catalog" in first_error(wire)["M"]
            else:
                wire.until(b"Z")
                assert not [m for m in wire.query("SELECT 1") if m[0] == ord("E")]
        finally:
            wire.close()




def test_a_role_default_search_path_ahead_of_pg_catalog_is_seen_at_login(
        guarded: Gateway) -> None:
    """PostgreSQL does not report a role's default search_path (``ALTER ROLE … SET``): the
    gateway reads it at login. One ahead of
    pg_catalog makes an unqualified built-in name a possible user's: here a DBA's
    ``public.pi()``, made after the gateway last looked at the name, writes 300 rows when
    ``pi()`` is called; the call is counted and held."""
    admin = guarded.target.superuser()
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pi()")  # the gateway knows pi as PostgreSQL's own
    with psycopg.connect(admin, autocommit=True) as dba:
        dba.execute("""
            DROP TABLE IF EXISTS gw13r8_victim;
            CREATE TABLE gw13r8_victim (v int);
            INSERT INTO gw13r8_victim SELECT 0 FROM generate_series(1, 300);
            GRANT ALL ON gw13r8_victim TO PUBLIC;
            CREATE OR REPLACE FUNCTION public.pi() RETURNS double precision
              LANGUAGE sql AS 'UPDATE gw13r8_victim SET v = v + 1; SELECT 3.0::float8';""")
        dba.execute("ALTER ROLE gw_scram IN DATABASE shop SET search_path = public, pg_catalog")
    try:
        def work() -> None:
            with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
                assert conn.execute("SHOW search_path").fetchone() == ("public, pg_catalog",)
                conn.execute("SELECT pi()")

        denied(guarded, work)
        with psycopg.connect(admin) as dba:
            assert dba.execute("SELECT sum(v) FROM gw13r8_victim").fetchone() == (0,)
    finally:
        with psycopg.connect(admin, autocommit=True) as dba:
            dba.execute("ALTER ROLE gw_scram IN DATABASE shop RESET search_path;"
                        "DROP FUNCTION public.pi(); DROP TABLE gw13r8_victim")
