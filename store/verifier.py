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
from store.journal import JournalSnapshot
from store.lockouts import compare as compare_lockouts
from store.nodes import default_node
from store.sqlite import SqliteStore


@dataclass
class VerifyResult:
    records: int = 0
    sessions: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # true and worth saying, not failures
    pending: int = 0  # records committed to the journal, not yet in the tables
    chains: dict[str, int] = field(default_factory=dict)  # audit records per node's chain

    @property
    def ok(self) -> bool:
        return not self.problems


PROGRESS_EVERY = 10_000  # audit records between calls of ``progress``


def verify(store: SqliteStore, session_id: str | None = None,
           progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Walk every node's whole chain (links are per node), compare tables for one session or
    all, then the journals beside the store and the rejected records. ``progress(n)`` is
    called as each ``n`` more audit records have been checked."""
    journals = store.journal_snapshots()  # before the database: see _check_journal
    result = VerifyResult()
    began = store.begin_read()
    try:
        heads = _walk_chains(store, session_id, progress, result)
        for node, journal in journals.items():
            if result.ok:
                head_seq, head = heads.get(node, (0, store.genesis(node)))
                _check_journal(store, node, journal, head_seq, head, result)
        _check_rejected(store, result)
    finally:
        if began:
            store.end_read()
    return result


class _Folded:
    """What the chains say the tables hold, folded as the checkpoints apply them: a
    session's (or request's) own node's records in its chain's order; another node's close
    (or expiry) only while the session is still open (the request still pending)."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.session_node: dict[str, str] = {}
        self.closes: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.statements: dict[tuple[str, int], dict[str, Any]] = {}
        self.approvals: dict[str, dict[str, Any]] = {}
        self.approval_node: dict[str, str] = {}
        self.decisions: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.output: dict[tuple[str, int], dict[str, Any]] = {}
        self.lockouts: dict[str, dict[str, Any]] = {}

    def add(self, node: str, kind: str, sid: str, ref: int, fields: dict[str, Any]) -> bool:
        if kind == O.SESSION_OPEN:
            self.sessions.setdefault(sid, {}).update(fields)
            self.session_node[sid] = node
        elif kind == O.SESSION_CLOSE:
            self.closes.setdefault(sid, []).append((node, fields))
        elif kind in (O.STATEMENT_START, O.STATEMENT_END):
            self.statements.setdefault((sid, ref), {}).update(fields)
        elif kind == O.APPROVAL_REQUEST:
            self.approvals.setdefault(sid, {}).update(fields)
            self.approval_node[sid] = node
        elif kind == O.APPROVAL_UPDATE:
            self.decisions.setdefault(sid, []).append((node, fields))
        elif kind == O.SSH_OUTPUT:
            self.output[(sid, ref)] = fields
        elif kind in (O.LOCKOUT_SET, O.LOCKOUT_LIFT):
            self.lockouts.setdefault(sid, {}).update(fields)
        elif kind not in O.CHAIN_ONLY:  # chain-only: the chain's hash is the whole check
            return False
        return True

    def finish(self) -> None:
        for sid, closes in self.closes.items():
            row = self.sessions.setdefault(sid, {})
            owner = self.session_node.get(sid)
            own = [f for n, f in closes if n == owner]
            for fields in own or sorted((f for _, f in closes),
                                        key=lambda f: str(f.get("ended_at")))[:1]:
                row.update(fields)
        for aid, decisions in self.decisions.items():
            row = self.approvals.setdefault(aid, {})
            owner = self.approval_node.get(aid)
            for node, fields in sorted(decisions, key=lambda d: d[0] != owner):  # own first
                if row.get("status") == "pending" or (
                        node == owner and fields.get("status") != "pending"):
                    row.update(fields)


def _walk_chains(store: SqliteStore, session_id: str | None,
                 progress: Callable[[int], None] | None,
                 result: VerifyResult) -> dict[str, tuple[int, str]]:
    """Each node's chain in order, then the tables against them; returns each chain's head."""
    folded = _Folded()
    heads: dict[str, tuple[int, str]] = {}
    node: str | None = None
    expected_seq, head = 0, GENESIS
    broken: set[str] = set()
    for node_, seq, kind, sid, ref, body, prev, stored_hash in store.audit_records():
        if node_ != node:
            node, expected_seq, head = node_, 0, store.genesis(node_)
            result.chains[node] = 0
        if node in broken:
            continue
        expected_seq += 1
        result.records += 1
        result.chains[node] += 1
        if progress is not None and result.records % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
        where = f"audit record {seq}{_of(node)} ({kind}, session {sid})"
        if seq != expected_seq:
            result.problems.append(
                f"audit record {expected_seq}{_of(node)} is missing (next is {seq})")
            broken.add(node)
            continue
        if prev != head:
            result.problems.append(f"{where}: does not link to the record before it")
            broken.add(node)
            continue
        head = link(prev, seq, kind, sid, ref, body.encode())
        if head != stored_hash:
            result.problems.append(f"{where}: content does not match its hash (edited)")
            broken.add(node)
            continue
        heads[node] = (seq, head)
        if not folded.add(node, kind, sid, ref, json.loads(body)):
            result.problems.append(f"{where}: unknown kind of record")
            broken.add(node)
    if broken:
        return heads
    folded.finish()
    _compare_tables(store, folded, session_id, result)
    _compare_approvals(store, folded, session_id, result)
    _compare_output(store, folded.output, session_id, result)
    if session_id is None:  # lock-outs belong to no one session
        compare_lockouts(store, folded.lockouts, result.problems)
    sessions = folded.sessions
    result.sessions = len(sessions) if session_id is None else int(session_id in sessions)
    return heads


def _of(node: str) -> str:
    """Which chain a message is about: said for every node but this host's default one (the
    only one of a store with a single engine)."""
    return "" if node == default_node() else f" of node {node}"


# --- the journal -----------------------------------------------------------------------------


def _check_journal(store: SqliteStore, node: str, journal: JournalSnapshot, head_seq: int,
                   head: str, result: VerifyResult) -> None:
    """The journal was read before the database's snapshot, and a record leaves the journal
    only after it is in the database: so every record committed is in the snapshot or in what
    was read of the journal, and a gap between them is a record lost."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    expected, prev = head_seq + 1, head
    pending = 0
    for file, record in journal.records:
        where = (f"journal record {record.seq} ({record.kind}, session {record.session_id})"
                 f" in {file.name}")
        if record.seq <= head_seq:
            if store.audit_hash(record.seq, node) != record.hash or link(
                    record.prev, record.seq, record.kind, record.session_id, record.ref,
                    record.body.encode()) != record.hash:
                problems.append(f"{where}: differs from audit record {record.seq} in the store")
            continue
        if record.seq < expected:
            if seen.get(record.seq) != record.hash:
                problems.append(f"{where}: differs from the journal's other record {record.seq}")
            continue
        if record.seq != expected:
            problems.append(f"audit records {expected} to {record.seq - 1}{_of(node)} are"
                            " missing: in neither the store nor its journal")
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
        pending += 1
    for leftover in journal.leftovers:
        problems.append(f"the journal file {leftover.path.name}: {leftover.reason}"
                        f" ({len(leftover.data)} bytes from byte {leftover.offset})")
    if problems and not journal.steady:
        result.notes.append("the engine rotated its journal all the time verify read it: run"
                            " verify again to check the journal")
        return
    result.problems += problems
    result.pending += pending
    if pending:
        result.notes.append(
            f"{pending} records are committed to the journal{_of(node)} and not yet in the"
            " tables: a running engine"
            " moves them within moments, a stopped one at its next start")


def _check_rejected(store: SqliteStore, result: VerifyResult) -> None:
    """What journal replay kept aside (schema 7 on; an older store has nothing there)."""
    if not store.has_table("rejected"):
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


def _compare_tables(store: SqliteStore, folded: _Folded, session_id: str | None,
                    result: VerifyResult) -> None:
    sessions, statements = folded.sessions, folded.statements
    where_sql, args = ("WHERE id = ?", [session_id]) if session_id else ("", [])
    seen: set[str] = set()
    for row in store.query(f"SELECT * FROM sessions {where_sql}", args):
        sid = row["id"]
        seen.add(sid)
        expected = sessions.get(sid)
        if expected is None or sid not in folded.session_node:
            result.problems.append(f"session {sid}: in the sessions table but not in the audit")
            continue
        if row.get("node", "") != folded.session_node[sid]:
            result.problems.append(f"session {sid}: its node differs from the audit's chain")
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
    for row in store.query(f"SELECT * FROM statements {where_sql}", args):
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


def _compare_approvals(store: SqliteStore, folded: _Folded, session_id: str | None,
                       result: VerifyResult) -> None:
    approvals = folded.approvals
    where_sql, args = ("WHERE session_id = ?", [session_id]) if session_id else ("", [])
    seen: set[str] = set()
    for row in store.query(f"SELECT * FROM approvals {where_sql}", args):
        seen.add(row["id"])
        expected = approvals.get(row["id"])
        if expected is None or row["id"] not in folded.approval_node:
            result.problems.append(f"approval {row['id']}: not in the audit (inserted later)")
            continue
        if row.get("node", "") != folded.approval_node[row["id"]]:
            result.problems.append(f"approval {row['id']}: its node differs from the audit's"
                                   " chain")
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
    rows = store.stream(
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
