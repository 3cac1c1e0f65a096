"""Masking of a statement the guardrails count (``rows_over``) in the extended protocol, found
by the outside attack on issue 14: a statement calling code gets the target's statistics read
in front of its Bind under the gateway's own names, and the masker took the next answer — the
client's error — for that reading's: errors, details, hints and notices quoting a masked value,
raised by a function or a trigger the statement runs, went out in clear (and into the store).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import start_guarded

pytestmark = pytest.mark.integration

SETUP = """
SET ROLE gw_scram;
CREATE OR REPLACE FUNCTION gw14c_value(i int) RETURNS text LANGUAGE sql AS
  $$SELECT full_name || '|' || national_id FROM customers WHERE id = i$$;
CREATE OR REPLACE FUNCTION gw14c_raise(i int) RETURNS int LANGUAGE plpgsql AS $$
  DECLARE v text;
  BEGIN
    SELECT national_id INTO v FROM customers WHERE id = i;
    RAISE EXCEPTION 'value: %', v USING DETAIL = v, HINT = v;
  END$$;
CREATE OR REPLACE FUNCTION gw14c_notice(i int) RETURNS int LANGUAGE plpgsql AS $$
  DECLARE v text;
  BEGIN
    SELECT national_id INTO v FROM customers WHERE id = i;
    RAISE NOTICE 'value: %', v;
    RETURN 1;
  END$$;
RESET ROLE;
"""
CLEANUP = "DROP FUNCTION IF EXISTS gw14c_value(int), gw14c_raise(int), gw14c_notice(int);"


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("masked14c"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def national_ids(target: Target) -> list[str]:
    with psycopg.connect(target.superuser(), dbname="shop") as admin:
        return [r[0] for r in admin.execute("SELECT national_id FROM customers ORDER BY id")]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize("sql", ["SELECT gw14c_value(%s)::int", "SELECT gw14c_raise(%s)"])
def test_errors_of_counted_code_that_reads_masked_columns_are_masked(
        guarded: Gateway, sql: str, protocol: str) -> None:
    cursor = psycopg.ClientCursor if protocol == "simple" else psycopg.Cursor
    values = national_ids(guarded.target)
    with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True,
                         cursor_factory=cursor) as conn:
        for i in (1, 2):
            with pytest.raises(psycopg.Error) as failed:
                conn.execute(sql, [i])  # type: ignore[arg-type]
            diag = failed.value.diag
            shown = " ".join(str(f) for f in (diag.message_primary, diag.message_detail,
                                              diag.message_hint, diag.context))
            assert not [v for v in values if v in shown], shown
            assert "masked" in str(diag.message_primary)
    stored = guarded.wait_for(lambda s: [r for r in s.conn.execute(
        "SELECT error FROM statements WHERE error IS NOT NULL").fetchall()])
    assert not [v for v in values for (e,) in stored if v in str(e)]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_results_and_notices_of_counted_code_are_masked(guarded: Gateway, protocol: str) -> None:
    cursor = psycopg.ClientCursor if protocol == "simple" else psycopg.Cursor
    values = national_ids(guarded.target)
    notices: list[str] = []
    with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True,
                         cursor_factory=cursor) as conn:
        conn.add_notice_handler(lambda d: notices.append(str(d.message_primary)))
        row = conn.execute("SELECT gw14c_value(%s)", [3]).fetchone()
        assert row is not None and not [v for v in values if v in str(row[0])]
        conn.execute("SELECT gw14c_notice(%s)", [3])
    assert notices and not [v for v in values for n in notices if v in n]
