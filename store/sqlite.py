"""The SQLite store: one file, WAL, one writer (the engine), any number of readers.

The writer holds the store's lock (``store/lock.py``) from before it touches anything until it
closes, and keeps the store's files private (``store/files.py``; ARCHITECTURE.md invariant 12).
Replay after a crash never drops what it cannot apply: such records, and bytes of the journal
that are not records, are kept in the ``rejected`` table, where ``verify`` finds them.

Before each checkpoint the writer checks that its files are still where it opened them: a
store file removed while the engine runs is still open, so it is written back to its path
from the open connection (SQLite's backup) and the engine goes on with it; a removed journal
is started again with every record not yet in the database; a removed lock file is taken
again, unless another engine got there first. Until a repair succeeds the store is broken and
statements are refused.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils

from store import lockouts
from store import ops as O
from store.chain import GENESIS, canonical, link
from store.errors import StoreError, StoreLocked
from store.files import check_private, private_directory, touch_private
from store.journal import Journal, JournalRecord, Leftover
from store.lock import StoreLock
from store.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

__all__ = ["SqliteStore", "StoreError", "journal_path", "open_store"]


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


class SqliteStore:
    def __init__(self, path: Path, conn: sqlite3.Connection, *, writer: bool,
                 durability: str = "normal", lock: StoreLock | None = None) -> None:
        self.path = path
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._seq, self._head = self._chain_head()
        self._pending: list[tuple[JournalRecord, dict[str, Any]]] = []
        self._broken: StoreError | None = None
        self._job: list[tuple[JournalRecord, dict[str, Any]]] | None = None  # in a thread
        self._durability = durability
        self._cannot_rotate = False
        self._lock = lock
        self._file = _identity(path) if writer else None
        self.journal: Journal | None = None
        # Checkpoints write through a connection of their own: they may run in a worker
        # thread, and a transaction there must never meet a reader's statement (sqlite-utils
        # wraps queries in savepoints) on the connection the engine reads with.
        self.writer = conn
        if writer:
            assert lock is not None, "the writer holds the store's lock"
            self.writer = self._connect_writer()
            try:
                self.journal = Journal(journal_path(path), fsync=durability == "full")
                self._replay()
            except BaseException:
                if self.journal is not None:
                    self.journal.close()
                self.writer.close()
                raise

    def _connect_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.path}", uri=True, isolation_level=None,
                               check_same_thread=False, timeout=10)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(
            f"PRAGMA synchronous = {'FULL' if self._durability == 'full' else 'NORMAL'}")
        return conn

    # --- writing --------------------------------------------------------------------------

    def apply(self, batch: Iterable[O.Op]) -> list[JournalRecord]:
        """Commit a batch of ops: chain them and append them to the journal in one write;
        returns them as committed (with their sequence numbers and hashes).

        Raises ``StoreError`` when the journal cannot be written (disk full, I/O error) or when
        the database refused the last checkpoint (for example ``database or disk is full``):
        then nothing of the batch is committed and the chain head is left as it was.
        """
        if self._broken is not None:
            self._checkpoint_now()  # files out of place are put back by the next checkpoint
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
        return [r for r, _ in records]

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def broken(self) -> StoreError | None:
        """Why the store cannot be written now (until a checkpoint succeeds), or None."""
        return self._broken

    def checkpoint(self) -> None:
        """Move committed records from the journal into the database, in one transaction,
        here and now (start, shutdown, and retries after a failure), after putting back any
        of the store's files that were removed. Call it where nothing else uses the store."""
        if self._job is not None:
            return  # a checkpoint is running in a worker thread: it will take these too
        try:
            self._keep_in_place()
        except StoreError as exc:
            self._broken = exc
            raise
        self._checkpoint_now()

    def _checkpoint_now(self) -> None:
        if self._job is not None:
            return
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
        ``finish_checkpoint``. None when there is nothing to move (or one is running). Called
        on the engine's thread, between commits."""
        if self._job is not None or not self._pending:
            return None
        assert self.journal is not None
        try:
            self._keep_in_place()
        except StoreError as exc:
            return self._failing(exc)
        records = self._pending
        self._pending = []
        try:
            self.journal.rotate()
        except OSError as exc:  # no new file in the directory: move them here and now
            self._pending[:0] = records
            if not self._cannot_rotate:  # once, not at every checkpoint
                log.warning("cannot rotate the store journal (%s): checkpointing on the"
                            " engine's thread until it can", exc)
            self._cannot_rotate = True
            try:
                self._checkpoint_now()
            except StoreError as failed:
                return self._failing(failed)
            return None
        if self._cannot_rotate:
            log.warning("the store journal rotates again")
            self._cannot_rotate = False
        self._job = records
        return lambda: self._write_or_error(records)

    def _failing(self, exc: StoreError) -> Callable[[], StoreError | None]:
        """A checkpoint job that reports ``exc``: the recorder logs it and tries again."""
        self._job = []
        return lambda: exc

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

    def _write_or_error(self, records: list[tuple[JournalRecord, dict[str, Any]]],
                        rejected: Iterable[Rejected] = ()) -> StoreError | None:
        """Insert ``records`` in one transaction. Touches only the connection, so it may run
        in a worker thread (SQLite serialises use of the connection)."""
        if self._file is not None and _identity(self.path) != self._file:
            return StoreError(f"the store {self.path} was removed or replaced while the engine"
                              " ran: nothing is written until it is back")
        if self._lock is not None and not self._lock.still_ours():
            return StoreError(f"the store's lock file {self._lock.path} was removed while the"
                              " engine ran: nothing is written until it holds the lock again")
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
            lockouts.write(conn, records)
            conn.executemany(_AUDIT, [
                (r.seq, r.kind, r.session_id, r.ref, r.body, r.prev, r.hash)
                for r, _ in records
            ])
            found_at = O.utc(time.time())
            conn.executemany(_REJECTED, [r.row(found_at) for r in rejected])
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return StoreError(f"cannot write to the store {self.path}: {exc}")
        return None

    # --- files out of place ----------------------------------------------------------------

    def _keep_in_place(self) -> None:
        """Put back what was removed from under the running engine: the directory, the lock
        file (unless another engine now holds a new one), the store file (from the open
        connection), the journal (with every record not yet in the database)."""
        assert self.journal is not None and self._lock is not None
        if self._lock.still_ours() and _identity(self.path) == self._file \
                and not self.journal.moved():
            return
        try:
            private_directory(self.path.parent)
            if not self._lock.still_ours():
                self._lock.retake()
                log.error("the store's lock file %s was removed while the engine ran: took a"
                          " new one", self._lock.path)
            if _identity(self.path) != self._file:
                self._restore()
            if self.journal.moved():
                self.journal.reopen()
                unsaved = [r for r, _ in [*(self._job or []), *self._pending]]
                if unsaved:
                    self.journal.append(unsaved)
                log.error("the store journal %s was removed while the engine ran: started a new"
                          " one with the %d records not yet in the database", self.journal.path,
                          len(unsaved))
        except StoreLocked as exc:
            raise StoreError(f"the store's lock file was removed while the engine ran and"
                             f" another engine took the store: {exc}") from exc
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot put back the store's files in {self.path.parent}: {exc}"
                             ) from exc

    def _restore(self) -> None:
        """The store file was removed while the engine had it open: write what the open
        connection still reads back to its path (SQLite's online backup), then go on there.
        A file someone put in its place is not ours to overwrite."""
        if self.path.exists():
            raise StoreError(
                f"the store {self.path} was replaced by another file while the engine ran:"
                " refusing to write to either; stop the engine and find out which is the store")
        copy = self.path.with_name(self.path.name + ".restoring")
        copy.unlink(missing_ok=True)
        touch_private(copy)
        target = sqlite3.connect(copy)
        try:
            self.writer.backup(target)
        finally:
            target.close()
        # The old connections read a file that is gone. SQLite neither checkpoints nor removes
        # the -wal of a database that moved, so closing them cannot touch the new one; what
        # is left at the old -wal and -shm names belongs to the removed file.
        self.writer.close()
        self.conn.close()
        for leftover in ("-wal", "-shm"):
            self.path.with_name(self.path.name + leftover).unlink(missing_ok=True)
        os.rename(copy, self.path)
        _sync_directory(self.path.parent)
        self._file = _identity(self.path)
        self.writer = self._connect_writer()
        self.conn = sqlite3.connect(f"file:{self.path}", uri=True, isolation_level=None,
                                    check_same_thread=False, timeout=10)
        self.conn.execute("PRAGMA busy_timeout = 10000")
        self.db = sqlite_utils.Database(self.conn)
        log.error("the store %s was removed while the engine ran: wrote it back from the open"
                  " database (%d audit records)", self.path, self._chain_head()[0])

    # --- replay ---------------------------------------------------------------------------

    def _replay(self) -> None:
        """Records committed to the journal but not yet in the database (after a crash).

        A record that is already in the database (a crash between a checkpoint's COMMIT and
        the journal's truncation) is skipped once its hash says it is the same record. What
        cannot be applied — a record that does not continue the chain, or whose hash does not
        match, or that takes a place in the chain another record holds, and bytes that are not
        records — is kept in the ``rejected`` table and logged; ``verify`` fails naming it."""
        assert self.journal is not None
        stored_seq = self._seq
        replayed: dict[int, str] = {}
        rejected: list[Rejected] = []
        for source, found in self.journal.scan():
            if isinstance(found, Leftover):
                rejected.append(Rejected.leftover(found))
                continue
            record = found
            reason = None
            if record.seq <= self._seq:
                held = (self.audit_hash(record.seq) if record.seq <= stored_seq
                        else replayed.get(record.seq))
                if held == record.hash:
                    continue  # checkpointed before the crash, journal not yet emptied
                reason = f"audit record {record.seq} is another record"
            elif record.seq != self._seq + 1 or record.prev != self._head:
                reason = f"does not continue the audit chain (its head is record {self._seq})"
            elif link(record.prev, record.seq, record.kind, record.session_id, record.ref,
                      record.body.encode()) != record.hash:
                reason = "does not match its hash (edited)"
            if reason is not None:
                rejected.append(Rejected.record(source, record, reason))
                continue
            try:
                fields = json.loads(record.body)
            except ValueError:
                rejected.append(Rejected.record(source, record, "its body is not JSON"))
                continue
            self._pending.append((record, fields))
            replayed[record.seq] = record.hash
            self._seq, self._head = record.seq, record.hash
        for r in rejected:
            log.error("journal %s: %s%s: kept in the store's rejected table", r.source,
                      f"record {r.seq} ({r.kind}, session {r.session_id}) " if r.seq else "",
                      r.reason)
        if rejected:
            records, self._pending = self._pending, []
            self._finish(records, self._write_or_error(records, rejected), whole_journal=True)
            if self._broken is not None:
                raise self._broken
        elif self._pending:
            self._checkpoint_now()
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
            if self._lock is not None:
                self._lock.release()  # last: nothing of this engine touches the store after


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` (device and inode), None when there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def open_store(path: Path, *, durability: str = "normal", readonly: bool = False) -> SqliteStore:
    """Open the store at ``path``: read-only (the CLI, the TUI), or as its one writer (the
    engine), which first takes the store's lock — before anything touches it: migrations,
    journal replay — and creates, migrates and replays it. Raises ``StoreError``;
    ``StoreLocked`` when another engine holds the store, ``ExposedStore`` when others can
    read it."""
    if readonly:
        return _open_reader(path)
    lock = _lock(path)
    try:
        return _open_writer(path, durability, lock)
    except BaseException:
        lock.release()
        raise


def _open_reader(path: Path) -> SqliteStore:
    if not path.exists():
        raise StoreError(f"no store at {path}: has the engine run with this policies file?")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False, timeout=10)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {path} has schema {version}, newer than this Gatewatch reads")
        return SqliteStore(path, conn, writer=False)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    except BaseException:
        conn.close()
        raise


def _lock(path: Path) -> StoreLock:
    """The writer's lock, in a private directory (created 0700 when absent), on files that
    are private (ARCHITECTURE.md invariant 12)."""
    try:
        private_directory(path.parent)
        check_private(path)
        return StoreLock.acquire(path)
    except OSError as exc:
        raise StoreError(f"cannot open the store {path}: {exc.strerror or exc}") from exc


def _open_writer(path: Path, durability: str, lock: StoreLock) -> SqliteStore:
    try:
        touch_private(path)  # before SQLite creates it: its -wal and -shm take this mode
    except OSError as exc:
        raise StoreError(f"cannot create the store {path}: {exc.strerror or exc}") from exc
    try:
        conn = sqlite3.connect(f"file:{path}", uri=True, isolation_level=None,
                               check_same_thread=False, timeout=10)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
        conn.execute("BEGIN IMMEDIATE")  # a file the engine cannot write fails here, not later
        conn.execute("ROLLBACK")
        _migrate(conn)
        return SqliteStore(path, conn, writer=True, durability=durability, lock=lock)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open the store {path} for writing: {exc}") from exc
    except BaseException:
        conn.close()
        raise


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
