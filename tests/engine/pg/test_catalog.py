"""The catalog of table columns behind result columns: failing closed when it cannot be read."""

from __future__ import annotations

import asyncio
from pathlib import Path

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


def test_what_was_written_is_kept_in_a_journal_other_catalogs_read(tmp_path: Path) -> None:
    from engine.masking.lineage import Source
    from engine.pg.catalog import taint_file

    journal = taint_file(tmp_path / "store.db")
    upstream = Upstream("127.0.0.1", 5432, "gw", sslmode="disable")
    nid = Source("public", "customers", "national_id")
    first = TableCatalog(upstream, "shop", 1 << 20, taint_file=journal)
    other = TableCatalog(upstream, "shop", 1 << 20, taint_file=journal)  # another engine
    elsewhere = TableCatalog(upstream, "billing", 1 << 20, taint_file=journal)
    first.taint("notes", "body", frozenset({nid}))
    first.taint("notes", "body", frozenset({nid}))  # nothing new: not written again
    assert journal.stat().st_mode & 0o777 == 0o600
    assert len(journal.read_bytes().splitlines()) == 1
    other._read_taints()
    elsewhere._read_taints()
    assert other.derived("notes", "body") == {nid}
    assert elsewhere.derived("notes", "body") == set()  # another database
    restarted = TableCatalog(upstream, "shop", 1 << 20, taint_file=journal)
    assert restarted.derived("notes", "body") == {nid}
    # code the gateway could not read ran: every table, every column
    first.taint("*", "*", frozenset({Source(None, "", "")}))
    assert Source(None, "", "") in TableCatalog(upstream, "shop", 1 << 20,
                                                taint_file=journal).derived("orders", "id")


def test_a_journal_line_that_cannot_be_read_fails_closed(tmp_path: Path) -> None:
    from engine.masking.lineage import UNKNOWN

    journal = tmp_path / "store.db.taint"
    journal.write_bytes(b'{"target": "127.0.0.1:5432/shop", "table": \n')
    catalog = TableCatalog(Upstream("127.0.0.1", 5432, "gw", sslmode="disable"), "shop",
                           1 << 20, taint_file=journal)
    assert UNKNOWN in catalog.derived("orders", "id")


def test_the_version_probe_is_prepared_once_per_connection() -> None:
    from engine.pg.catalog import names_query, probe_query

    first = probe_query(["orders"], ["f"], prepare=True)
    assert first.startswith("PREPARE gatewatch_probe(text[], text[], text)")
    assert probe_query(["o'x"], [], "1:2:", prepare=False) == (
        "EXECUTE gatewatch_probe(ARRAY['o''x']::text[], ARRAY[]::text[], '1:2:')")
    assert "'v', NULL, n, 'r'" in names_query(["orders"], [])  # versions in the same snapshot
    assert "txid_current_snapshot()" in names_query(["orders"], [])  # and that snapshot


async def test_sessions_asking_at_once_share_one_lookup() -> None:
    catalog = TableCatalog(Upstream("127.0.0.1", 1, "gw", sslmode="disable"), "shop", 1 << 20)
    asked: list[str] = []

    async def run(sql: object, functions: object = None) -> list[list[str | None]]:
        asked.append(str(sql))
        await asyncio.sleep(0)
        return []

    catalog._run = run  # type: ignore[method-assign]
    async with catalog._lock:  # a lookup is under way: these wait for the next one
        waiting = [asyncio.ensure_future(catalog.resolve_names(frozenset({n}), frozenset()))
                   for n in ("a", "b", "c")]
        await asyncio.sleep(0)
    assert await asyncio.gather(*waiting) == [True, True, True]
    assert len(asked) == 1 and all(f"'{n}'" in asked[0] for n in "abc")
    assert catalog.stamp("a") == catalog.stamp("c") == catalog.checks == 1


def test_sources_with_and_without_a_schema_are_kept_together(tmp_path: Path) -> None:
    """Found in the fourth outside attack: a write from a source without a schema beside one
    with a schema (code the gateway could not read, and a column it could) failed to sort, and
    every later statement of the session was refused."""
    from engine.masking.lineage import Source
    from engine.pg.catalog import taint_file

    journal = taint_file(tmp_path / "store.db")
    upstream = Upstream("127.0.0.1", 5432, "gw", sslmode="disable")
    catalog = TableCatalog(upstream, "shop", 1 << 20, taint_file=journal)
    both = frozenset({Source(None, "", ""), Source("public", "customers", "national_id")})
    catalog.taint("*", "*", both)
    assert TableCatalog(upstream, "shop", 1 << 20, taint_file=journal).derived("t", "c") == both
