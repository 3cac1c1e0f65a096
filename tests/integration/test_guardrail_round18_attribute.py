"""Outside attack round 18, findings 1 and 2: PostgreSQL calls ``f(x)`` for ``(x).f`` (and
``t.f`` when ``t`` has no column ``f``). The gateway saw a field selection and no call:
``(pid).pg_terminate_backend`` terminated another session's backend where
``pg_terminate_backend(pid)`` is blocked, ``(o).lo_unlink`` escaped review, and ``(q).ts_stat``
ran a ``setval`` built at run time. Through the real gateway, with the shipped rules; the
target is checked directly."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import denied_sql, start_guarded

pytestmark = pytest.mark.integration

SETUP = """
DROP SEQUENCE IF EXISTS gw18a_seq;
CREATE SEQUENCE gw18a_seq START 2000;
SELECT setval('gw18a_seq', 2000);
GRANT ALL ON SEQUENCE gw18a_seq TO PUBLIC;
DROP TABLE IF EXISTS gw18a_rows;
CREATE TABLE gw18a_rows (id int);
INSERT INTO gw18a_rows SELECT generate_series(1, 300);
GRANT ALL ON gw18a_rows TO PUBLIC;
CREATE OR REPLACE FUNCTION gw18a_wipe(n int) RETURNS bigint LANGUAGE sql
    AS $$WITH d AS (DELETE FROM gw18a_rows RETURNING 1) SELECT count(*) FROM d$$;
GRANT EXECUTE ON FUNCTION gw18a_wipe(int) TO PUBLIC;
"""
CLEANUP = """DROP SEQUENCE IF EXISTS gw18a_seq; DROP TABLE IF EXISTS gw18a_rows;
DROP FUNCTION IF EXISTS gw18a_wipe(int);"""


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("guard18a"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def direct(target: Target, sql: str) -> object:
    with psycopg.connect(target.superuser(), dbname="shop", autocommit=True) as admin:
        row = admin.execute(sql).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


def blocked(gateway: Gateway, sql: str) -> str:
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn, pytest.raises(
            errors.InsufficientPrivilege) as raised:
        conn.execute(sql)  # type: ignore[arg-type]
    return str(raised.value)


@pytest.mark.parametrize("sql", [
    "SELECT (pid).pg_terminate_backend FROM pg_stat_activity WHERE application_name = '{app}'",
    "SELECT a.pg_terminate_backend FROM (SELECT pid FROM pg_stat_activity "
    "WHERE application_name = '{app}') a",
    "SELECT 1 FROM pg_stat_activity WHERE application_name = '{app}' "
    "AND (pid).pg_cancel_backend",
], ids=["selected", "whole-row", "where"])
def test_a_backend_is_not_terminated_through_attribute_notation(
        guarded: Gateway, sql: str) -> None:
    app = "gw18a_victim"
    with psycopg.connect(guarded.target.superuser(), dbname="shop", autocommit=True,
                         application_name=app) as victim:
        assert "no-backend-control" in blocked(guarded, sql.format(app=app))
        victim.execute("SELECT 1")  # still connected


def test_a_large_object_unlinked_through_attribute_notation_is_held(guarded: Gateway) -> None:
    lo = direct(guarded.target, "SELECT lo_from_bytea(0, 'precious')")
    try:
        request = denied_sql(guarded, f"SELECT (o).lo_unlink FROM (VALUES ({lo}::oid)) v(o)")
        assert request["rule"] == "review-large-object-writes", request
        assert direct(guarded.target,
                      f"SELECT count(*) FROM pg_largeobject_metadata WHERE oid = {lo}") == 1
    finally:
        direct(guarded.target, f"SELECT lo_unlink({lo})")


def test_sql_built_at_run_time_through_ts_stat_is_blocked(guarded: Gateway) -> None:
    sql = ("SELECT (q).ts_stat FROM (VALUES (format('SELECT to_tsvector(%s::text)', "
           "'setval(''gw18a_seq'', ' || (40 + 2)::text || ')'))) v(q)")
    assert "no-dynamic-sql" in blocked(guarded, sql)
    assert direct(guarded.target, "SELECT last_value FROM gw18a_seq") == 2000


def test_a_user_s_function_called_in_attribute_notation_is_counted(guarded: Gateway) -> None:
    """``(1).gw18a_wipe`` deletes 300 rows through code the gateway has not read: counted as
    ``SELECT gw18a_wipe(1)`` is, and held under review-big-writes."""
    request = denied_sql(guarded, "SELECT (1).gw18a_wipe")
    assert request["rule"] == "review-big-writes", request
    assert direct(guarded.target, "SELECT count(*) FROM gw18a_rows") == 300


def test_columns_selected_by_name_still_run(guarded: Gateway) -> None:
    """(Not over-blocking: this one passes on the code before the fix too.)"""
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT r.id, (r).id, (ROW(1, 2)).f2, r.name FROM "
                           "(VALUES (7, 'x')) r(id, name)").fetchone()
    assert row == (7, 7, 2, "x")
