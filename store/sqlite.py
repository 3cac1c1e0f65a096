"""The SQLite store: one file, WAL, one writer (the engine), any number of readers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils

from store import ops as O
from store.chain import GENESIS, canonical, link
from store.journal import Journal, JournalRecord
from store.schema import MIGRATIONS, SCHEMA_VERSION


class StoreError(Exception):
    """The store cannot be opened or written; the message is for the operator."""


_SESSION_INSERT = (
    "INSERT INTO sessions (id, protocol, connection, identity, identity_kind, client_addr,"
    " application_name, database, started_at, status, ended_at, end_reason, target, masked,"
    " identity_vendor)"
    " VALUES (:id, :protocol, :connection, :identity, :identity_kind, :client_addr,"
    " :application_name, :database, :started_at, :status, :ended_at, :end_reason, :target,"
    " :masked, :identity_vendor)"
)
_SESSION_CLOSE = (
    "UPDATE sessions SET ended_at = :ended_at, status = :status, end_reason = :end_reason,"
    " masked = :masked WHERE id = :id"
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
    " decision_reason) VALUES (:id, :session_id, :requester, :connection, :statement,"
    " :statement_hash, :rule, :reason, :created_at, :expires_at, :status, :approvals,"
    " :decided_at, :decided_by, :decision_reason)"
)
_APPROVAL_UPDATE = (
    "UPDATE approvals SET status = :status, approvals = :approvals, decided_at = :decided_at,"
    " decided_by = :decided_by, decision_reason = :decision_reason WHERE id = :id"
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


class _Merged(NamedTuple):
    sessions: _Rows
    statements: _Rows
    session_updates: list[dict[str, Any]]
    statement_updates: list[dict[str, Any]]
    approvals: _Rows
    approval_updates: list[dict[str, Any]]
    output: list[tuple[Any, ...]]


def _merge(pending: list[tuple[JournalRecord, dict[str, Any]]]) -> _Merged:
    """Fold a checkpoint's records into one row per session and statement: a statement that
    started and ended since the last checkpoint is one INSERT instead of INSERT + UPDATE."""
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
            sessions[sid] = {**_SESSION_CLOSED, **fields, "id": sid}
        elif kind == O.SESSION_CLOSE:
            row = sessions.get(sid)
            if row is not None:
                row.update(fields)
            else:
                session_updates.append({**_SESSION_CLOSED, **fields, "id": sid})
        elif kind == O.APPROVAL_REQUEST:
            approvals[sid] = {**_APPROVAL_OPEN, **fields, "id": sid}
        elif kind == O.APPROVAL_UPDATE:
            row = approvals.get(sid)
            if row is not None:
                row.update(fields)
            else:
                approval_updates.append({**_APPROVAL_OPEN, **fields, "id": sid})
    return _Merged(sessions, statements, session_updates, statement_updates, approvals,
                   approval_updates, output)

_AUDIT = "INSERT INTO audit (seq, kind, session_id, ref, body, prev, hash) VALUES (?,?,?,?,?,?,?)"


class SqliteStore:
    def __init__(self, path: Path, conn: sqlite3.Connection, *, writer: bool,
                 durability: str = "normal") -> None:
        self.path = path
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._seq, self._head = self._chain_head()
        self._pending: list[tuple[JournalRecord, dict[str, Any]]] = []
        self._broken: StoreError | None = None
        self._job: list[tuple[JournalRecord, dict[str, Any]]] | None = None  # in a thread
        self.journal: Journal | None = None
        # Checkpoints write through a connection of their own: they may run in a worker
        # thread, and a transaction there must never meet a reader's statement (sqlite-utils
        # wraps queries in savepoints) on the connection the engine reads with.
        self.writer = conn
        if writer:
            self.writer = sqlite3.connect(f"file:{path}", uri=True, isolation_level=None,
                                          check_same_thread=False, timeout=10)
            self.writer.execute("PRAGMA busy_timeout = 10000")
            self.writer.execute(
                f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
            self.journal = Journal(journal_path(path), fsync=durability == "full")
            self._replay()

    # --- writing --------------------------------------------------------------------------

    def apply(self, batch: Iterable[O.Op]) -> None:
        """Commit a batch of ops: chain them and append them to the journal in one write.

        Raises ``StoreError`` when the journal cannot be written (disk full, I/O error) or when
        the database refused the last checkpoint (for example ``database or disk is full``):
        then nothing of the batch is committed and the chain head is left as it was.
        """
        if self._broken is not None:
            self.checkpoint()
        assert self.journal is not None, "a read-only store cannot be written"
        seq, head = self._seq, self._head
        records: list[tuple[JournalRecord, dict[str, Any]]] = []
        for op in batch:
            seq += 1
            body = canonical(op.fields)
            prev, head = head, link(head, seq, op.kind, op.session_id, op.ref, body)
            records.append((JournalRecord(seq, op.kind, op.session_id, op.ref, prev, head,
                                          body.decode(), op.blob), op.fields))
        try:
            self.journal.append([r for r, _ in records])
        except OSError as exc:
            raise StoreError(f"cannot write to the store journal {self.journal.path}: "
                             f"{exc.strerror or exc}") from exc
        self._seq, self._head = seq, head
        self._pending.extend(records)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def checkpoint(self) -> None:
        """Move committed records from the journal into the database, in one transaction,
        here and now (start, shutdown, and retries after a failure)."""
        if self._job is not None:
            return  # a checkpoint is running in a worker thread: it will take these too
        if not self._pending:
            self._broken = None
            return
        records = self._pending
        self._pending = []
        self._finish(records, self._write_or_error(records), whole_journal=True)
        if self._broken is not None:
            raise self._broken

    def start_checkpoint(self) -> Callable[[], StoreError | None] | None:
        """The same, with the SQLite work done by the returned function in a worker thread
        while the engine goes on committing to a fresh journal; hand its result to
        ``finish_checkpoint``. None when there is nothing to move (or one is running)."""
        if self._job is not None or not self._pending:
            return None
        assert self.journal is not None
        records = self._pending
        self._pending = []
        try:
            self.journal.rotate()
        except OSError as exc:
            self._pending[:0] = records
            self._broken = StoreError(f"cannot rotate the store journal: {exc}")
            return None
        self._job = records
        return lambda: self._write_or_error(records)

    def finish_checkpoint(self, result: StoreError | None) -> None:
        records, self._job = self._job, None
        assert records is not None
        self._finish(records, result, whole_journal=False)

    def _finish(self, records: list[tuple[JournalRecord, dict[str, Any]]],
                result: StoreError | None, *, whole_journal: bool) -> None:
        assert self.journal is not None
        if result is not None:
            self._pending[:0] = records  # kept (and still in the journal files) for a retry
            self._broken = result
            return
        self._broken = None
        for path in self.journal.rotated():
            path.unlink(missing_ok=True)
        if whole_journal and not self._pending:
            self.journal.clear()

    def _write_or_error(self, records: list[tuple[JournalRecord, dict[str, Any]]]
                        ) -> StoreError | None:
        """Insert ``records`` in one transaction. Touches only the connection, so it may run
        in a worker thread (SQLite serialises use of the connection)."""
        conn = self.writer
        merged = _merge(records)
        try:
            conn.execute("BEGIN")
            conn.executemany(_SESSION_INSERT, merged.sessions.values())
            conn.executemany(_SESSION_CLOSE, merged.session_updates)
            conn.executemany(_STATEMENT_INSERT, merged.statements.values())
            conn.executemany(_STATEMENT_END, merged.statement_updates)
            conn.executemany(_APPROVAL_INSERT, merged.approvals.values())
            conn.executemany(_APPROVAL_UPDATE, merged.approval_updates)
            conn.executemany(_OUTPUT_INSERT, merged.output)
            conn.executemany(_AUDIT, [
                (r.seq, r.kind, r.session_id, r.ref, r.body, r.prev, r.hash)
                for r, _ in records
            ])
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return StoreError(f"cannot write to the store {self.path}: {exc}")
        return None

    def _replay(self) -> None:
        """Records committed to the journal but not yet in the database (after a crash)."""
        assert self.journal is not None
        try:
            for record in self.journal.all_records():
                if record.seq <= self._seq:
                    continue  # checkpointed before the crash, journal not yet emptied
                if record.seq != self._seq + 1 or record.prev != self._head:
                    raise StoreError(
                        f"the journal {self.journal.path} does not continue the audit chain at "
                        f"record {record.seq}: refusing to start (move it aside to investigate)"
                    )
                if link(record.prev, record.seq, record.kind, record.session_id, record.ref,
                        record.body.encode()) != record.hash:
                    raise StoreError(
                        f"the journal {self.journal.path} record {record.seq} does not match "
                        "its hash: refusing to start (move it aside to investigate)"
                    )
                self._pending.append((record, json.loads(record.body)))
                self._seq, self._head = record.seq, record.hash
        except ValueError as exc:
            raise StoreError(
                f"the journal {self.journal.path} is damaged ({exc}): refusing to start "
                "(move it aside to investigate)"
            ) from exc
        if self._pending:
            self.checkpoint()
        else:
            if self.journal.size:
                self.journal.clear()
            for path in self.journal.rotated():
                path.unlink(missing_ok=True)

    def interrupted_sessions(self) -> list[str]:
        rows = self.conn.execute("SELECT id FROM sessions WHERE status = 'open'").fetchall()
        return [r[0] for r in rows]

    def _chain_head(self) -> tuple[int, str]:
        row = self.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    # --- reading --------------------------------------------------------------------------

    def sessions(self, limit: int = 100, before: str | None = None) -> list[dict[str, Any]]:
        """Newest first; ``before``: a started_at to page back from (exclusive)."""
        where, args = ("WHERE s.started_at < ?", [before]) if before else ("", [])
        return list(
            self.db.query(
                "SELECT s.*, (SELECT count(*) FROM statements t WHERE t.session_id = s.id)"
                f" AS statements FROM sessions s {where} ORDER BY s.started_at DESC LIMIT ?",
                [*args, limit],
            )
        )

    def find_session(self, prefix: str) -> dict[str, Any] | None:
        """A session by its id or an unambiguous prefix of it."""
        rows = list(
            self.db.query(
                "SELECT s.*, (SELECT count(*) FROM statements t WHERE t.session_id = s.id)"
                " AS statements FROM sessions s WHERE s.id >= ? AND s.id < ? LIMIT 2",
                [prefix, prefix + "\uffff"],
            )
        )
        if len(rows) > 1:
            exact = [r for r in rows if r["id"] == prefix]
            if not exact:
                raise StoreError(f"session id prefix {prefix!r} is ambiguous: give more of it")
            return exact[0]
        return rows[0] if rows else None

    def statements(self, session_id: str) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT * FROM statements WHERE session_id = ? ORDER BY seq", [session_id]
            )
        )

    def output(self, session_id: str, after: int = 0,
               limit: int = 10_000) -> list[tuple[int, float, int, str, bytes]]:
        """An SSH session's recorded chunks in order: (seq, t, channel, stream, data)."""
        return self.conn.execute(
            "SELECT seq, t, channel, stream, data FROM ssh_output"
            " WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (session_id, after, limit),
        ).fetchall()

    def output_size(self, session_id: str) -> int:
        """Bytes recorded for an SSH session (``length()`` of a BLOB reads no content pages)."""
        row = self.conn.execute(
            "SELECT coalesce(sum(length(data)), 0) FROM ssh_output WHERE session_id = ?",
            (session_id,)).fetchone()
        return int(row[0])

    # --- reading the audit chain (exports are cut at a chain head) -------------------------

    def audit_head(self) -> tuple[int, str]:
        """The newest audit record in the database, as (seq, hash); (0, GENESIS) when empty."""
        return self._chain_head()

    def audit_hash(self, seq: int) -> str | None:
        row = self.conn.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else str(row[0])

    def session_audit(self, session_id: str, after: int, upto: int,
                      limit: int = 1000) -> list[tuple[int, str, str, int, str, str, str]]:
        """A session's audit records with ``after < seq <= upto``, in order: its own and its
        approval requests' (whose records are keyed by the request id), as
        (seq, kind, key, ref, body, prev, hash)."""
        return self.conn.execute(
            "SELECT seq, kind, session_id, ref, body, prev, hash FROM audit"
            " WHERE seq > ? AND seq <= ? AND (session_id = ? OR (kind IN ('approval.request',"
            " 'approval.update') AND session_id IN"
            " (SELECT id FROM approvals WHERE session_id = ?)))"
            " ORDER BY seq LIMIT ?",
            (after, upto, session_id, session_id, limit),
        ).fetchall()

    def approvals(self, status: str | None = None, limit: int = 100,
                  before: str | None = None) -> list[dict[str, Any]]:
        """Newest first; ``before``: a created_at to page back from (exclusive)."""
        clauses, args = [], []
        if status:
            clauses.append("status = ?")
            args.append(status)
        if before:
            clauses.append("created_at < ?")
            args.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return list(self.db.query(
            f"SELECT * FROM approvals {where} ORDER BY created_at DESC LIMIT ?", [*args, limit]))

    def pending_approvals(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM approvals WHERE status = 'pending'").fetchall()]

    def close(self) -> None:
        try:
            if self.journal is not None:
                try:
                    self.checkpoint()
                finally:
                    self.journal.close()
        finally:
            if self.writer is not self.conn:
                self.writer.close()
            self.conn.close()


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def open_store(path: Path, *, durability: str = "normal", readonly: bool = False) -> SqliteStore:
    """Open (and, for the writer, create and migrate) the store at ``path``."""
    if readonly and not path.exists():
        raise StoreError(f"no store at {path}: has the engine run with this policies file?")
    try:
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10
        )
        conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
            _migrate(conn)
        else:
            version = _version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {path} has schema {version}, newer than this Gatewatch reads"
                )
        return SqliteStore(path, conn, writer=not readonly, durability=durability)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store {path}: {exc}") from exc


def _version(conn: sqlite3.Connection) -> int:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _migrate(conn: sqlite3.Connection) -> None:
    version = _version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(f"store schema {version} is newer than this Gatewatch ({SCHEMA_VERSION})")
    for target in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(target + 1),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
