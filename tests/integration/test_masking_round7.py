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


# --- the eighth outside attack -----------------------------------------------------------


def shown(values: list[str], *texts: object) -> list[str]:
    text = " ".join(str(t) for t in texts)
    return [v for v in values if v in text]


@pytest.mark.parametrize("read_back", [
    "select current_setting('gw.r8')::int",
    "select to_char(current_setting('gw.r8')::int, '9')",
])
def test_an_error_quoting_a_value_kept_in_a_setting_is_masked(
        gateway: Gateway, read_back: str) -> None:
    values = national_ids(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute("select set_config('gw.r8', national_id, false) from customers where id = 1")
        with pytest.raises(psycopg.Error) as failed:
            conn.execute(read_back)
        diag = failed.value.diag
    assert not shown(values, diag.message_primary, diag.message_detail, diag.context)
    stored = gateway.wait_for(lambda s: s.conn.execute(
        "SELECT error FROM statements WHERE text LIKE '%gw.r8'')::int%'"
        " AND error IS NOT NULL").fetchall())
    assert not shown(values, stored)


@pytest.mark.parametrize(("body", "call"), [
    ("RETURNS text LANGUAGE sql AS $$ SELECT current_setting('gw.r8b') $$", "select {f}()"),
    ("RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN current_setting('gw.r8b'); END $$",
     "select * from {f}()"),
    ("RETURNS text LANGUAGE sql AS $$ SELECT setting FROM pg_catalog.pg_show_all_settings() "
     "WHERE name = 'gw.r8b' $$", "select {f}()"),
])
def test_a_body_that_reads_a_kept_value_returns_it_masked(
        gateway: Gateway, body: str, call: str) -> None:
    values = national_ids(gateway)
    f = f"gw14r8_body{abs(hash(body)) % 100_000}"
    with psycopg.connect(gateway.target.superuser(), dbname="shop", autocommit=True) as admin:
        admin.execute(f"CREATE OR REPLACE FUNCTION public.{f}() {body}")  # a DBA's
        admin.execute(f"GRANT EXECUTE ON FUNCTION public.{f}() TO PUBLIC")
    try:
        with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
            conn.execute("select set_config('gw.r8b', national_id, false) from customers "
                         "where id = 2")
            rows = conn.execute(call.format(f=f)).fetchall()
    finally:
        with psycopg.connect(gateway.target.superuser(), dbname="shop",
                             autocommit=True) as admin:
            admin.execute(f"DROP FUNCTION IF EXISTS public.{f}()")
    assert rows and not shown(values, rows), rows


@pytest.mark.parametrize("language", ["sql", "plpgsql"])
def test_a_temporary_function_is_followed_as_code_the_gateway_cannot_read(
        gateway: Gateway, language: str) -> None:
    values = national_ids(gateway)
    body = ("$$ SELECT string_agg(national_id, ';') FROM customers WHERE id < 3 $$"
            if language == "sql" else
            "$$ BEGIN RETURN (SELECT string_agg(national_id, ';') FROM customers "
            "WHERE id < 3); END $$")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"CREATE FUNCTION pg_temp.gw14r8_{language}() RETURNS text "
                     f"LANGUAGE {language} "
                     f"AS {body}")
        rows = conn.execute(f"select pg_temp.gw14r8_{language}()").fetchall()
        with pytest.raises(psycopg.Error) as failed:
            conn.execute(f"select pg_temp.gw14r8_{language}()::int")
    assert not shown(values, rows, failed.value.diag.message_primary), rows


@pytest.mark.parametrize("sql", [
    "select ts_rewrite('a'::tsquery, $$select 'a'::tsquery, "
    "quote_literal(national_id)::tsquery from customers where id = 1$$)",
    "select ts_rewrite('a'::tsquery, $$select 'a'::tsquery, "
    "quote_literal(national_id)::tsquery from customers where id = 1$$)::text::int",
])
def test_ts_rewrite_of_a_query_is_sql_the_gateway_cannot_read(gateway: Gateway,
                                                               sql: str) -> None:
    values = national_ids(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        try:
            rows: object = conn.execute(sql).fetchall()
        except psycopg.Error as exc:
            rows = exc.diag.message_primary
    assert not shown(values, rows), rows
