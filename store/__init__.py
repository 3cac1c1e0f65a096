"""Persistence for Gatewatch: sessions, statements and the audit chain.

The engine and the CLI/TUI speak to the store only through this package. ``SqliteStore`` keeps
one SQLite file in WAL mode (readers never block the single writer). Every change is written as
an ``Op``; ``apply`` commits a batch of them with one append to the journal (``journal.py``),
one audit record per op, each hashing its predecessor (``chain.py``), and checkpoints move them
into SQLite in bulk, so that ``verify`` can tell whether anything was edited, removed or
inserted afterwards.

The writer is the engine alone: it holds the store's lock (``lock.py``) from before it touches
the store until it closes it, and keeps the store's files private (``files.py``); readers never
lock. Replay after a crash keeps what it cannot apply in the ``rejected`` table, and ``backup``
copies a store while the engine writes it.
"""

from store import reads
from store.ops import Op
from store.sqlite import SqliteStore, StoreError, open_store
from store.verify import VerifyResult, verify

__all__ = ["Op", "SqliteStore", "StoreError", "VerifyResult", "open_store", "reads", "verify"]
