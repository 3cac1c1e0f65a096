"""A recorded session named by the operator: its whole id, or a unique prefix of at least
``MIN_PREFIX`` characters — the rule the engine's control API keeps for ``kill`` and
``approve``, kept here for every command that reads the store (``show``, ``replay``,
``export``, ``verify``): one rule everywhere, and one character never picks a session
(issue 16: ``kill c`` killed one)."""

from __future__ import annotations

from typing import Any

from store import SqliteStore, StoreError

MIN_PREFIX = 4


def find_session(store: SqliteStore, ref: str) -> dict[str, Any] | None:
    """The session ``ref`` names (None: none does). ``StoreError`` for a prefix shorter than
    ``MIN_PREFIX`` or one several sessions share, saying what to give instead."""
    session = store.find_session(ref)
    if session is not None and session["id"] != ref and len(ref) < MIN_PREFIX:
        raise StoreError(f"session id {ref!r} is too short: give at least {MIN_PREFIX} of its "
                         "characters")
    return session
