"""Recompute the audit chain and check that the tables say what the chain says."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from store import ops as O
from store.chain import GENESIS, link
from store.sqlite import SqliteStore


@dataclass
class VerifyResult:
    records: int = 0
    sessions: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems




PROGRESS_EVERY = 10_000  # audit records between calls of ``progress``


def verify(store: SqliteStore, session_id: str | None = None,
           progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Walk the whole chain (links are global), compare tables for one session or all.
    ``progress(n)`` is called as each ``n`` more audit records have been checked."""
    result = VerifyResult()
    sessions: dict[str, dict[str, Any]] = {}
    statements: dict[tuple[str, int], dict[str, Any]] = {}
    approvals: dict[str, dict[str, Any]] = {}
    output: dict[tuple[str, int], dict[str, Any]] = {}
    expected_seq = 0
    head = GENESIS
    cur = store.conn.execute(
        "SELECT seq, kind, session_id, ref, body, prev, hash FROM audit ORDER BY seq"
    )
    for seq, kind, sid, ref, body, prev, stored_hash in cur:
        expected_seq += 1
        result.records += 1
        if progress is not None and result.records % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
        where = f"audit record {seq} ({kind}, session {sid})"
        if seq != expected_seq:
            result.problems.append(f"audit record {expected_seq} is missing (next is {seq})")
            return result
        if prev != head:
            result.problems.append(f"{where}: does not link to the record before it")
            return result
        head = link(prev, seq, kind, sid, ref, body.encode())
        if head != stored_hash:
            result.problems.append(f"{where}: content does not match its hash (edited)")
            return result
        fields = json.loads(body)
        if kind in (O.SESSION_OPEN, O.SESSION_CLOSE):
            sessions.setdefault(sid, {}).update(fields)
        elif kind in (O.STATEMENT_START, O.STATEMENT_END):
            statements.setdefault((sid, ref), {}).update(fields)
        elif kind in (O.APPROVAL_REQUEST, O.APPROVAL_UPDATE):
            approvals.setdefault(sid, {}).update(fields)
        elif kind == O.SSH_OUTPUT:
            output[(sid, ref)] = fields
        else:
            result.problems.append(f"{where}: unknown kind of record")
            return result
    _compare_tables(store, sessions, statements, session_id, result)
    _compare_approvals(store, approvals, session_id, result)
    _compare_output(store, output, session_id, result)
    result.sessions = len(sessions) if session_id is None else int(session_id in sessions)
    return result


def _compare_tables(
    store: SqliteStore,
    sessions: dict[str, dict[str, Any]],
    statements: dict[tuple[str, int], dict[str, Any]],
    session_id: str | None,
    result: VerifyResult,
) -> None:
    where_sql, args = ("WHERE id = ?", [session_id]) if session_id else ("", [])
    seen: set[str] = set()
    for row in store.db.query(f"SELECT * FROM sessions {where_sql}", args):
        sid = row["id"]
        seen.add(sid)
        expected = sessions.get(sid)
        if expected is None:
            result.problems.append(f"session {sid}: in the sessions table but not in the audit")
            continue
        for name, value in expected.items():
            if row.get(name) != value:
                result.problems.append(f"session {sid}: {name} differs from the audit record")
                break
    for sid in sessions:
        if (session_id is None or sid == session_id) and sid not in seen:
            result.problems.append(f"session {sid}: recorded in the audit but missing")
    where_sql = "WHERE session_id = ?" if session_id else ""
    seen_statements: set[tuple[str, int]] = set()
    for row in store.db.query(f"SELECT * FROM statements {where_sql}", args):
        key: tuple[str, int] = (row["session_id"], row["seq"])
        seen_statements.add(key)
        expected = statements.get(key)
        if expected is None:
            result.problems.append(
                f"statement {key[1]} of session {key[0]}: not in the audit (inserted later)"
            )
            continue
        for name, value in expected.items():
            if row.get(name) != value:
                result.problems.append(
                    f"statement {key[1]} of session {key[0]}: {name} differs from the audit"
                )
                break
    for sid_seq in statements:
        if (session_id is None or sid_seq[0] == session_id) and sid_seq not in seen_statements:
            result.problems.append(f"statement {sid_seq[1]} of session {sid_seq[0]}: missing")


def _compare_approvals(
    store: SqliteStore,
    approvals: dict[str, dict[str, Any]],
    session_id: str | None,
    result: VerifyResult,
) -> None:
    where_sql, args = ("WHERE session_id = ?", [session_id]) if session_id else ("", [])
    seen: set[str] = set()
    for row in store.db.query(f"SELECT * FROM approvals {where_sql}", args):
        seen.add(row["id"])
        expected = approvals.get(row["id"])
        if expected is None:
            result.problems.append(f"approval {row['id']}: not in the audit (inserted later)")
            continue
        for name, value in expected.items():
            if row.get(name) != value:
                result.problems.append(f"approval {row['id']}: {name} differs from the audit")
                break
    for aid, fields in approvals.items():
        if (session_id is None or fields.get("session_id") == session_id) and aid not in seen:
            result.problems.append(f"approval {aid}: recorded in the audit but missing")


def _compare_output(
    store: SqliteStore,
    output: dict[tuple[str, int], dict[str, Any]],
    session_id: str | None,
    result: VerifyResult,
) -> None:
    """Each recorded chunk of SSH bytes must be the one whose size and SHA-256 the chain holds."""
    where_sql, args = ("WHERE session_id = ?", [session_id]) if session_id else ("", [])
    seen: set[tuple[str, int]] = set()
    rows = store.conn.execute(
        f"SELECT session_id, seq, t, channel, stream, data FROM ssh_output {where_sql}", args)
    for sid, seq, t, channel, stream, data in rows:
        key = (sid, seq)
        seen.add(key)
        expected = output.get(key)
        if expected is None:
            result.problems.append(f"output chunk {seq} of session {sid}: not in the audit")
        elif (expected["size"] != len(data)
              or expected["sha256"] != hashlib.sha256(data).hexdigest()
              or (expected["t"], expected["channel"], expected["stream"]) != (t, channel, stream)):
            result.problems.append(f"output chunk {seq} of session {sid}: differs from the audit")
    for key in output:
        if (session_id is None or key[0] == session_id) and key not in seen:
            result.problems.append(f"output chunk {key[1]} of session {key[0]}: missing")
