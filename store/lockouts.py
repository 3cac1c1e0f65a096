"""Lock-outs in the store: written from their records, read by the engine and the CLI, and
checked by ``verify`` against the audit chain.

A ``lockout.set`` record inserts a row; ``lockout.lift`` fills its ``lifted_*`` columns. Whether a
lock-out is in force is derived (not lifted, ``until`` still ahead), never stored, so that a
lock-out that simply ran out needs no record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from store import ops as O

if TYPE_CHECKING:
    from store.journal import JournalRecord
    from store.sqlite import SqliteStore

_INSERT = (
    "INSERT INTO lockouts (id, identity, connection, until, created_at, created_by, reason,"
    " session_id) VALUES (:id, :identity, :connection, :until, :created_at, :created_by,"
    " :reason, :session_id)"
)
_LIFT = (
    "UPDATE lockouts SET lifted_at = :lifted_at, lifted_by = :lifted_by,"
    " lift_reason = :lift_reason WHERE id = :id"
)


def write(conn: sqlite3.Connection,
          records: Iterable[tuple[JournalRecord, dict[str, Any]]]) -> None:
    """Apply a checkpoint's lock-out records, in order, inside its transaction."""
    for record, fields in records:
        if record.kind == O.LOCKOUT_SET:
            conn.execute(_INSERT, {**fields, "id": record.session_id})
        elif record.kind == O.LOCKOUT_LIFT:
            conn.execute(_LIFT, {**fields, "id": record.session_id})


def lockouts(store: SqliteStore, *, in_force_at: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
    """Newest first; ``in_force_at``: only those neither lifted nor ended at that time (ISO
    8601 UTC, as ``store.ops.utc`` writes it)."""
    if in_force_at is None:
        return list(store.db.query(
            "SELECT * FROM lockouts ORDER BY created_at DESC LIMIT ?", [limit]))
    return list(store.db.query(
        "SELECT * FROM lockouts WHERE lifted_at IS NULL AND until > ?"
        " ORDER BY created_at DESC LIMIT ?", [in_force_at, limit]))


def compare(store: SqliteStore, chained: dict[str, dict[str, Any]],
            problems: list[str]) -> None:
    """Each row of the lockouts table must say what the chain's records say, and each
    chained lock-out must have its row."""
    seen: set[str] = set()
    for row in store.db.query("SELECT * FROM lockouts"):
        seen.add(row["id"])
        expected = chained.get(row["id"])
        if expected is None:
            problems.append(f"lock-out {row['id']}: not in the audit (inserted later)")
            continue
        for name, value in expected.items():
            if row.get(name) != value:
                problems.append(f"lock-out {row['id']}: {name} differs from the audit")
                break
    for lid in chained:
        if lid not in seen:
            problems.append(f"lock-out {lid}: recorded in the audit but missing")
