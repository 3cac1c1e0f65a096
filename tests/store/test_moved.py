"""Files removed from under a running writer: the store, its journal. Nothing committed is
lost: the next checkpoint puts them back, and until it can, statements are refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from store import SqliteStore, StoreError, open_store, verify
from store.sqlite import journal_path
from tests.store.sample import a_session, crash, session_open, statement_start


def texts(store: SqliteStore, sid: str) -> list[str]:
    return [r["text"] for r in store.statements(sid)]


def test_a_removed_store_file_is_written_back_from_the_open_database(
    store: SqliteStore, db_path: Path,
) -> None:
    store.apply(a_session("s1", statements=3))
    store.checkpoint()
    store.apply([session_open("s2"), statement_start("s2", 1, "DELETE FROM orders")])
    for suffix in ("", "-wal", "-shm"):
        db_path.with_name(db_path.name + suffix).unlink()
    refused = store._write_or_error([])  # a checkpoint in a worker thread writes nowhere
    assert refused is not None and "was removed or replaced while the engine ran" in str(refused)
    store.checkpoint()  # on the engine's thread: put back, then moved in
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    reader = open_store(db_path, readonly=True)
    try:
        assert texts(reader, "s1") == ["SELECT 1", "SELECT 2", "SELECT 3"]
        assert texts(reader, "s2") == ["DELETE FROM orders"]
        assert verify(reader).ok
    finally:
        reader.close()
    store.apply([statement_start("s2", 2, "SELECT 'after'")])  # and it goes on there
    store.checkpoint()
    assert texts(store, "s2") == ["DELETE FROM orders", "SELECT 'after'"]
    assert verify(store).ok


def test_the_threaded_checkpoint_puts_it_back_first(store: SqliteStore, db_path: Path) -> None:
    store.apply(a_session("s1"))
    store.checkpoint()
    store.apply([session_open("s2")])
    db_path.unlink()
    job = store.start_checkpoint()
    assert job is not None and db_path.exists()
    store.finish_checkpoint(job())
    assert [s["id"] for s in store.sessions()] == ["s2", "s1"]
    assert verify(store).ok


def test_a_store_file_replaced_by_another_is_not_written(
    store: SqliteStore, db_path: Path,
) -> None:
    store.apply([session_open("s1")])
    db_path.rename(db_path.with_name("moved.db"))
    db_path.write_bytes(b"")
    with pytest.raises(StoreError, match="replaced by another file"):
        store.checkpoint()
    with pytest.raises(StoreError, match="removed or replaced"):
        store.apply([statement_start("s1", 1)])  # statements are refused meanwhile
    job = store.start_checkpoint()
    assert job is not None
    result = job()
    assert result is not None and "replaced by another file" in str(result)
    store.finish_checkpoint(result)
    assert db_path.read_bytes() == b""
    db_path.unlink()
    db_path.with_name("moved.db").rename(db_path)  # the operator puts it back
    store.checkpoint()
    store.apply([statement_start("s1", 1)])
    store.checkpoint()
    assert verify(store).ok


def test_a_removed_journal_is_started_again_with_what_is_not_in_the_database(
    store: SqliteStore, db_path: Path,
) -> None:
    store.apply([session_open("s1")])
    store.checkpoint()
    store.apply([statement_start("s1", 1, "DELETE FROM orders")])
    journal_path(db_path).unlink()
    job = store.start_checkpoint()  # the engine's next checkpoint
    assert job is not None
    assert b"DELETE FROM orders" in journal_path(db_path).with_name(
        "gatewatch.db.journal.1").read_bytes()
    store.apply([statement_start("s1", 2, "SELECT 'after'")])
    crash(store)  # before the checkpoint's job ran: only the new journal files hold them
    again = open_store(db_path)
    try:
        assert texts(again, "s1") == ["DELETE FROM orders", "SELECT 'after'"]
        assert verify(again).ok
    finally:
        again.close()


def test_a_removed_directory_is_made_again(store: SqliteStore, db_path: Path) -> None:
    store.apply(a_session("s1"))
    store.checkpoint()
    store.apply([session_open("s2")])
    for path in db_path.parent.iterdir():
        path.unlink()
    db_path.parent.rmdir()
    store.checkpoint()
    assert stat.S_IMODE(os.stat(db_path.parent).st_mode) == 0o700
    assert {p.name for p in db_path.parent.iterdir()} >= {
        "gatewatch.db", "gatewatch.db.journal", "gatewatch.db.lock"}
    assert [s["id"] for s in store.sessions()] == ["s2", "s1"]
    assert verify(store).ok
