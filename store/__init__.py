"""Persistence for Gatewatch: sessions, statements and the audit chain.

The engine and the CLI/TUI speak to the store only through this package. ``SqliteStore`` keeps
one SQLite file in WAL mode (readers never block the single writer). Every change is written as
an ``Op``; ``apply`` writes a batch of them in one transaction (the recorder's group commit) and
appends one audit record per op, each hashing its predecessor, so that ``verify`` can tell
whether anything was edited, removed or inserted afterwards.
"""

from store import reads
from store.ops import Op
from store.sqlite import SqliteStore, StoreError, open_store
from store.verify import VerifyResult, verify

__all__ = ["Op", "SqliteStore", "StoreError", "VerifyResult", "open_store", "reads", "verify"]
