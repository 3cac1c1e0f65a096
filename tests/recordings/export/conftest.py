"""A writer store (the engine's side) and a read-only one (the CLI's side) on the same file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store import SqliteStore, open_store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gatewatch.db"


@pytest.fixture
def writer(db_path: Path) -> Iterator[SqliteStore]:
    s = open_store(db_path)
    yield s
    s.close()


@pytest.fixture
def reader(writer: SqliteStore, db_path: Path) -> Iterator[SqliteStore]:
    s = open_store(db_path, readonly=True)
    yield s
    s.close()
