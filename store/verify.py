"""Recompute the audit chain and check that the tables — and the journal — say what it says.

``verify`` never says ok while a record is missing. It checks, in one read transaction (so a
running engine's checkpoints cannot make the tables and the chain disagree mid-way):

- the audit chain: every sequence number from 1 with no gap, each record linked to the one
  before it, each hash recomputed;
- the tables against the chain (sessions, statements, approvals, SSH output);
- the journal beside the store, read before the database: its records already moved into the
  database must be the same records, and those not yet moved must continue the chain from
  the database's head with no gap (they are what the engine has committed and a statement may
  have been forwarded on); bytes that are not records fail;
- the ``rejected`` table, where journal replay keeps what it could not apply: each record
  kept there fails, naming it; a torn write (a crash in the middle of one, never acknowledged
  with ``durability: full``) is a note.

A journal that a running engine rotates while it is read is read again; its last, incomplete
line is a write in progress and is left for the engine (or the next replay).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from store import ops as O
from store.chain import GENESIS, link
from store.journal import JournalSnapshot, read_snapshot
from store.lockouts import compare as compare_lockouts
from store.sqlite import SqliteStore, journal_path


@dataclass
class VerifyResult:
    records: int = 0
    sessions: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # true and worth saying, not failures
    pending: int = 0  # records committed to the journal, not yet in the tables

    @property
    def ok(self) -> bool:
        return not self.problems


PROGRESS_EVERY = 10_000  # audit records between calls of ``progress``


def verify(store: SqliteStore, session_id: str | None = None,
           progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Walk the whole chain (links are global), compare tables for one session or all, then
    the journal and the rejected records (global too). ``progress(n)`` is called as each
    ``n`` more audit records have been checked."""
    journal = read_snapshot(journal_path(store.path))  # before the database: see _check_journal
    result = VerifyResult()
    began = not store.conn.in_transaction
    if began:
        store.conn.execute("BEGIN")
    try:
        head_seq, head = _walk_chain(store, session_id, progress, result)
        if result.ok:
            _check_journal(store, journal, head_seq, head, result)
        _check_rejected(store, result)
    finally:
        if began:
            store.conn.execute("COMMIT")
    return result


def _walk_chain(store: SqliteStore, session_id: str | None,
                progress: Callable[[int], None] | None, result: VerifyResult) -> tuple[int, str]:
    """The chain's records in order, then the tables against them; returns the head."""
    sessions: dict[str, dict[str, Any]] = {}
    statements: dict[tuple[str, int], dict[str, Any]] = {}
    approvals: dict[str, dict[str, Any]] = {}
    output: dict[tuple[str, int], dict[str, Any]] = {}
    lockouts: dict[str, dict[str, Any]] = {}
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
            return seq, head
        if prev != head:
            result.problems.append(f"{where}: does not link to the record before it")
            return seq, head
        head = link(prev, seq, kind, sid, ref, body.encode())
        if head != stored_hash:
            result.problems.append(f"{where}: content does not match its hash (edited)")
            return seq, head
        fields = json.loads(body)
        if kind in (O.SESSION_OPEN, O.SESSION_CLOSE):
            sessions.setdefault(sid, {}).update(fields)
        elif kind in (O.STATEMENT_START, O.STATEMENT_END):
            statements.setdefault((sid, ref), {}).update(fields)
        elif kind in (O.APPROVAL_REQUEST, O.APPROVAL_UPDATE):
            approvals.setdefault(sid, {}).update(fields)
        elif kind == O.SSH_OUTPUT:
            output[(sid, ref)] = fields
        elif kind in (O.LOCKOUT_SET, O.LOCKOUT_LIFT):
            lockouts.setdefault(sid, {}).update(fields)
        elif kind in O.CHAIN_ONLY:
            pass  # no table says otherwise: the chain's hash is the whole check
        else:
            result.problems.append(f"{where}: unknown kind of record")
            return seq, head
    _compare_tables(store, sessions, statements, session_id, result)
    _compare_approvals(store, approvals, session_id, result)
    _compare_output(store, output, session_id, result)
    if session_id is None:  # lock-outs belong to no one session
        compare_lockouts(store, lockouts, result.problems)
    result.sessions = len(sessions) if session_id is None else int(session_id in sessions)
    return expected_seq, head


# --- the journal -----------------------------------------------------------------------------


def _check_journal(store: SqliteStore, journal: JournalSnapshot, head_seq: int, head: str,
                   result: VerifyResult) -> None:
    """The journal was read before the database's snapshot, and a record leaves the journal
    only after it is in the database: so every record committed is in the snapshot or in what
    was read of the journal, and a gap between them is a record lost."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    expected, prev = head_seq + 1, head
    for file, record in journal.records:
        where = (f"journal record {record.seq} ({record.kind}, session {record.session_id})"
                 f" in {file.name}")
        if record.seq <= head_seq:
            if store.audit_hash(record.seq) != record.hash or link(
                    record.prev, record.seq, record.kind, record.session_id, record.ref,
                    record.body.encode()) != record.hash:
                problems.append(f"{where}: differs from audit record {record.seq} in the store")
            continue
        if record.seq < expected:
            if seen.get(record.seq) != record.hash:
                problems.append(f"{where}: differs from the journal's other record {record.seq}")
            continue
        if record.seq != expected:
            problems.append(f"audit records {expected} to {record.seq - 1} are missing: in"
                            " neither the store nor its journal")
            break
        if record.prev != prev:
            problems.append(f"{where}: does not link to the record before it")
            break
        if link(record.prev, record.seq, record.kind, record.session_id, record.ref,
                record.body.encode()) != record.hash:
            problems.append(f"{where}: content does not match its hash (edited)")
            break
        seen[record.seq] = record.hash
        expected, prev = record.seq + 1, record.hash
        result.pending += 1
    for leftover in journal.leftovers:
        problems.append(f"the journal file {leftover.path.name}: {leftover.reason}"
                        f" ({len(leftover.data)} bytes from byte {leftover.offset})")
    if problems and not journal.steady:
        result.notes.append("the engine rotated its journal all the time verify read it: run"
                            " verify again to check the journal")
        return
    result.problems += problems
    if result.pending:
        result.notes.append(
            f"{result.pending} records are committed to the journal and not yet in the"
            " tables: a running engine moves them within moments, a stopped one at its next"
            " start")


def _check_rejected(store: SqliteStore, result: VerifyResult) -> None:
    """What journal replay kept aside (schema 7 on; an older store has nothing there)."""
    has_table = store.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rejected'").fetchone()
    if not has_table:
        return
    rows = store.conn.execute(
        "SELECT id, found_at, source, seq, kind, session_id, torn, reason, length(data)"
        " FROM rejected ORDER BY id")
    for rid, found_at, source, seq, kind, sid, torn, reason, size in rows:
        what = (f"journal record {seq} ({kind}, session {sid})" if seq is not None
                else f"{size} bytes of {source}")
        kept = f"kept in the store's rejected table (id {rid}) by the replay of {found_at[:19]}"
        if torn:
            result.notes.append(f"{what}: a write cut short by a crash ({reason}), never"
                                f" acknowledged with durability: full; {kept}")
        else:
            result.problems.append(f"{what} could not be replayed into the store: {reason};"
                                   f" {kept}")


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
