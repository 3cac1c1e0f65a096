"""Issue 12, the seventh outside attack, through the gateway with the shipped rules: a DBA's
protection (a permit check and an audit written by a trigger, a row security policy's
function) stepped around without touching it. Each way is held for review now; the target
shows nothing of it after the denial."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import denied, start_guarded

pytestmark = pytest.mark.integration

SETUP = """
DROP TABLE IF EXISTS gw12r7_orders, gw12r7_permits CASCADE;
CREATE TABLE gw12r7_orders (id int PRIMARY KEY, status text);
INSERT INTO gw12r7_orders SELECT g, 'paid' FROM generate_series(1, 10) g;
CREATE TABLE gw12r7_permits (order_id int);
CREATE OR REPLACE FUNCTION gw12r7_allowed(o int) RETURNS boolean LANGUAGE sql STABLE AS
  $$ SELECT EXISTS (SELECT 1 FROM gw12r7_permits WHERE order_id = o) $$;
CREATE OR REPLACE FUNCTION gw12r7_guard() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF NOT gw12r7_allowed(OLD.id) THEN RAISE EXCEPTION 'needs a permit'; END IF;
    RETURN OLD;
  END $$;
CREATE TRIGGER gw12r7_guard BEFORE DELETE ON gw12r7_orders FOR EACH ROW
  EXECUTE FUNCTION gw12r7_guard();
GRANT ALL ON gw12r7_orders, gw12r7_permits TO PUBLIC;
"""
CLEANUP = """DROP TABLE IF EXISTS gw12r7_orders, gw12r7_permits, gw12r7_child CASCADE;
DROP FUNCTION IF EXISTS gw12r7_guard(), gw12r7_allowed(int), gw12r7_allowed(bigint),
  gw12r7_old(int), gw12r7_skip() CASCADE;"""


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("protect12r7"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def orders(target: Target) -> int:
    with psycopg.connect(target.superuser(), dbname="shop") as admin:
        row = admin.execute("SELECT count(*) FROM gw12r7_orders").fetchone()
        return int(row[0]) if row else -1


@pytest.mark.parametrize("steps", [
    # a temporary table standing in for the one the DBA's function reads
    ["CREATE TEMP TABLE gw12r7_permits (order_id int)"],
    ["CREATE TEMP TABLE gw12r7_permits AS SELECT 1 AS order_id"],
    # the function's name rebound: renamed away, or a better-matching overload beside it
    ["ALTER FUNCTION gw12r7_allowed(int) RENAME TO gw12r7_old"],
    ["CREATE FUNCTION gw12r7_allowed(o bigint) RETURNS boolean LANGUAGE sql AS "
     "$$ SELECT true $$"],
    # a row trigger ahead of the DBA's, by name
    ["CREATE FUNCTION gw12r7_skip() RETURNS trigger LANGUAGE plpgsql AS "
     "$$ BEGIN RETURN NULL; END $$",
     "CREATE TRIGGER a_gw12r7 BEFORE DELETE ON gw12r7_orders FOR EACH ROW "
     "EXECUTE FUNCTION gw12r7_skip()"],
    # rows that show in the table, under none of its checks
    ["CREATE TABLE gw12r7_child () INHERITS (gw12r7_orders)"],
])
def test_protection_stepped_around_is_held(guarded: Gateway, steps: list[str]) -> None:
    *before, last = steps

    def work() -> None:
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            for sql in before:
                conn.execute(sql)  # type: ignore[arg-type]
            conn.execute(last)  # type: ignore[arg-type]

    request = denied(guarded, work)
    assert request["rule"] == "review-destructive-alter-table", request
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("DELETE FROM gw12r7_orders WHERE id = 1")
    assert orders(guarded.target) == 10


def test_a_temporary_table_of_a_new_name_is_not(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE gw12r7_scratch (x int)")
        conn.execute("INSERT INTO gw12r7_scratch VALUES (1)")
        assert conn.execute("SELECT count(*) FROM gw12r7_scratch").fetchone() == (1,)
