"""The catalog of table columns behind result columns: failing closed when it cannot be read."""

from __future__ import annotations

import asyncio

from engine.config import Upstream
from engine.masking.pg import UNAVAILABLE
from engine.pg.catalog import TableCatalog


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def test_a_target_that_hangs_up_marks_the_tables_unavailable() -> None:
    server = await asyncio.start_server(_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        catalog = TableCatalog(Upstream("127.0.0.1", port, "gw", sslmode="disable",
                                        connect_timeout=5), "shop", 1 << 20)
        await catalog.resolve({16400})
    finally:
        server.close()
        await server.wait_closed()
    assert catalog.known(16400) and catalog.column(16400, 1) is UNAVAILABLE


async def test_a_target_that_is_down_marks_the_tables_unavailable() -> None:
    from gatewatch.demo.pgcluster import free_port

    catalog = TableCatalog(Upstream("127.0.0.1", free_port(), "gw", sslmode="disable"),
                           "shop", 1 << 20)
    await catalog.resolve({1, 2})
    assert catalog.column(2, 5) is UNAVAILABLE and catalog.lookups == 1
    await catalog.resolve({1})  # within the retry window: no new attempt
    assert catalog.lookups == 1


def test_what_was_written_outlives_an_invalidation_and_follows_a_renamed_table() -> None:
    from engine.masking.lineage import Relation, Source

    catalog = TableCatalog(Upstream("127.0.0.1", 1, "gw", sslmode="disable"), "shop", 1 << 20)
    nid = Source("public", "customers", "national_id")
    catalog._relations["customers"] = (float("inf"), [Relation("public", "customers", "r", ())])
    catalog.taint("Copy_T", "Y", frozenset({nid}))
    catalog.taint("people", "*", frozenset({Source(None, "customers", "*")}))  # renamed
    catalog.invalidate()
    assert catalog.relations("customers") is None and catalog.generation == 1
    assert catalog.derived("copy_t", "y") == {nid} and catalog.derived("copy_t", "id") == set()
    assert catalog.derived("people", "email") == {Source(None, "customers", "email")}


def test_a_sql_standard_body_is_read_from_prosqlbody() -> None:
    from engine.pg.catalog import names_query

    assert "pg_get_functiondef" in names_query([], ["f"])
