"""``store.backup``: a copy of a store a writer goes on writing — the database through SQLite's
online backup, the journal's records it lacks beside it — that verifies and that an engine
can start on."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest

from store import SqliteStore, StoreError, open_store, verify
from store.backup import backup
from store.sqlite import journal_path
from tests.store.sample import a_session, session_open, statement_start


def test_a_backup_holds_the_database_and_the_journal_beside_it(
    store: SqliteStore, tmp_path: Path,
) -> None:
    store.apply(a_session("s1"))
    store.checkpoint()
    store.apply([session_open("s2"), statement_start("s2", 1, "DELETE FROM orders")])
    dest = tmp_path / "backup.db"
    made = backup(store.path, dest)
    assert (made.records, made.journal, made.unreadable) == (6, 2, 0)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal_path(dest).stat().st_mode) == 0o600
    copy = open_store(dest, readonly=True)
    try:
        result = verify(copy)
        assert result.ok and (result.records, result.pending) == (6, 2)
    finally:
        copy.close()
    restored = open_store(dest)  # an engine started on it replays the journal
    try:
        assert [r["text"] for r in restored.statements("s2")] == ["DELETE FROM orders"]
        assert verify(restored).ok
    finally:
        restored.close()


def test_a_backup_never_overwrites(store: SqliteStore, tmp_path: Path) -> None:
    dest = tmp_path / "backup.db"
    dest.write_text("precious\n")
    with pytest.raises(StoreError, match="exists: give the backup a new name"):
        backup(store.path, dest)
    assert dest.read_text() == "precious\n"


def test_a_backup_beside_a_busy_writer_misses_nothing(store: SqliteStore, tmp_path: Path) -> None:
    store.apply([session_open("s1")])
    done = threading.Event()
    committed: list[int] = []

    def write() -> None:
        n = 0
        while not done.is_set():
            n += 1
            store.apply([statement_start("s1", n, f"SELECT {n}")])
            committed.append(n)
            if n % 50 == 0:  # checkpoints as the engine makes them: rotate, move, remove
                job = store.start_checkpoint()
                if job is not None:
                    store.finish_checkpoint(job())

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(committed) < 200:
            time.sleep(0.001)
        before = len(committed)
        made = backup(store.path, tmp_path / "backup.db")
    finally:
        done.set()
        writer.join()
    assert made.records + made.journal >= before + 1
    copy = open_store(tmp_path / "backup.db", readonly=True)
    try:
        result = verify(copy)
        assert result.ok, result.problems
    finally:
        copy.close()
