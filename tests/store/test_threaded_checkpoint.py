"""Checkpoints in a worker thread: the journal rotates, commits go on, nothing is lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from store import StoreError, open_store, verify
from store.sqlite import journal_path
from tests.store.sample import crash, session_open, statement_end, statement_start


def count(db: Path, table: str) -> int:
    store = open_store(db, readonly=True)
    try:
        return int(store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        store.close()


def test_commits_go_on_while_a_checkpoint_runs(db_path: Path) -> None:
    store = open_store(db_path)
    store.apply([session_open("s1"), statement_start("s1", 1)])
    job = store.start_checkpoint()
    assert job is not None
    assert store.start_checkpoint() is None  # one at a time
    store.apply([statement_end("s1", 1)])  # lands in the fresh journal
    result: list[StoreError | None] = []
    thread = threading.Thread(target=lambda: result.append(job()))
    thread.start()
    thread.join()
    store.finish_checkpoint(result[0])
    assert result == [None]
    assert store.pending == 1
    assert store.journal is not None and not store.journal.rotated()
    store.checkpoint()
    assert store.statements("s1")[0]["status"] == "ok"
    assert verify(store).ok
    store.close()


def test_a_crash_during_a_threaded_checkpoint_loses_nothing(db_path: Path) -> None:
    store = open_store(db_path)
    store.apply([session_open("s1"), statement_start("s1", 1)])
    assert store.start_checkpoint() is not None  # rotated; the job never runs
    store.apply([statement_end("s1", 1)])
    assert journal_path(db_path).with_name("gatewatch.db.journal.1").exists()
    crash(store)
    again = open_store(db_path)  # replays the rotated file, then the current one
    try:
        [row] = again.statements("s1")
        assert row["status"] == "ok"
        assert again.journal is not None and not again.journal.rotated()
        assert verify(again).ok
    finally:
        again.close()


def test_a_failed_threaded_checkpoint_keeps_its_records_for_the_retry(db_path: Path) -> None:
    store = open_store(db_path)
    store.apply([session_open("s1"), statement_start("s1", 1)])
    assert store.start_checkpoint() is not None
    store.finish_checkpoint(StoreError("database or disk is full"))
    assert store.pending == 2
    store.apply([statement_end("s1", 1)])  # retries the checkpoint first, then commits
    store.checkpoint()
    assert count(db_path, "statements") == 1 and count(db_path, "audit") == 3
    store.close()


def test_commits_are_refused_while_the_retry_of_a_failed_checkpoint_runs(
        db_path: Path) -> None:
    """A broken store refuses commits until a checkpoint succeeds, also while one is running
    (then it cannot be tried here first): how long the retry takes decides nothing."""
    store = open_store(db_path)
    store.apply([session_open("s1")])
    assert store.start_checkpoint() is not None
    store.finish_checkpoint(StoreError("database or disk is full"))
    retry = store.start_checkpoint()
    assert retry is not None
    with pytest.raises(StoreError, match="disk is full"):
        store.apply([statement_start("s1", 1)])
    store.finish_checkpoint(retry())
    store.apply([statement_start("s1", 1)])
    store.checkpoint()
    assert count(db_path, "audit") == 2
    store.close()
