"""A fresh writer store per test, in its own directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store import SqliteStore, open_store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gatewatch.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    s = open_store(db_path)
    yield s
    s.close()
