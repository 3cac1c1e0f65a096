"""The check of lineage's catalog names against the target: answered by the target's snapshot
alone while no transaction ended, and never missing a change a transaction committed since
(however long it had been open)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from engine.config import Upstream
from engine.pg.catalog import SNAPSHOT_QUERY, TableCatalog
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


async def check(catalog: TableCatalog, *names: frozenset[str]) -> list[bool]:
    """``check_names`` for each pair of names, all asked at once; their answers."""
    loop = asyncio.get_running_loop()
    answers = [loop.create_future() for _ in names[::2]]
    for i, answer in enumerate(answers):
        catalog.check_names(names[2 * i], names[2 * i + 1], answer.set_result)
    return list(await asyncio.gather(*answers))


async def test_checks_by_callback_share_a_probe_and_see_changes(
        pg_target: Target, catalog: TableCatalog) -> None:
    try:
        assert await check(catalog, *NAMES) == [True]  # not cached: read (a task)
        assert await check(catalog, *NAMES) == [True]  # the probe is prepared (a task)
        slow: list[object] = []
        resolve = catalog._resolve_names

        async def counted(relations: frozenset[str], functions: frozenset[str]) -> bool:
            slow.append(relations)
            return await resolve(relations, functions)

        catalog._resolve_names = counted  # type: ignore[method-assign]
        probes = catalog.probes
        # the first is probed at once; the two asking meanwhile share the next probe
        assert await check(catalog, *NAMES, frozenset({"check_t"}), frozenset(),
                           frozenset(), frozenset({"check_f"})) == [True, True, True]
        assert catalog.probes == probes + 2 and catalog.lookups == 1
        assert catalog.stamp("check_t") == catalog.stamp("check_f") == catalog.checks
        assert not slow  # the probes were read by the connection's callbacks
        with psycopg.connect(pg_target.direct(), autocommit=True) as conn:
            conn.execute("CREATE OR REPLACE VIEW check_v AS SELECT b AS x FROM check_t")
        assert await check(catalog, *NAMES) == [True]
        assert "b AS x" in definition(catalog) and catalog.lookups == 2
        assert len(slow) == 1  # what changed is read again through a lookup
        quick = catalog.quick
        assert await check(catalog, *NAMES) == [True]
        assert catalog.quick == quick + 1
    finally:
        catalog.close()


async def test_a_catalog_connection_closed_by_the_target_is_opened_again(
        pg_target: Target, catalog: TableCatalog) -> None:
    try:
        assert await check(catalog, *NAMES) == [True]
        assert await check(catalog, *NAMES) == [True]
        with psycopg.connect(pg_target.superuser(), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE application_name = 'gatewatch catalog'")
        await asyncio.sleep(0.2)  # the connection's end is read (or the probe finds it)
        checks = catalog.checks
        assert await check(catalog, *NAMES) == [True]
        assert catalog.stamp("check_v") == catalog.checks > checks
        with psycopg.connect(pg_target.superuser(), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE application_name = 'gatewatch catalog'")
        assert await check(catalog, *NAMES) == [True]  # at once: while it ends
    finally:
        catalog.close()


async def test_a_probe_answer_it_cannot_read_fails_closed(catalog: TableCatalog) -> None:
    try:
        assert await check(catalog, *NAMES) == [True]
        assert await check(catalog, *NAMES) == [True]  # prepared now: probes by callback
        catalog.max_message_size = 16  # its RowDescription is longer
        assert await check(catalog, *NAMES) == [False]
        assert catalog.relations("check_v") is None  # forgotten: lineage fails closed
        catalog.max_message_size = 1 << 20
        assert await check(catalog, *NAMES) == [True]  # read again on a new connection
        assert catalog.relations("check_v")
    finally:
        catalog.close()


async def test_the_probe_is_planned_once(catalog: TableCatalog) -> None:
    """Re-planned at each execution (PostgreSQL's choice for its parameters), the probe cost
    the target more CPU than the statements it checked."""
    try:
        for _ in range(8):
            assert await catalog.resolve_names(*NAMES)
        catalog._still = False  # the versions are asked for too: the prepared probe runs
        for _ in range(8):
            assert await check(catalog, *NAMES) == [True]
            catalog._still = False
        rows = await catalog._run("SELECT generic_plans, custom_plans"
                                  " FROM pg_catalog.pg_prepared_statements"
                                  " WHERE name = 'gatewatch_probe'")
        assert rows and int(rows[0][1] or 0) == 0 and int(rows[0][0] or 0) >= 15
    finally:
        catalog.close()


def last_query(target: Target) -> str:
    with psycopg.connect(target.superuser(), autocommit=True) as conn:
        row = conn.execute("SELECT query FROM pg_stat_activity"
                           " WHERE application_name = 'gatewatch catalog'").fetchone()
    assert row is not None
    return str(row[0])


async def test_a_still_snapshot_is_asked_alone_and_a_moved_one_has_the_versions_compared(
        pg_target: Target, catalog: TableCatalog) -> None:
    try:
        assert await check(catalog, *NAMES) == [True]  # read
        assert await check(catalog, *NAMES) == [True]  # prepared: still since the read
        assert await check(catalog, *NAMES) == [True]
        assert last_query(pg_target) == SNAPSHOT_QUERY
        quick, lookups = catalog.quick, catalog.lookups
        with psycopg.connect(pg_target.direct(), autocommit=True) as conn:
            conn.execute("CREATE OR REPLACE VIEW check_v AS SELECT b AS x FROM check_t")
        assert await check(catalog, *NAMES) == [True]  # the snapshot moved: versions
        assert "b AS x" in definition(catalog) and catalog.lookups == lookups + 1
        assert catalog.quick == quick
        assert await check(catalog, *NAMES) == [True]  # moved last time: versions at once
        assert "EXECUTE gatewatch_probe" in last_query(pg_target)
        assert catalog.quick == quick + 1
        with psycopg.connect(pg_target.direct(), autocommit=True) as conn:
            conn.execute("CREATE OR REPLACE VIEW check_v AS SELECT a AS x FROM check_t")
        assert await check(catalog, *NAMES) == [True]  # still last time: the snapshot alone
        assert "a AS x" in definition(catalog) and catalog.lookups == lookups + 2
        assert await check(catalog, *NAMES) == [True]
        assert await check(catalog, *NAMES) == [True]
        assert last_query(pg_target) == SNAPSHOT_QUERY
        assert catalog.quick == quick + 3
    finally:
        catalog.close()
