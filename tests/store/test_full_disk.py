"""A store on a file system with no space left: the journal cannot take a commit, so the batch
is refused with the chain head left as it was; nothing committed is lost, and commits go on
once there is space again. A small tmpfs stands in for the full disk (root only: without it
the test skips, or fails with GATEWATCH_REQUIRE_INTEGRATION=1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store import StoreError, open_store, verify
from tests.fullfs import fill, tmpfs
from tests.store.sample import a_session, session_open, statement_start


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "fs", "1m") as mount:
        yield mount


def test_a_full_disk_refuses_commits_and_loses_nothing(small_fs: Path) -> None:
    store = open_store(small_fs / "gatewatch.db")
    try:
        store.apply(a_session("s1"))
        store.checkpoint()
        store.apply([session_open("s2")])  # committed before the disk filled
        filler = fill(small_fs)
        head = store._seq
        big = "SELECT '" + "x" * 8192 + "'"  # more than the journal's last page can hold
        with pytest.raises(StoreError,
                           match=r"cannot write to the store journal .*(No space|disk full)"):
            store.apply([statement_start("s2", 1, big)])
        assert store._seq == head  # the chain head did not move: nothing half-committed
        with pytest.raises(StoreError):
            store.checkpoint()  # SQLite has no room either; the records stay in the journal
        assert store.pending == 1
        filler.unlink()
        store.apply([statement_start("s2", 1, big)])
        store.checkpoint()
        assert [s["id"] for s in store.sessions()] == ["s2", "s1"]
        assert [r["text"] for r in store.statements("s2")] == [big]
        result = verify(store)
        assert result.ok, result.problems
    finally:
        store.close()
