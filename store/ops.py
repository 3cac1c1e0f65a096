"""The changes the engine writes, one per event, in the order they happened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

SESSION_OPEN = "session.open"
SESSION_CLOSE = "session.close"
STATEMENT_START = "statement.start"
STATEMENT_END = "statement.end"
APPROVAL_REQUEST = "approval.request"
APPROVAL_UPDATE = "approval.update"

KINDS = (SESSION_OPEN, SESSION_CLOSE, STATEMENT_START, STATEMENT_END, APPROVAL_REQUEST,
         APPROVAL_UPDATE)

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
STATEMENT_START_FIELDS = (
    "protocol", "text", "params", "started_at", "status", "verdict", "rule", "approval_id",
)
APPROVAL_REQUEST_FIELDS = (
    "session_id", "requester", "connection", "statement", "statement_hash", "rule", "reason",
    "created_at", "expires_at", "status",
)
APPROVAL_UPDATE_FIELDS = ("status", "approvals", "decided_at", "decided_by", "decision_reason")
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
    session_id: str  # for approval ops: the approval request's id
    ref: int  # the statement's sequence number within its session; 0 for session ops
    fields: dict[str, Any]


_second: list[Any] = [None, ""]


def utc(ts: float) -> str:
    """Store times as ISO 8601 in UTC, to the microsecond (what isoformat gives; the formatted
    second is cached, since this runs twice per statement on the hot path)."""
    whole = int(ts)
    if _second[0] != whole:
        _second[0] = whole
        _second[1] = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    micros = round((ts - whole) * 1_000_000)
    if micros >= 1_000_000:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")
    return f"{_second[1]}.{micros:06d}+00:00"
