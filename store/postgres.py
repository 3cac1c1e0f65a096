"""The PostgreSQL store (``engine.store: postgresql://USER@HOST:PORT/DB``): in progress."""

from __future__ import annotations

from store.errors import StoreError
from store.sqlite import SqliteStore


def open_postgres(dsn: str, *, node: str | None = None, durability: str = "normal",
                  readonly: bool = False) -> SqliteStore:
    raise StoreError("the PostgreSQL store is not available yet: use a SQLite store path")
