"""The changes the engine writes, one per event, in the order they happened."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, NamedTuple

SESSION_OPEN = "session.open"
SESSION_CLOSE = "session.close"
STATEMENT_START = "statement.start"
STATEMENT_END = "statement.end"
APPROVAL_REQUEST = "approval.request"
APPROVAL_UPDATE = "approval.update"
# A chunk of an SSH session's bytes. The op carries them in ``blob``; its fields (and so the
# audit chain) carry their size and SHA-256.
SSH_OUTPUT = "ssh.output"
# An operator keeps an identity out (of every connection, or of one) until a time; lifted early.
LOCKOUT_SET = "lockout.set"
LOCKOUT_LIFT = "lockout.lift"
# The engine's own records, kept in the audit chain only (no table of their own): records the
# audit stream could not deliver (``engine.audit_stream``), and a policy reload or its refusal.
AUDIT_GAP = "audit.gap"
POLICY_RELOAD = "policy.reload"

KINDS = (SESSION_OPEN, SESSION_CLOSE, STATEMENT_START, STATEMENT_END, APPROVAL_REQUEST,
         APPROVAL_UPDATE, SSH_OUTPUT, LOCKOUT_SET, LOCKOUT_LIFT, AUDIT_GAP, POLICY_RELOAD)
CHAIN_ONLY = (AUDIT_GAP, POLICY_RELOAD)

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
    "target",
    "identity_vendor",
)
SESSION_CLOSE_FIELDS = ("ended_at", "status", "end_reason", "masked")
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
    "exit_status",
    "masked",
)
SSH_OUTPUT_FIELDS = ("t", "channel", "stream", "size", "sha256")
LOCKOUT_SET_FIELDS = (
    "identity", "connection", "until", "created_at", "created_by", "reason", "session_id",
)
LOCKOUT_LIFT_FIELDS = ("lifted_at", "lifted_by", "lift_reason")
AUDIT_GAP_FIELDS = ("first_seq", "last_seq", "dropped", "at", "reason")
POLICY_RELOAD_FIELDS = ("at", "by", "path", "sha256", "status", "error", "changed")
# Streams of ssh.output: o (stdout/terminal), e (stderr), i (input on channels without a
# terminal), r (window size "COLSxROWS").
STREAMS = ("o", "e", "i", "r")


class Op(NamedTuple):
    kind: str
    session_id: str  # for approval ops: the approval request's id
    ref: int  # the statement's (or output chunk's) number within its session; 0 for sessions
    fields: dict[str, Any]
    blob: bytes | None = None  # ssh.output: the bytes themselves


def output_op(session_id: str, ref: int, t: float, channel: int, stream: str,
              data: bytes) -> Op:
    return Op(SSH_OUTPUT, session_id, ref,
              {"t": round(t, 6), "channel": channel, "stream": stream, "size": len(data),
               "sha256": hashlib.sha256(data).hexdigest()}, data)


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
