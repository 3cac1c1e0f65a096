"""Issue 14, the seventh outside attack: lineage took two names at their word — a user's
``count(text)``, which PostgreSQL prefers to its own ``count("any")`` for a text argument,
was read as the built-in that returns no value; and a function body that names a table and
its columns with Unicode escapes (``U&"\\0063ustomers"``) read as reading nothing."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import start_guarded

pytestmark = pytest.mark.integration

FUNCTIONS = {
    "count_text": "CREATE FUNCTION public.count(text) RETURNS text LANGUAGE sql AS "
                  "$$ SELECT $1 $$",
    "escaped": "CREATE FUNCTION public.gw14r7_escaped() RETURNS SETOF text LANGUAGE sql AS $$"
               " SELECT U&\"\\006eational_id\" FROM U&\"\\0063ustomers\" ORDER BY id $$",
    "escaped_plpgsql": "CREATE FUNCTION public.gw14r7_escaped_pl() RETURNS SETOF text "
                       "LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY SELECT "
                       "u&\"\\006eational_id\" FROM customers ORDER BY id; END $$",
}
DROP = ("DROP FUNCTION IF EXISTS public.count(text), public.gw14r7_escaped(), "
        "public.gw14r7_escaped_pl()")


@pytest.fixture(scope="module")
def gateway(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with psycopg.connect(pg_target.superuser(), dbname="shop", autocommit=True) as admin:
        admin.execute(DROP)
        for sql in FUNCTIONS.values():
            admin.execute(sql)
        admin.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("masked14r7"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        with psycopg.connect(pg_target.superuser(), dbname="shop", autocommit=True) as admin:
            admin.execute(DROP)


def national_ids(gateway: Gateway) -> list[str]:
    with psycopg.connect(gateway.target.superuser(), dbname="shop") as admin:
        return [r[0] for r in admin.execute("SELECT national_id FROM customers ORDER BY id")]


@pytest.mark.parametrize("sql", [
    "SELECT count(national_id) FROM customers WHERE id < 3",
    "SELECT count(full_name || '|' || national_id) FROM customers WHERE id < 3",
    "SELECT count(national_id::text) AS n FROM customers WHERE id < %s",
    "SELECT gw14r7_escaped()",
    "SELECT * FROM gw14r7_escaped()",
    "SELECT x FROM gw14r7_escaped_pl() x",
])
@pytest.mark.parametrize("binary", [False, True])
def test_a_users_function_under_a_trusted_name_or_escaped_names_is_followed(
        gateway: Gateway, sql: str, binary: bool) -> None:
    values = national_ids(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        rows = conn.cursor(binary=binary).execute(
            sql, [3] if "%s" in sql else None).fetchall()  # type: ignore[arg-type]
    assert rows
    shown = str(rows)
    assert not [v for v in values if v in shown], shown


def test_postgresqls_count_still_counts(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*), count(id) FROM customers WHERE id < 3"
                            ).fetchall() == [(2, 2)]
