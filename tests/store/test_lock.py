"""One writer per store (ARCHITECTURE.md invariant 12): the lock a writer takes before it
touches anything, what a second writer is told, and readers that never lock."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from store import SqliteStore, StoreError, open_store, verify
from store.errors import StoreLocked
from store.lock import lock_path
from store.sqlite import journal_path
from tests.store.sample import a_session, session_open, statement_start


def snapshot(db_path: Path) -> dict[str, bytes]:
    """Every file of the store, byte for byte (the lock file aside: it is the lock)."""
    return {p.name: p.read_bytes() for p in sorted(db_path.parent.iterdir())
            if p.name != lock_path(db_path).name}


def test_the_writer_holds_a_lock_that_names_it(store: SqliteStore, db_path: Path) -> None:
    assert lock_path(db_path) == db_path.with_name("gatewatch.db.lock")
    assert lock_path(db_path).read_text() == f"{os.getpid()} {socket.gethostname()}\n"


def test_a_second_writer_is_refused_and_the_first_is_not_touched(
    store: SqliteStore, db_path: Path,
) -> None:
    store.apply(a_session("s1"))
    store.checkpoint()
    store.apply([session_open("s2"), statement_start("s2", 1, "DELETE FROM orders")])
    before = snapshot(db_path)
    with pytest.raises(StoreLocked) as refused:
        open_store(db_path)
    assert str(refused.value) == (
        f"the store {db_path} is in use by another engine (process {os.getpid()} on"
        f" {socket.gethostname()}): stop that one first, or give this one a store of its own"
        " (engine.store)")
    assert isinstance(refused.value, StoreError)
    assert snapshot(db_path) == before  # no replay, no migration, nothing written
    store.apply([statement_start("s2", 2)])  # the first goes on recording
    store.checkpoint()
    assert [r["seq"] for r in store.statements("s2")] == [1, 2]
    assert verify(store).ok


def test_readers_never_lock(store: SqliteStore, db_path: Path) -> None:
    store.apply(a_session("s1"))
    store.checkpoint()
    readers = [open_store(db_path, readonly=True) for _ in range(3)]
    try:
        assert all(r.sessions()[0]["id"] == "s1" for r in readers)
        assert verify(readers[0]).ok
    finally:
        for reader in readers:
            reader.close()
    store.apply([session_open("s2")])  # and the writer never waited for them


def test_close_releases_the_lock(db_path: Path) -> None:
    first = open_store(db_path)
    first.close()
    assert lock_path(db_path).read_text() == ""  # no PID left to mislead anyone
    second = open_store(db_path)
    second.close()


def test_a_refused_open_leaves_no_lock_behind(db_path: Path) -> None:
    first = open_store(db_path)
    first.conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    first.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(db_path)
    with pytest.raises(StoreError, match="newer"):
        open_store(db_path)  # not "in use by another engine"


HOLD = """
import sys, time
from pathlib import Path
from store import open_store
store = open_store(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(60)
"""


def test_a_killed_writer_leaves_no_stale_lock(db_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db_path)], cwd=root,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(StoreLocked, match=f"process {holder.pid} on"):
            open_store(db_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    again = open_store(db_path)  # the kernel released it with the process
    again.close()


def test_a_removed_lock_file_is_taken_again(store: SqliteStore, db_path: Path) -> None:
    store.apply([session_open("s1")])
    lock_path(db_path).unlink()
    store.checkpoint()  # notices, and locks a new file at the path
    assert lock_path(db_path).exists()
    with pytest.raises(StoreLocked):
        open_store(db_path)


def test_a_removed_lock_file_another_engine_took_stops_the_writer(
    store: SqliteStore, db_path: Path,
) -> None:
    store.apply([session_open("s1")])
    lock_path(db_path).unlink()
    other = os.open(lock_path(db_path), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with pytest.raises(StoreError, match="another engine took the store"):
            store.checkpoint()
        with pytest.raises(StoreError, match="until it holds the lock again"):
            store.apply([statement_start("s1", 1)])
        assert b"statement.start" not in journal_path(db_path).read_bytes()
    finally:
        os.close(other)
    store.checkpoint()  # free again: it takes the lock and goes on
    store.apply([statement_start("s1", 1)])
    store.checkpoint()
    assert verify(store).ok
