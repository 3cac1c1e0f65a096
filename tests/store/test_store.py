"""``SqliteStore``: schema, journal, checkpoints, replay after a crash, and failing closed."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from store import SqliteStore, StoreError, open_store, verify
from store import ops as O
from store.chain import GENESIS
from store.schema import SCHEMA_VERSION
from store.sqlite import journal_path
from tests.store.sample import (
    a_session,
    crash,
    session_close,
    session_open,
    statement_end,
    statement_start,
)


def rows(store: SqliteStore, sql: str) -> list[dict[str, object]]:
    return list(store.db.query(sql))


def count(store: SqliteStore, table: str) -> int:
    return int(store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def journal_lines(db_path: Path) -> list[bytes]:
    return journal_path(db_path).read_bytes().splitlines()


# --- schema ----------------------------------------------------------------------------------


def test_open_store_creates_the_schema(store: SqliteStore, db_path: Path) -> None:
    assert db_path.exists()
    version = store.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    assert version.fetchone() == (str(SCHEMA_VERSION),)
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "sessions", "statements", "audit"} <= tables
    assert store.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_reopening_keeps_schema_and_records(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply(a_session("s1"))
    first.close()  # close() checkpoints
    again = open_store(db_path)
    try:
        assert again.conn.execute("SELECT key, value FROM meta").fetchall() == [
            ("schema_version", str(SCHEMA_VERSION))
        ]
        assert [r["seq"] for r in again.statements("s1")] == [1, 2]
        assert verify(again).ok
    finally:
        again.close()


def test_newer_schema_is_refused(db_path: Path) -> None:
    s = open_store(db_path)
    s.conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    s.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(db_path)
    with pytest.raises(StoreError, match="newer"):
        open_store(db_path, readonly=True)


def test_readonly_store_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        open_store(tmp_path / "absent.db", readonly=True)
    assert not (tmp_path / "absent.db").exists()


# --- journal and checkpoint ------------------------------------------------------------------


def test_apply_appends_to_the_journal_only(store: SqliteStore, db_path: Path) -> None:
    store.apply([session_open("s1"), statement_start("s1", 1)])
    assert journal_path(db_path) == db_path.with_name("gatewatch.db.journal")
    lines = journal_lines(db_path)
    assert [line.split(b"\t")[:4] for line in lines] == [
        [b"1", O.SESSION_OPEN.encode(), b"s1", b"0"],
        [b"2", O.STATEMENT_START.encode(), b"s1", b"1"],
    ]
    assert json.loads(lines[1].split(b"\t", 6)[6])["text"] == "SELECT 1"
    assert store.pending == 2
    assert count(store, "sessions") == count(store, "statements") == count(store, "audit") == 0


def test_checkpoint_moves_records_and_empties_the_journal(
    store: SqliteStore, db_path: Path
) -> None:
    store.apply(a_session("s1"))
    store.checkpoint()
    assert journal_path(db_path).stat().st_size == 0
    assert store.pending == 0
    assert count(store, "audit") == 6
    [session] = rows(store, "SELECT * FROM sessions")
    assert session["id"] == "s1"
    assert session["status"] == "closed"
    assert session["end_reason"] == "client quit"
    assert session["identity"] == "alice"
    assert [r["text"] for r in store.statements("s1")] == ["SELECT 1", "SELECT 2"]


def test_statement_started_and_ended_in_one_checkpoint_is_one_full_row(
    store: SqliteStore,
) -> None:
    store.apply([session_open("s1"), statement_start("s1", 1, "SELECT 42", params="'x'")])
    store.apply([statement_end("s1", 1, rows=7, command="SELECT 7")])
    store.checkpoint()
    [row] = store.statements("s1")
    assert row == {
        "session_id": "s1",
        "seq": 1,
        "protocol": "simple",
        "text": "SELECT 42",
        "params": "'x'",
        "started_at": O.utc(1_790_000_001.0),
        "finished_at": O.utc(1_790_000_001.25),
        "duration_ms": 250.0,
        "status": "ok",
        "command": "SELECT 7",
        "rows": 7,
        "sqlstate": None,
        "error": None,
        "verdict": "allow",
        "rule": None,
        "approval_id": None,
        "exit_status": None,
        "masked": None,
    }


def test_statement_end_in_a_later_checkpoint_updates_the_row(store: SqliteStore) -> None:
    store.apply([session_open("s1"), statement_start("s1", 1)])
    store.checkpoint()
    assert store.statements("s1")[0]["status"] == "running"
    store.apply([statement_end("s1", 1, status="error", sqlstate="22012", error="boom")])
    store.apply([session_close("s1")])
    store.checkpoint()
    [row] = store.statements("s1")
    assert (row["status"], row["sqlstate"], row["error"]) == ("error", "22012", "boom")
    assert store.find_session("s1")["status"] == "closed"  # type: ignore[index]
    assert verify(store).ok


def test_checkpoint_with_nothing_pending_is_harmless(store: SqliteStore) -> None:
    store.checkpoint()
    store.checkpoint()
    assert count(store, "audit") == 0


def test_audit_chain_links_each_record_to_the_one_before(store: SqliteStore) -> None:
    store.apply(a_session("s1", statements=1))
    store.checkpoint()
    audit = store.conn.execute("SELECT seq, prev, hash FROM audit ORDER BY seq").fetchall()
    assert [seq for seq, _, _ in audit] == [1, 2, 3, 4]
    assert audit[0][1] == GENESIS
    for (_, _, before), (_, prev, _) in itertools.pairwise(audit):
        assert prev == before
    assert len({h for _, _, h in audit}) == 4


def test_readers_see_checkpointed_records(store: SqliteStore, db_path: Path) -> None:
    store.apply(a_session("abc123"))
    store.checkpoint()
    reader = open_store(db_path, readonly=True)
    try:
        assert reader.journal is None
        assert [s["id"] for s in reader.sessions()] == ["abc123"]
        assert reader.sessions()[0]["statements"] == 2
        assert reader.find_session("abc")["id"] == "abc123"  # type: ignore[index]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.conn.execute("DELETE FROM audit")
    finally:
        reader.close()


def test_find_session_prefix(store: SqliteStore) -> None:
    store.apply([session_open("abc1"), session_open("abc2"), session_open("abd")])
    store.checkpoint()
    assert store.find_session("abd")["id"] == "abd"  # type: ignore[index]
    assert store.find_session("zzz") is None
    with pytest.raises(StoreError, match="ambiguous"):
        store.find_session("abc")


# --- crash and replay ------------------------------------------------------------------------


def test_reopen_replays_what_was_not_checkpointed(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply([session_open("s1"), statement_start("s1", 1)])
    first.checkpoint()
    first.apply([statement_end("s1", 1, rows=3), statement_start("s1", 2, "SELECT 'late'")])
    crash(first)
    assert len(journal_lines(db_path)) == 2

    second = open_store(db_path)
    try:
        assert journal_path(db_path).stat().st_size == 0
        assert second.pending == 0
        assert [(r["seq"], r["status"], r["rows"], r["text"]) for r in second.statements("s1")] == [
            (1, "ok", 3, "SELECT 1"),
            (2, "running", None, "SELECT 'late'"),
        ]
        assert count(second, "audit") == 4
        assert second.interrupted_sessions() == ["s1"]
        assert verify(second).ok
    finally:
        second.close()


def test_chain_head_continues_across_reopen(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply([session_open("s1"), statement_start("s1", 1)])
    crash(first)

    second = open_store(db_path)
    last_hash = second.conn.execute("SELECT hash FROM audit WHERE seq = 2").fetchone()[0]
    second.apply([statement_end("s1", 1), session_close("s1")])
    second.close()

    third = open_store(db_path)
    try:
        audit = third.conn.execute("SELECT seq, prev FROM audit ORDER BY seq").fetchall()
        assert [seq for seq, _ in audit] == [1, 2, 3, 4]
        assert audit[2][1] == last_hash
        result = verify(third)
        assert result.ok, result.problems
        assert result.records == 4
    finally:
        third.close()


def test_replay_skips_records_already_checkpointed(db_path: Path) -> None:
    # A crash between the checkpoint's COMMIT and the journal's truncation.
    first = open_store(db_path)
    first.apply([session_open("s1"), statement_start("s1", 1)])
    saved = journal_path(db_path).read_bytes()
    first.checkpoint()
    crash(first)
    journal_path(db_path).write_bytes(saved)

    second = open_store(db_path)
    try:
        assert count(second, "audit") == 2
        assert verify(second).ok
        second.apply([statement_end("s1", 1)])
        second.checkpoint()
        assert verify(second).ok
    finally:
        second.close()


def test_torn_last_journal_line_is_ignored(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply([session_open("s1")])
    first.apply([statement_start("s1", 1)])
    crash(first)
    data = journal_path(db_path).read_bytes()
    journal_path(db_path).write_bytes(data[:-10])  # the second write was torn

    second = open_store(db_path)
    try:
        assert count(second, "sessions") == 1
        assert count(second, "statements") == 0
        assert verify(second).ok
    finally:
        second.close()


def test_records_after_a_torn_tail_survive_the_next_crash(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply([session_open("s1")])
    first.checkpoint()
    first.apply([statement_start("s1", 1, "SELECT 'torn'")])
    crash(first)
    data = journal_path(db_path).read_bytes()
    journal_path(db_path).write_bytes(data[:15])  # crash in the middle of that write

    second = open_store(db_path)
    second.apply([statement_start("s1", 1, "SELECT 'acknowledged'")])
    crash(second)

    third = open_store(db_path)
    try:
        assert [r["text"] for r in third.statements("s1")] == ["SELECT 'acknowledged'"]
    finally:
        third.close()


def rejected(store: SqliteStore) -> list[tuple[object, ...]]:
    return store.conn.execute(
        "SELECT source, seq, kind, session_id, torn, reason FROM rejected ORDER BY id").fetchall()


def test_journal_that_does_not_continue_the_chain_is_kept_aside(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply([session_open("s1")])
    first.checkpoint()
    first.apply([statement_start("s1", 1)])
    crash(first)
    line = journal_lines(db_path)[0].split(b"\t")
    line[4] = b"f" * 64  # prev no longer names record 1's hash
    journal_path(db_path).write_bytes(b"\t".join(line) + b"\n")
    second = open_store(db_path)
    try:
        assert rejected(second) == [(
            "gatewatch.db.journal", 2, O.STATEMENT_START, "s1", 0,
            "does not continue the audit chain (its head is record 1)")]
        kept = second.conn.execute("SELECT data FROM rejected").fetchone()[0]
        assert kept == b"\t".join(line) + b"\n"  # as it was found
        assert journal_path(db_path).stat().st_size == 0
        result = verify(second)
        assert result.problems == [
            "journal record 2 (statement.start, session s1) could not be replayed into the"
            " store: does not continue the audit chain (its head is record 1); kept in the"
            " store's rejected table (id 1) by the replay of " + result.problems[0][-19:]]
        second.apply([statement_start("s1", 1, "SELECT 'after'")])  # the chain goes on
        second.checkpoint()
        assert count(second, "audit") == 2
        assert len(verify(second).problems) == 1
    finally:
        second.close()


def test_journal_record_edited_before_replay_is_kept_aside(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply([session_open("s1"), statement_start("s1", 1, "DROP TABLE audit_me")])
    crash(first)
    data = journal_path(db_path).read_bytes()
    journal_path(db_path).write_bytes(data.replace(b"DROP TABLE audit_me", b"SELECT 'harmless'"))
    second = open_store(db_path)
    try:
        assert [r[1:] for r in rejected(second)] == [
            (2, O.STATEMENT_START, "s1", 0, "does not match its hash (edited)")]
        assert count(second, "statements") == 0
        [problem] = verify(second).problems
        assert problem.startswith("journal record 2 (statement.start, session s1) could not be"
                                  " replayed into the store: does not match its hash (edited)")
    finally:
        second.close()


# --- failing closed --------------------------------------------------------------------------


def fill_up(store: SqliteStore) -> None:
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.writer.execute(f"PRAGMA max_page_count = {pages}")


def test_full_database_fails_closed_and_loses_nothing(store: SqliteStore) -> None:
    store.apply([session_open("s1"), statement_start("s1", 1)])
    store.checkpoint()
    fill_up(store)
    big = "SELECT '" + "x" * 3000 + "'"
    store.apply([statement_start("s1", n, big) for n in range(2, 40)])
    with pytest.raises(StoreError, match="database or disk is full"):
        store.checkpoint()
    assert store.pending == 38

    # The next commit is refused: a statement that cannot be recorded must not run.
    head = store.conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
    with pytest.raises(StoreError, match="full"):
        store.apply([statement_start("s1", 99, "SELECT 'refused'")])
    assert store.pending == 38
    assert store.conn.execute("SELECT max(seq) FROM audit").fetchone()[0] == head

    store.writer.execute("PRAGMA max_page_count = 1000000")
    store.checkpoint()
    assert store.pending == 0
    seqs = [r["seq"] for r in store.statements("s1")]
    assert seqs == list(range(1, 40))
    assert count(store, "audit") == 40
    result = verify(store)
    assert result.ok, result.problems
    # And the store takes new records again, continuing the chain.
    store.apply([statement_start("s1", 40)])
    store.checkpoint()
    assert verify(store).ok


def test_refused_batch_is_not_in_the_journal(store: SqliteStore, db_path: Path) -> None:
    store.apply([session_open("s1")])
    store.checkpoint()
    fill_up(store)
    store.apply([statement_start("s1", n, "x" * 3000) for n in range(1, 30)])
    with pytest.raises(StoreError):
        store.checkpoint()
    before = journal_path(db_path).read_bytes()
    with pytest.raises(StoreError):
        store.apply([statement_start("s1", 100)])
    assert journal_path(db_path).read_bytes() == before
    store.writer.execute("PRAGMA max_page_count = 1000000")
    store.checkpoint()
    assert 100 not in [r["seq"] for r in store.statements("s1")]


def test_unwritable_journal_raises_store_error_and_keeps_the_chain(
    store: SqliteStore,
) -> None:
    store.apply([session_open("s1")])
    assert store.journal is not None
    real_fd = store.journal._fd
    store.journal._fd = -1  # every write now fails with EBADF
    try:
        with pytest.raises(StoreError, match="cannot write to the store journal"):
            store.apply([statement_start("s1", 1)])
    finally:
        store.journal._fd = real_fd
    store.apply([statement_start("s1", 1, "SELECT 'after'")])
    store.checkpoint()
    assert [r["text"] for r in store.statements("s1")] == ["SELECT 'after'"]
    assert verify(store).ok
