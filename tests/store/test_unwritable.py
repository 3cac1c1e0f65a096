"""Store files made unwritable under a running writer, with ext4's immutable flag (which stops
writes through descriptors already open, even root's; without chattr or root the tests skip,
or fail with GATEWATCH_REQUIRE_INTEGRATION=1): commits are refused while the journal cannot be
written, a directory that takes no new file moves records in place, and nothing is lost."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import SqliteStore, StoreError, verify
from store.sqlite import journal_path
from tests.conftest import REQUIRE
from tests.store.sample import a_session, session_open, statement_start


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    try:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    except FileNotFoundError:
        done = subprocess.CompletedProcess([], 1, "", "no chattr")
    if done.returncode != 0:
        reason = f"chattr +i does not work here (needs root and ext4): {done.stderr.strip()}"
        if REQUIRE:
            pytest.fail(f"GATEWATCH_REQUIRE_INTEGRATION=1 but {reason}")
        pytest.skip(reason)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_unwritable_journal_refuses_commits_until_writable(
    store: SqliteStore, db_path: Path,
) -> None:
    store.apply([session_open("s1")])
    with immutable(journal_path(db_path)):
        with pytest.raises(StoreError, match="cannot write to the store journal"):
            store.apply([statement_start("s1", 1, "DELETE FROM orders")])
    store.apply([statement_start("s1", 1, "SELECT 'after'")])
    store.checkpoint()
    assert [r["text"] for r in store.statements("s1")] == ["SELECT 'after'"]
    assert verify(store).ok


def test_a_directory_that_takes_no_new_file_checkpoints_in_place(
    store: SqliteStore, db_path: Path,
) -> None:
    store.apply(a_session("s1"))
    with immutable(db_path.parent):
        assert store.start_checkpoint() is None  # cannot rotate: moved here and now
        assert store.pending == 0 and journal_path(db_path).stat().st_size == 0
        store.apply([session_open("s2")])
        assert store.start_checkpoint() is None
    store.apply([statement_start("s2", 1)])
    job = store.start_checkpoint()  # rotates again
    assert job is not None
    store.finish_checkpoint(job())
    assert [s["id"] for s in store.sessions()] == ["s2", "s1"]
    assert verify(store).ok
