"""What the replay reads from the store, in one place.

``SqliteStore`` gives a session, its statements and its output chunks with their bytes. The
replay also needs the chunk list *without* the bytes (an index over 100 MB must not read them),
the bytes of a seq range filtered to the channels shown, and a session's approval requests:
those three queries are here, read-only, on the store's reading connection. They belong in
``store/sqlite.py`` next to ``output()``; they live here until the store grows them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store import SqliteStore

# (seq, t, channel, stream, size, data of a window-size chunk else None)
ChunkRow = tuple[int, float, int, str, int, bytes | None]


def epoch(iso: str | None) -> float | None:
    """A store time (ISO 8601, UTC) as seconds since the epoch."""
    return None if not iso else datetime.fromisoformat(iso).timestamp()


def counts(masked: str | None) -> dict[str, int]:
    """A masked-counts JSON column as a dict (empty when none or unreadable)."""
    if not masked:
        return {}
    try:
        value = json.loads(masked)
    except ValueError:
        return {}
    return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    protocol: str
    started: float  # seconds since the epoch: the session's time 0
    ended: float | None
    status: str
    end_reason: str | None
    masked: Mapping[str, int] = field(default_factory=dict)

    @property
    def length(self) -> float | None:
        """Seconds from start to end, when it has ended."""
        return None if self.ended is None else max(self.ended - self.started, 0.0)


class SessionNotFound(LookupError):
    """No recorded session has that id (the message is for the operator)."""


def session_info(store: SqliteStore, session_id: str) -> SessionInfo:
    """The session by its id or an unambiguous prefix (``StoreError`` when ambiguous)."""
    row = store.find_session(session_id)
    if row is None:
        raise SessionNotFound(f"no recorded session {session_id!r}: "
                              "see `gatewatch sessions` for the ids")
    started = epoch(row["started_at"])
    assert started is not None
    return SessionInfo(id=row["id"], protocol=row["protocol"], started=started,
                       ended=epoch(row.get("ended_at")), status=row["status"],
                       end_reason=row.get("end_reason"), masked=counts(row.get("masked")))


def terminal_channels(store: SqliteStore, session_id: str) -> list[int]:
    """Channels that recorded a window size: the ones that had a terminal (a PTY)."""
    rows = store.conn.execute(
        "SELECT DISTINCT channel FROM ssh_output WHERE session_id = ? AND stream = 'r'"
        " ORDER BY channel", (session_id,)).fetchall()
    return [int(r[0]) for r in rows]


def chunk_rows(store: SqliteStore, session_id: str, after: int,
               limit: int) -> list[ChunkRow]:
    """The next ``limit`` chunks after seq ``after``, without their bytes (``length()`` of a
    BLOB reads no overflow pages) except for window sizes, which are a few bytes."""
    return store.conn.execute(
        "SELECT seq, t, channel, stream, length(data),"
        " CASE WHEN stream = 'r' THEN data END FROM ssh_output"
        " WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (session_id, after, limit)).fetchall()


def chunk_bytes(store: SqliteStore, session_id: str, first: int, last: int,
                channels: Collection[int]) -> dict[int, bytes]:
    """The output bytes (streams o and e) of ``channels`` with ``first <= seq <= last``."""
    if not channels:
        return {}
    marks = ",".join("?" * len(channels))
    rows = store.conn.execute(
        "SELECT seq, data FROM ssh_output WHERE session_id = ? AND seq >= ? AND seq <= ?"
        f" AND stream IN ('o', 'e') AND channel IN ({marks})",
        (session_id, first, last, *channels)).fetchall()
    return {int(seq): bytes(data) for seq, data in rows}


def approvals(store: SqliteStore, session_id: str) -> list[dict[str, Any]]:
    """The session's approval requests, oldest first."""
    cur = store.conn.execute(
        "SELECT * FROM approvals WHERE session_id = ? ORDER BY created_at", (session_id,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
