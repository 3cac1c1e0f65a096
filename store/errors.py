"""The store's errors: each message is one sentence for the operator, saying what to do."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be opened or written; the message is for the operator."""


class StoreLocked(StoreError):
    """Another engine holds the store (ARCHITECTURE.md invariant 12); the message names the
    store and the process that holds it."""


class ExposedStore(StoreError):
    """The store or its directory is open to other users; the message gives the command that
    fixes it."""
