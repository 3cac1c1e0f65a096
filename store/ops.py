"""The changes the engine writes, one per event, in the order they happened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

SESSION_OPEN = "session.open"
SESSION_CLOSE = "session.close"
STATEMENT_START = "statement.start"
STATEMENT_END = "statement.end"

KINDS = (SESSION_OPEN, SESSION_CLOSE, STATEMENT_START, STATEMENT_END)

# The columns each kind of op writes; verify checks the tables against exactly these.
SESSION_OPEN_FIELDS = (
    "protocol",
    "connection",
    "identity",
    "identity_kind",
    "client_addr",
    "application_name",
    "database",
    "started_at",
    "status",
)
SESSION_CLOSE_FIELDS = ("ended_at", "status", "end_reason")
STATEMENT_START_FIELDS = ("protocol", "text", "params", "started_at", "status")
STATEMENT_END_FIELDS = (
    "finished_at",
    "duration_ms",
    "status",
    "command",
    "rows",
    "sqlstate",
    "error",
)


class Op(NamedTuple):
    kind: str
    session_id: str
    ref: int  # the statement's sequence number within its session; 0 for session ops
    fields: dict[str, Any]


def utc(ts: float) -> str:
    """Store times as ISO 8601 in UTC, to the microsecond."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")
