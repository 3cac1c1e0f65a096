"""The check of lineage's catalog names against the target: answered by the target's snapshot
alone while no transaction ended, and never missing a change a transaction committed since
(however long it had been open)."""

from __future__ import annotations

import psycopg
import pytest

from engine.config import Upstream
from engine.pg.catalog import TableCatalog
from tests.conftest import Target

NAMES = (frozenset({"check_v", "check_t"}), frozenset({"operator:=", "check_f"}))


@pytest.fixture
def catalog(pg_target: Target, monkeypatch: pytest.MonkeyPatch) -> TableCatalog:
    monkeypatch.setenv("GWTEST_CATALOG_PW", pg_target.passwords["gw_scram"])
    with psycopg.connect(pg_target.direct(), autocommit=True) as conn:
        conn.execute("DROP VIEW IF EXISTS check_v; DROP TABLE IF EXISTS check_t, check_u;"
                     " DROP FUNCTION IF EXISTS check_f();"
                     " CREATE TABLE check_t (a int, b int);"
                     " CREATE VIEW check_v AS SELECT a AS x FROM check_t")
    upstream = Upstream("127.0.0.1", pg_target.cluster.port, "gw_scram",
                        password_env="GWTEST_CATALOG_PW", sslmode="disable")
    return TableCatalog(upstream, "shop", 1 << 20)


def definition(catalog: TableCatalog) -> str:
    found = catalog.relations("check_v")
    assert found and found[0].definition is not None
    return found[0].definition


async def test_nothing_ended_since_the_last_check_answers_from_the_snapshot(
        catalog: TableCatalog) -> None:
    try:
        assert await catalog.resolve_names(*NAMES)
        assert catalog.lookups == 1 and catalog.quick == 0
        assert await catalog.resolve_names(*NAMES)
        assert await catalog.resolve_names(*NAMES)
        assert catalog.quick == 2 and catalog.lookups == 1
        assert catalog.stamp("check_v") == catalog.stamp("operator:=") == catalog.checks == 3
    finally:
        catalog.close()


async def test_a_change_committed_between_checks_is_read_again(
        pg_target: Target, catalog: TableCatalog) -> None:
    try:
        assert await catalog.resolve_names(*NAMES)
        assert await catalog.resolve_names(*NAMES)  # the snapshot alone
        assert "a AS x" in definition(catalog)
        with psycopg.connect(pg_target.direct(), autocommit=True) as conn:
            conn.execute("CREATE OR REPLACE VIEW check_v AS SELECT b AS x FROM check_t")
        quick = catalog.quick
        assert await catalog.resolve_names(*NAMES)
        assert catalog.quick == quick and catalog.lookups == 2
        assert "b AS x" in definition(catalog)
        with psycopg.connect(pg_target.direct(), autocommit=True) as conn:
            conn.execute("CREATE FUNCTION check_f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        assert await catalog.resolve_names(*NAMES)
        assert catalog.functions("check_f") and catalog.lookups == 3
        with psycopg.connect(pg_target.direct(), autocommit=True) as conn:
            conn.execute("CREATE TABLE check_u (c int)")  # a change to other names
        assert await catalog.resolve_names(*NAMES)
        assert catalog.quick == quick and catalog.lookups == 3  # versions compared: the same
        assert await catalog.resolve_names(*NAMES)
        assert catalog.quick == quick + 1
    finally:
        catalog.close()


async def test_a_transaction_open_across_checks_is_seen_when_it_commits(
        pg_target: Target, catalog: TableCatalog) -> None:
    """A transaction whose xid the first snapshot does not list (assigned after it, or
    after the latest one to end) changes the snapshot when it ends."""
    try:
        assert await catalog.resolve_names(*NAMES)
        with psycopg.connect(pg_target.direct()) as early, \
                psycopg.connect(pg_target.direct()) as late:
            early.execute("CREATE OR REPLACE VIEW check_v AS SELECT b AS x FROM check_t")
            assert await catalog.resolve_names(*NAMES)
            late.execute("CREATE FUNCTION check_f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
            assert await catalog.resolve_names(*NAMES)
            assert "a AS x" in definition(catalog)  # neither committed yet
            assert catalog.functions("check_f") == []
            late.commit()
            assert await catalog.resolve_names(*NAMES)
            assert catalog.functions("check_f")
            assert await catalog.resolve_names(*NAMES)
            assert "a AS x" in definition(catalog)
            early.commit()  # began first, ends last
            assert await catalog.resolve_names(*NAMES)
            assert "b AS x" in definition(catalog)
    finally:
        catalog.close()
