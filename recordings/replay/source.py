"""What the replay reads from the store.

``session_info`` gives a recorded session's times and state (``SessionInfo``). The rest — the
chunk list *without* the bytes (an index over 100 MB must not read them), the bytes of a seq
range filtered to the channels shown, and a session's approval requests — is SQL, so it lives
in ``store/reads.py``; the names below let the replay's modules go on reading it as
``source.chunk_rows`` and so on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from recordings.sessions import find_session
from store import SqliteStore, reads

terminal_channels = reads.terminal_channels
chunk_rows = reads.chunk_rows
chunk_bytes = reads.chunk_bytes
approvals = reads.session_approvals
statements = reads.session_statements  # with each one's outcome (withdrawn, not denied)


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
    """The session by its id or an unambiguous prefix of at least 4 characters
    (``StoreError`` when shorter or ambiguous)."""
    row = find_session(store, session_id)  # at least 4 characters, as everywhere
    if row is None:
        raise SessionNotFound(f"no recorded session {session_id!r}: "
                              "see `gatewatch sessions` for the ids")
    started = epoch(row["started_at"])
    assert started is not None
    return SessionInfo(id=row["id"], protocol=row["protocol"], started=started,
                       ended=epoch(row.get("ended_at")), status=row["status"],
                       end_reason=row.get("end_reason"), masked=counts(row.get("masked")))
