"""What a checkpoint writes: a batch of journal records folded into rows and inserted into the
database in one transaction, with their audit records.

Shared by the engine's own checkpoints (start, shutdown, replay, and whenever the checkpoint
process is not there: ``store/sqlite.py``) and the checkpoint process that does them while
the engine runs (``store/checkpointer.py``), so that both write exactly the same rows.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from store import lockouts
from store import ops as O
from store.journal import JournalRecord, Leftover

BUSY_ATTEMPTS = 20  # a checkpoint tries again while other nodes' writes keep SQLite busy



def busy(exc: Exception) -> bool:
    """SQLite's write lock stayed with another node's process beyond the busy timeout (or
    PostgreSQL chose this transaction to break a deadlock): worth trying again."""
    return any(word in str(exc) for word in ("locked", "busy", "deadlock"))


_SESSION_INSERT = (
    "INSERT INTO sessions (id, protocol, connection, identity, identity_kind, client_addr,"
    " application_name, database, started_at, status, ended_at, end_reason, target, masked,"
    " identity_vendor, node)"
    " VALUES (:id, :protocol, :connection, :identity, :identity_kind, :client_addr,"
    " :application_name, :database, :started_at, :status, :ended_at, :end_reason, :target,"
    " :masked, :identity_vendor, :node)"
)
# A session's own node closes it as often as it likes (the last close stands); another node
# (ending a lost node's sessions) only while it is still open: a node's own close, replayed
# from its journal after that, still stands. ``verify`` folds the chains by the same rule.
_SESSION_CLOSE = (
    "UPDATE sessions SET ended_at = :ended_at, status = :status, end_reason = :end_reason,"
    " masked = :masked WHERE id = :id AND (node = :writer OR ended_at IS NULL)"
)
_STATEMENT_INSERT = (
    "INSERT INTO statements (session_id, seq, protocol, text, params, started_at, status,"
    " verdict, rule, approval_id, finished_at, duration_ms, command, rows, sqlstate, error,"
    " exit_status, masked)"
    " VALUES (:id, :ref, :protocol, :text, :params, :started_at, :status,"
    " :verdict, :rule, :approval_id,"
    " :finished_at, :duration_ms, :command, :rows, :sqlstate, :error, :exit_status, :masked)"
)
_APPROVAL_INSERT = (
    "INSERT INTO approvals (id, session_id, requester, connection, statement, statement_hash,"
    " rule, reason, created_at, expires_at, status, approvals, decided_at, decided_by,"
    " decision_reason, node) VALUES (:id, :session_id, :requester, :connection, :statement,"
    " :statement_hash, :rule, :reason, :created_at, :expires_at, :status, :approvals,"
    " :decided_at, :decided_by, :decision_reason, :node)"
)
# Updates apply while the request is pending; once decided, only its own node's decisions
# (never another node's expiry of a lost node's requests) change it again.
_APPROVAL_UPDATE = (
    "UPDATE approvals SET status = :status, approvals = :approvals, decided_at = :decided_at,"
    " decided_by = :decided_by, decision_reason = :decision_reason WHERE id = :id"
    " AND (status = 'pending' OR (node = :writer AND :status <> 'pending'))"
)
_STATEMENT_END = (
    "UPDATE statements SET finished_at = :finished_at, duration_ms = :duration_ms,"
    " status = :status, command = :command, rows = :rows, sqlstate = :sqlstate, error = :error,"
    " exit_status = :exit_status, masked = :masked WHERE session_id = :id AND seq = :ref"
)
_OUTPUT_INSERT = (
    "INSERT INTO ssh_output (session_id, seq, t, channel, stream, data) VALUES (?,?,?,?,?,?)"
)
_SESSION_CLOSED = {**dict.fromkeys(O.SESSION_CLOSE_FIELDS), "target": None,
                   "identity_vendor": None}
_STATEMENT_ENDED = dict.fromkeys(O.STATEMENT_END_FIELDS)
_STATEMENT_JUDGED = {"verdict": "allow", "rule": None, "approval_id": None}
_APPROVAL_OPEN = dict.fromkeys(O.APPROVAL_UPDATE_FIELDS)

_Rows = dict[Any, dict[str, Any]]


class Merged(NamedTuple):
    sessions: _Rows
    statements: _Rows
    session_updates: list[dict[str, Any]]
    statement_updates: list[dict[str, Any]]
    approvals: _Rows
    approval_updates: list[dict[str, Any]]
    output: list[tuple[Any, ...]]


def merge(pending: list[tuple[JournalRecord, dict[str, Any]]], node: str) -> Merged:
    """Fold a checkpoint's records (of ``node``'s chain) into one row per session and
    statement: a statement that started and ended since the last checkpoint is one INSERT
    instead of INSERT + UPDATE."""
    sessions: _Rows = {}
    statements: _Rows = {}
    session_updates: list[dict[str, Any]] = []
    statement_updates: list[dict[str, Any]] = []
    approvals: _Rows = {}
    approval_updates: list[dict[str, Any]] = []
    output: list[tuple[Any, ...]] = []
    for record, fields in pending:
        kind, sid, ref = record.kind, record.session_id, record.ref
        if kind == O.SSH_OUTPUT:
            output.append((sid, ref, fields["t"], fields["channel"], fields["stream"],
                           record.blob or b""))
        elif kind == O.STATEMENT_START:
            statements[(sid, ref)] = {**_STATEMENT_ENDED, **_STATEMENT_JUDGED, **fields,
                                      "id": sid, "ref": ref}
        elif kind == O.STATEMENT_END:
            row = statements.get((sid, ref))
            if row is not None:
                row.update(fields)
            else:
                statement_updates.append({**_STATEMENT_ENDED, **fields, "id": sid, "ref": ref})
        elif kind == O.SESSION_OPEN:
            sessions[sid] = {**_SESSION_CLOSED, **fields, "id": sid, "node": node}
        elif kind == O.SESSION_CLOSE:
            row = sessions.get(sid)
            if row is not None:
                row.update(fields)
            else:
                session_updates.append({**_SESSION_CLOSED, **fields, "id": sid,
                                        "writer": node})
        elif kind == O.APPROVAL_REQUEST:
            approvals[sid] = {**_APPROVAL_OPEN, **fields, "id": sid, "node": node}
        elif kind == O.APPROVAL_UPDATE:
            row = approvals.get(sid)
            if row is not None:
                if row["status"] == "pending" or fields.get("status") != "pending":
                    row.update(fields)
            else:
                approval_updates.append({**_APPROVAL_OPEN, **fields, "id": sid,
                                         "writer": node})
    return Merged(sessions, statements, session_updates, statement_updates, approvals,
                   approval_updates, output)

_AUDIT = (
    "INSERT INTO audit (node, seq, kind, session_id, ref, body, prev, hash)"
    " VALUES (?,?,?,?,?,?,?,?)"
)
_REJECTED = (
    "INSERT INTO rejected (found_at, source, seq, kind, session_id, torn, reason, data)"
    " VALUES (?,?,?,?,?,?,?,?)"
)


class Rejected(NamedTuple):
    """What replay found in the journal and could not apply, kept as it was found."""

    source: str  # the journal file's name
    seq: int | None
    kind: str | None
    session_id: str | None
    torn: bool  # a write a crash cut short
    reason: str
    data: bytes

    @classmethod
    def record(cls, source: Path, record: JournalRecord, reason: str) -> Rejected:
        return cls(source.name, record.seq, record.kind, record.session_id, False, reason,
                   record.line())

    @classmethod
    def leftover(cls, found: Leftover) -> Rejected:
        return cls(found.path.name, None, None, None, found.torn,
                   f"{found.reason} (from byte {found.offset})", found.data)

    def row(self, found_at: str) -> tuple[Any, ...]:
        return (found_at, self.source, self.seq, self.kind, self.session_id, int(self.torn),
                self.reason, self.data)


def write_once(conn: sqlite3.Connection, node: str,
               records: list[tuple[JournalRecord, dict[str, Any]]], merged: Merged,
               rejected: Iterable[Rejected] = (),
               errors: tuple[type[Exception], ...] = (sqlite3.Error,)) -> Exception | None:
    """Insert ``records`` (of ``node``'s chain), folded into ``merged``, and ``rejected`` in
    one transaction taken up front (BEGIN IMMEDIATE: another node's write is waited for within
    the busy timeout); the error the database raised (one of ``errors``), or None once
    committed."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_SESSION_INSERT, merged.sessions.values())
        conn.executemany(_SESSION_CLOSE, merged.session_updates)
        conn.executemany(_STATEMENT_INSERT, merged.statements.values())
        conn.executemany(_STATEMENT_END, merged.statement_updates)
        conn.executemany(_APPROVAL_INSERT, merged.approvals.values())
        conn.executemany(_APPROVAL_UPDATE, merged.approval_updates)
        conn.executemany(_OUTPUT_INSERT, merged.output)
        lockouts.write(conn, records)
        conn.executemany(_AUDIT, [
            (node, r.seq, r.kind, r.session_id, r.ref, r.body, r.prev, r.hash)
            for r, _ in records
        ])
        found_at = O.utc(time.time())
        conn.executemany(_REJECTED, [r.row(found_at) for r in rejected])
        conn.execute("COMMIT")
    except errors as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return exc
    return None
