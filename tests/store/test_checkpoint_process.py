"""The checkpoint process: a threaded checkpoint's SQLite work is done outside the engine's
interpreter, and whenever the process cannot do it the engine does, with nothing lost or
written twice."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import SqliteStore, StoreError, StoreLocked, open_store, verify
from store.lock import StoreLock
from tests.store.sample import session_open, statement_end, statement_start


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    """A writer whose checkpoint process is ready (until then the engine writes the jobs)."""
    s = open_store(db_path)
    assert s._process is not None and s._process.wait_ready()
    yield s
    s.close()


def run_job(store: SqliteStore) -> StoreError | None:
    """One threaded checkpoint, as the recorder runs it."""
    job = store.start_checkpoint()
    assert job is not None
    result: list[StoreError | None] = []
    thread = threading.Thread(target=lambda: result.append(job()))
    thread.start()
    thread.join()
    store.finish_checkpoint(result[0])
    return result[0]


def test_the_process_writes_the_threaded_checkpoint(store: SqliteStore) -> None:
    store.apply([session_open("s1"), statement_start("s1", 1), statement_end("s1", 1)])
    before = store.writer.total_changes
    assert run_job(store) is None
    assert store.writer.total_changes == before  # not a row written by the engine itself
    assert store._process is not None and store._process._proc is not None
    assert store.statements("s1")[0]["status"] == "ok"
    assert store.journal is not None and not store.journal.rotated()
    result = verify(store)
    assert result.ok, result.problems


def test_a_killed_process_leaves_the_job_to_the_engine(store: SqliteStore) -> None:
    store.apply([session_open("s1")])
    assert run_job(store) is None
    assert store._process is not None and store._process._proc is not None
    killed = store._process._proc
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    store.apply([statement_start("s1", 1)])
    before = store.writer.total_changes
    assert run_job(store) is None
    assert store.writer.total_changes > before  # written here, from the records in memory
    assert [r["seq"] for r in store.statements("s1")] == [1]
    store._process._retry_at = 0.0  # later, a new process takes the checkpoints again
    assert store._process.wait_ready()
    store.apply([statement_end("s1", 1)])
    before = store.writer.total_changes
    assert run_job(store) is None
    assert store.writer.total_changes == before
    assert store._process._proc is not None and store._process._proc.pid != killed.pid
    assert store.statements("s1")[0]["status"] == "ok"
    assert verify(store).ok


def test_records_the_files_lack_are_written_from_memory(store: SqliteStore) -> None:
    store.apply([session_open("s1"), statement_start("s1", 1)])
    job = store.start_checkpoint()
    assert job is not None and store.journal is not None
    for rotated in store.journal.rotated():
        rotated.unlink()
    store.finish_checkpoint(job())
    assert [r["seq"] for r in store.statements("s1")] == [1]
    assert verify(store).ok


def test_a_record_edited_in_the_files_is_not_what_is_written(store: SqliteStore) -> None:
    store.apply([session_open("s1"), statement_start("s1", 1, "SELECT 1")])
    job = store.start_checkpoint()
    assert job is not None and store.journal is not None
    [rotated] = store.journal.rotated()
    rotated.write_bytes(rotated.read_bytes().replace(b"SELECT 1", b"SELECT 2"))
    store.finish_checkpoint(job())
    assert [r["text"] for r in store.statements("s1")] == ["SELECT 1"]
    assert verify(store).ok


def test_records_the_process_committed_are_not_written_again(store: SqliteStore) -> None:
    """The process commits, then ends before it replies: the engine finds them there."""
    store.apply([session_open("s1")])
    job = store.start_checkpoint()
    assert job is not None and store._process is not None
    records = store._job
    assert records is not None
    assert job() is None  # committed by the process
    store._process.kill()
    store._process._retry_at = float("inf")  # it is not started again for this job
    assert store._offloaded(records, {}) is None  # no duplicate key error: already there
    store.finish_checkpoint(None)
    assert verify(store).ok


def test_the_process_holds_the_node_lock(db_path: Path) -> None:
    store = open_store(db_path)
    assert store._process is not None and store._process.wait_ready()
    store.apply([session_open("s1")])
    assert run_job(store) is None
    assert store._process is not None and store._lock is not None
    store._lock.release()  # the engine's descriptor closed, as at its death
    with pytest.raises(StoreLocked):
        StoreLock.acquire(db_path, store.node)  # its checkpoint process may still write
    store._process.kill()
    StoreLock.acquire(db_path, store.node).release()
    store.conn.close()
    assert store.journal is not None
    store.journal.close()


def test_a_database_error_in_the_process_breaks_the_store_until_it_succeeds(
        store: SqliteStore) -> None:
    store.apply([session_open("s1")])
    store.conn.execute("CREATE TRIGGER no_sessions BEFORE INSERT ON sessions"
                       " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    failed = run_job(store)
    assert isinstance(failed, StoreError) and "refused by a trigger" in str(failed)
    assert store.broken is not None and store.pending == 1
    store.conn.execute("DROP TRIGGER no_sessions")
    assert run_job(store) is None
    assert store.broken is None and [s["id"] for s in store.sessions()] == ["s1"]
    assert verify(store).ok
