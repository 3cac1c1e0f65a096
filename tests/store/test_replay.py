"""Journal replay never drops what it cannot apply: it keeps it in the ``rejected`` table and
``verify`` fails naming it (a torn write, never acknowledged, is only a note)."""

from __future__ import annotations

from pathlib import Path

from store import SqliteStore, open_store, verify
from store import ops as O
from store.sqlite import journal_path
from tests.store.sample import (
    a_session,
    crash,
    session_close,
    session_open,
    statement_end,
    statement_start,
)


def rejected(store: SqliteStore) -> list[tuple[object, ...]]:
    return store.conn.execute(
        "SELECT source, seq, kind, session_id, torn, reason FROM rejected ORDER BY id").fetchall()


def test_records_whose_place_another_writer_took_are_kept_and_verify_fails(
    db_path: Path,
) -> None:
    """Issue 15: a second engine wrote its own records into the running engine's store; the
    first engine's committed records (an approved DELETE that ran) were skipped at replay as
    if they were already in, and verify said ok."""
    first = open_store(db_path)
    first.apply(a_session("s1"))
    first.checkpoint()  # audit 1-6
    first.apply([session_open("s2"), statement_start("s2", 1, "DELETE FROM orders")])
    crash(first)  # audit 7-8 are in the journal only
    journal = journal_path(db_path)
    journal.rename(journal.with_name("aside"))
    second = open_store(db_path)  # as the second engine did: its own records 7 and 8
    second.apply([session_open("s3"), session_close("s3", "engine restarted")])
    second.close()
    journal.with_name("aside").rename(journal)

    third = open_store(db_path)
    try:
        assert rejected(third) == [
            ("gatewatch.db.journal", 7, O.SESSION_OPEN, "s2", 0,
             "audit record 7 is another record"),
            ("gatewatch.db.journal", 8, O.STATEMENT_START, "s2", 0,
             "audit record 8 is another record"),
        ]
        result = verify(third)
        assert len(result.problems) == 2
        assert result.problems[1].startswith(
            "journal record 8 (statement.start, session s2) could not be replayed into the"
            " store: audit record 8 is another record; kept in the store's rejected table (id 2)")
        data = third.conn.execute("SELECT data FROM rejected WHERE seq = 8").fetchone()[0]
        assert b"DELETE FROM orders" in data
    finally:
        third.close()


def test_a_torn_write_is_kept_as_a_note(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply([session_open("s1")])
    first.apply([statement_start("s1", 1, "SELECT 'torn'")])
    crash(first)
    journal = journal_path(db_path)
    data = journal.read_bytes()
    journal.write_bytes(data[:-10])  # the second write was cut short
    cut_at = data.index(b"\n") + 1
    second = open_store(db_path)
    assert [r[1:] for r in rejected(second)] == [
        (None, None, None, 1, f"record 2 was cut short (from byte {cut_at})")]
    assert second.statements("s1") == []
    result = verify(second)
    assert result.ok, result.problems
    [note] = result.notes
    assert note.startswith(
        f"{len(data) - 10 - cut_at} bytes of gatewatch.db.journal: a write cut short by a crash"
        f" (record 2 was cut short (from byte {cut_at})), never acknowledged with durability:"
        " full; kept in the store's rejected table (id 1)")
    second.apply([statement_start("s1", 1, "SELECT 'next'")])  # appended on a clean line
    crash(second)
    third = open_store(db_path)
    try:
        assert [r["text"] for r in third.statements("s1")] == ["SELECT 'next'"]
        assert len(rejected(third)) == 1
    finally:
        third.close()


def test_lines_that_are_not_records_are_kept_with_what_follows(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply([session_open("s1")])
    first.apply([statement_start("s1", 1)])
    first.apply([statement_end("s1", 1)])
    crash(first)
    journal = journal_path(db_path)
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(lines[0] + b"garbage\n" + lines[1] + lines[2])
    second = open_store(db_path)
    try:
        [(source, seq, _, _, torn, reason)] = rejected(second)
        assert (source, seq, torn) == ("gatewatch.db.journal", None, 0)
        assert reason == (f"line 2 and what follows are not journal records (from byte"
                          f" {len(lines[0])})")
        kept = second.conn.execute("SELECT data FROM rejected").fetchone()[0]
        assert kept == b"garbage\n" + lines[1] + lines[2]
        assert [s["id"] for s in second.sessions()] == ["s1"]
        [problem] = verify(second).problems
        assert problem.startswith(f"{len(kept)} bytes of gatewatch.db.journal could not be"
                                  " replayed into the store: line 2 and what follows")
    finally:
        second.close()


def test_records_after_a_lost_journal_file_do_not_continue_and_are_kept(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply([session_open("s1")])
    assert first.start_checkpoint() is not None  # rotated to .journal.1; the job never runs
    first.apply([statement_start("s1", 1)])
    crash(first)
    journal_path(db_path).with_name("gatewatch.db.journal.1").unlink()
    second = open_store(db_path)
    try:
        assert [r[1:] for r in rejected(second)] == [
            (2, O.STATEMENT_START, "s1", 0,
             "does not continue the audit chain (its head is record 0)")]
        assert not verify(second).ok
    finally:
        second.close()


def test_records_in_two_journal_files_are_applied_once(db_path: Path) -> None:
    first = open_store(db_path)
    first.apply([session_open("s1"), statement_start("s1", 1)])
    assert first.start_checkpoint() is not None
    journal = journal_path(db_path)
    journal.write_bytes(journal.with_name("gatewatch.db.journal.1").read_bytes())
    first.journal.reopen()  # type: ignore[union-attr]
    first.apply([statement_end("s1", 1)])
    crash(first)
    second = open_store(db_path)
    try:
        assert rejected(second) == []
        assert second.conn.execute("SELECT count(*) FROM audit").fetchone() == (3,)
        assert verify(second).ok
    finally:
        second.close()
