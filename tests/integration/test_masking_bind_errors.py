"""Errors the target raises at Bind, before the statement runs: a parameter's input conversion
runs the CHECKs of its domain (and the code they call), so a domain whose CHECK calls a
function that raises with a masked column's value raised that value in clear through the
extended protocol (the outside attack on issue 14). The masker has no statement running at
Bind: what an error says there is screened as the statement's own would be, and when the
statement the Bind is for (or the code its parameters' types run) may read a masked column,
the error's texts are hidden."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import start_guarded

pytestmark = pytest.mark.integration

SETUP = """
SET ROLE gw_scram;
CREATE OR REPLACE FUNCTION gw14b_check(v text) RETURNS boolean LANGUAGE plpgsql AS $$
  DECLARE s text;
  BEGIN
    SELECT national_id INTO s FROM customers ORDER BY id LIMIT 1;
    IF v = 'leak' THEN
      RAISE EXCEPTION 'checked against %', s USING DETAIL = s, HINT = s;
    END IF;
    RETURN true;
  END$$;
CREATE DOMAIN gw14b_dom AS text CHECK (gw14b_check(VALUE));
CREATE TABLE gw14b_t (id serial, d gw14b_dom);
CREATE DOMAIN gw14b_plain AS text CHECK (VALUE <> 'leak');
CREATE TABLE gw14b_p (id serial, d gw14b_plain);
RESET ROLE;
"""
CLEANUP = """DROP TABLE IF EXISTS gw14b_t, gw14b_p; DROP DOMAIN IF EXISTS gw14b_dom, gw14b_plain;
DROP FUNCTION IF EXISTS gw14b_check(text);"""


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("masked14b"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def first_national_id(target: Target) -> str:
    with psycopg.connect(target.superuser(), dbname="shop") as admin:
        row = admin.execute("SELECT national_id FROM customers ORDER BY id LIMIT 1").fetchone()
        assert row is not None
        return str(row[0])


@pytest.mark.parametrize("sql", [
    "INSERT INTO gw14b_t (d) VALUES (%s)",
    "SELECT %s::gw14b_dom",
    "UPDATE gw14b_t SET d = %s WHERE false",
    "SELECT 1 WHERE %s::text IS NOT NULL AND %s::gw14b_dom IS NOT NULL",
])
def test_an_error_raised_at_bind_is_masked(guarded: Gateway, sql: str) -> None:
    value = first_national_id(guarded.target)
    params = ["leak"] * sql.count("%s")
    with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as failed:
            conn.execute(sql, params, prepare=True)  # type: ignore[arg-type]
        diag = failed.value.diag
        shown = " ".join(str(f) for f in (diag.message_primary, diag.message_detail,
                                          diag.message_hint, diag.context))
        assert value not in shown, shown
        # The connection goes on: the next statement runs and answers.
        assert conn.execute("SELECT 1").fetchone() == (1,)
    stored = guarded.wait_for(lambda s: [r for r in s.conn.execute(
        "SELECT error FROM statements WHERE error IS NOT NULL").fetchall()])
    assert not [e for (e,) in stored if value in str(e)]


def test_an_error_at_bind_that_quotes_nothing_masked_stays_readable(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation) as failed:
            conn.execute("INSERT INTO gw14b_p (d) VALUES (%s)", ["leak"], prepare=True)
        assert "gw14b_plain" in str(failed.value.diag.message_primary)


@pytest.mark.parametrize("sql", [b"SELECT 1", b"SELECT $1::text", b"SELECT 1 FROM gw14b_p"])
def test_a_parameter_typed_by_oid_in_parse_is_checked_as_its_type(
        guarded: Gateway, sql: bytes) -> None:
    """The Parse names the parameter's type by OID: the statement's text does not mention the
    domain at all, its Bind runs the domain's CHECK all the same."""
    value = first_national_id(guarded.target)
    with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True) as conn:
        row = conn.execute("SELECT 'gw14b_dom'::regtype::oid").fetchone()
        assert row is not None
        pg = conn.pgconn
        pg.prepare(b"gw14b", sql, [int(row[0])])
        res = pg.exec_prepared(b"gw14b", [b"leak"])
        assert res.error_message, "the domain's CHECK raised"
        shown = " ".join((res.error_field(f) or b"").decode("utf-8", "replace") for f in (
            psycopg.pq.DiagnosticField.MESSAGE_PRIMARY, psycopg.pq.DiagnosticField.MESSAGE_DETAIL,
            psycopg.pq.DiagnosticField.MESSAGE_HINT, psycopg.pq.DiagnosticField.CONTEXT))
        assert value not in shown, shown
        assert conn.execute("SELECT 1").fetchone() == (1,)
    stored = guarded.wait_for(lambda s: [r for r in s.conn.execute(
        "SELECT error FROM statements WHERE error IS NOT NULL").fetchall()])
    assert not [e for (e,) in stored if value in str(e)]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_an_error_code_chosen_by_code_that_reads_a_masked_column_is_not_passed_on(
        guarded: Gateway, protocol: str) -> None:
    """``RAISE … USING ERRCODE`` takes any five characters of [0-9A-Z]: five characters of a
    national id per error. Where a statement reads a masked column, only the codes
    PostgreSQL raises itself pass; others read P0001, as a plain RAISE gives."""
    value = first_national_id(guarded.target)
    guarded.target.cluster.sql(
        "CREATE OR REPLACE FUNCTION gw14b_code() RETURNS int LANGUAGE plpgsql AS $$"
        " DECLARE s text; BEGIN"
        "  SELECT national_id INTO s FROM customers ORDER BY id LIMIT 1;"
        "  RAISE EXCEPTION 'x' USING ERRCODE = 'Q' || translate(substr(s, 1, 4), '-', 'Z');"
        " END$$", dbname="shop")
    try:
        cursor = psycopg.ClientCursor if protocol == "simple" else psycopg.Cursor
        with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True,
                             cursor_factory=cursor) as conn:
            with pytest.raises(psycopg.Error) as failed:
                conn.execute("SELECT gw14b_code() WHERE %s::int = 1", [1])
            assert failed.value.sqlstate == "P0001", failed.value.sqlstate
            assert value[:4].replace("-", "Z") not in str(failed.value.sqlstate)
            stored = guarded.wait_for(lambda s: s.conn.execute(
                "SELECT sqlstate FROM statements WHERE text LIKE '%gw14b_code()%'"
                " AND sqlstate IS NOT NULL").fetchall())
            assert {code for (code,) in stored} == {"P0001"}, stored
            # A code PostgreSQL raises itself still reaches the client as it is.
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT national_id, 1 / 0 FROM customers WHERE %s::int = 1", [1])
    finally:
        guarded.target.cluster.sql("DROP FUNCTION IF EXISTS gw14b_code()", dbname="shop")
