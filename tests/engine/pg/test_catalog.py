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
