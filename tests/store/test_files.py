"""The store's files are the engine's user's alone (ARCHITECTURE.md invariant 12): created 0600
in a 0700 directory whatever the umask, and a writer refuses a store others can read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import open_store
from store.errors import ExposedStore
from tests.store.sample import a_session, session_open


@pytest.fixture(params=[0o022, 0o000, 0o277], ids=["umask-022", "umask-000", "umask-277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}


def test_a_fresh_store_is_private_whatever_the_umask(umask: int, db_path: Path) -> None:
    store = open_store(db_path)
    try:
        store.apply(a_session("s1"))
        assert store.start_checkpoint() is not None  # a rotated journal file, too
        store.apply([session_open("s2")])
        assert modes(db_path.parent) == {
            "gatewatch.db": 0o600, "gatewatch.db-wal": 0o600, "gatewatch.db-shm": 0o600,
            "gatewatch.db.journal": 0o600, "gatewatch.db.journal.1": 0o600,
            "gatewatch.db.lock": 0o600}
        assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
    finally:
        store.finish_checkpoint(None)
        store.close()


def test_a_store_others_can_read_is_refused_with_the_fix(db_path: Path) -> None:
    open_store(db_path).close()
    db_path.chmod(0o644)
    wal = db_path.with_name("gatewatch.db-wal")
    wal.touch()
    wal.chmod(0o640)
    with pytest.raises(ExposedStore) as refused:
        open_store(db_path)
    assert str(refused.value) == (
        f"the store {db_path} is readable by other users (gatewatch.db is 0644,"
        f" gatewatch.db-wal is 0640): refusing to start; run `chmod 600 {db_path} {wal}`"
        " (and consider what they may have read)")
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o644  # told, not changed behind its back
    open_store(db_path, readonly=True).close()  # readers do not judge


def test_a_directory_others_can_enter_is_refused_with_the_fix(db_path: Path) -> None:
    open_store(db_path).close()
    db_path.parent.chmod(0o755)
    with pytest.raises(ExposedStore) as refused:
        open_store(db_path)
    assert str(refused.value) == (
        f"the store {db_path} is readable by other users (its directory is 0755): refusing"
        f" to start; run `chmod 700 {db_path.parent}` (and consider what they may have read)")
    db_path.parent.chmod(0o700)
    open_store(db_path).close()


def test_a_shared_directory_is_not_chmodded_but_left(db_path: Path) -> None:
    db_path.parent.mkdir(mode=0o755)
    (db_path.parent / "notes.txt").write_text("someone else's\n")
    with pytest.raises(ExposedStore, match=r"a directory shared with other users .mode 0755.:"
                       " give it a directory of its own"):
        open_store(db_path)
    assert not db_path.exists()  # refused before anything was created


def test_an_existing_private_directory_is_used_as_it_is(tmp_path: Path) -> None:
    directory = tmp_path / "private"
    directory.mkdir(mode=0o700)
    store = open_store(directory / "gatewatch.db")
    store.close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
