"""The SQLite store: one file, WAL, one writer per node (engines, or an engine's workers), any
number of readers.

Each writer is a node (``store/nodes.py``) with its own journal and audit chain; it holds its
node's lock (``store/lock.py``) from before it touches anything until it closes, and keeps the
store's files private (``store/files.py``; ARCHITECTURE.md invariant 12). Nodes' checkpoints
share the database through SQLite's own locking: each is one short write transaction taken up
front (BEGIN IMMEDIATE), waiting for another node's within the busy timeout and tried again
after it. Node bookkeeping (``nodes``: registration, heartbeats, lost nodes and their
takeover) and fleet commands go through a connection of their own.
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

import asyncio
import functools
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import sqlite_utils

from store import ops as O
from store import records as R
from store.chain import canonical, link
from store.checkpoint import BUSY_ATTEMPTS, Rejected, busy, merge, write_once
from store.checkpointer import CheckpointProcess
from store.errors import StoreError, StoreLocked
from store.files import check_private, private_directory, touch_private
from store.journal import (
    Journal,
    JournalRecord,
    JournalSnapshot,
    Leftover,
    read_snapshot,
    rotated_files,
    scan,
)
from store.lock import StoreLock
from store.nodes import (
    NODE_LOST,
    check_node,
    default_node,
    genesis,
    journals,
    node_journal,
)
from store.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

__all__ = ["SqliteStore", "StoreError", "journal_path", "open_sqlite", "open_store"]


_F = TypeVar("_F", bound=Callable[..., Any])


def controlled(method: _F) -> _F:
    """Run ``method`` holding the store's control lock: heartbeats, takeovers and fleet
    commands come from the event loop and from worker threads, and one's transaction on the
    control connection must never take in another's statements."""
    @functools.wraps(method)
    def locked(self: SqliteStore, *args: Any, **kwargs: Any) -> Any:
        with self._control_lock:
            return method(self, *args, **kwargs)
    return locked  # type: ignore[return-value]


# What a database refuses, SQLite's or PostgreSQL's (``store.postgres`` speaks to psycopg
# through the same methods).
DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)
POLL_S = 0.05  # how often ``listen`` looks for fleet commands
CLAIM_S = 60.0  # a claim on a lost node that another node may take over after this long


class SqliteStore:
    def __init__(self, path: Path, conn: sqlite3.Connection, *, writer: bool,
                 node: str, durability: str = "normal", lock: StoreLock | None = None) -> None:
        self.path = path
        self.node = node
        self.conn = conn
        self.db = self._database(conn)
        self._zero = self._zero_genesis()
        self._seq, self._head = self._chain_head()
        self._control: sqlite3.Connection | None = None  # nodes, fleet commands, takeovers
        self._control_lock = threading.RLock()  # its users run in several threads
        self._alive_said: set[str] = set()  # silent nodes whose process holds their lock
        self._pending: list[tuple[JournalRecord, dict[str, Any]]] = []
        self._broken: StoreError | None = None
        self._job: list[tuple[JournalRecord, dict[str, Any]]] | None = None  # in a thread
        self._durability = durability
        self._cannot_rotate = False
        self._lock = lock
        self._file = _identity(path) if writer else None
        self.journal: Journal | None = None
        self._process: CheckpointProcess | None = None  # writes the threaded checkpoints
        # Checkpoints write through a connection of their own: they may run in a worker
        # thread, and a transaction there must never meet a reader's statement (sqlite-utils
        # wraps queries in savepoints) on the connection the engine reads with.
        self.writer = conn
        if writer:
            assert lock is not None, "the writer holds the store's lock"
            self.writer = self._connect_writer()
            try:
                self.journal = Journal(journal_path(path, node), fsync=durability == "full")
                self._replay()
                self._register()
                if self.offloads:
                    self._process = CheckpointProcess(path, node, durability, lock)
            except BaseException:
                if self.journal is not None:
                    self.journal.close()
                self.writer.close()
                if self._control is not None:
                    self._control.close()
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
            if self._job is not None:  # the retry is running: refused until it succeeds
                raise self._broken
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
        if self._process is None:
            return lambda: self._write_or_error(records)
        first, last = records[0][0], records[-1][0]
        job = {"files": [str(p) for p in self.journal.rotated()], "first": first.seq,
               "prev": first.prev, "last": last.seq, "hash": last.hash,
               "file": list(self._file) if self._file is not None else None}
        return lambda: self._offloaded(records, job)

    def prepare_checkpoints(self) -> None:
        """Start the checkpoint process now rather than at the first checkpoint (it takes a
        moment to start): blocking, call it off the event loop."""
        if self._process is not None:
            self._process.start()

    def _offloaded(self, records: list[tuple[JournalRecord, dict[str, Any]]],
                   job: dict[str, Any]) -> StoreError | None:
        """A threaded checkpoint's job, run by the checkpoint process; here, from the records
        in memory, when the process is not there or could not read them from the files."""
        refused = self._unwritable()
        if refused is not None:
            return refused
        assert self._process is not None
        reply = self._process.run(job)
        if reply is not None and "ok" in reply:
            return None
        if reply is not None and "error" in reply:
            return StoreError(f"cannot write to the store {self.path}: {reply['error']}")
        if reply is not None:
            log.warning("the checkpoint process could not take records %d to %d from the"
                        " journal files (%s): the engine writes them", job["first"],
                        job["last"], reply.get("missing"))
        if self._holds(records[-1][0]):
            return None  # the process committed them, then ended before it said so
        return self._write_or_error(records)

    def _holds(self, record: JournalRecord) -> bool:
        """Whether the database has ``record`` of this node's chain (on the writer's
        connection: this runs in the checkpoint thread)."""
        try:
            row = self.writer.execute("SELECT hash FROM audit WHERE node = ? AND seq = ?",
                                      (self.node, record.seq)).fetchone()
        except DB_ERRORS:
            return False
        return row is not None and row[0] == record.hash

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
                        rejected: Iterable[Rejected] = (), *, node: str | None = None,
                        conn: sqlite3.Connection | None = None) -> StoreError | None:
        """Insert ``records`` (of ``node``'s chain: by default this node's) in one
        transaction. Touches only the connection, so it may run in a worker thread (SQLite
        serialises use of the connection). Other nodes' processes write the same file: the
        transaction takes SQLite's write lock first (BEGIN IMMEDIATE), waiting for theirs
        within the busy timeout, and a busy database is tried again."""
        refused = self._unwritable()
        if refused is not None:
            return refused
        conn = self.writer if conn is None else conn
        node = self.node if node is None else node
        merged = merge(records, node)
        for attempt in range(BUSY_ATTEMPTS):
            failed = write_once(conn, node, records, merged, rejected, DB_ERRORS)
            lost = getattr(conn, "lost", False)  # PostgreSQL: opened again by the next try
            if failed is None or not (busy(failed) or lost) or attempt == BUSY_ATTEMPTS - 1:
                break
            time.sleep(0.05 * (attempt + 1))
        if failed is None:
            return None
        return StoreError(f"cannot write to the store {self.path}: {failed}")

    def _unwritable(self) -> StoreError | None:
        """Why nothing may be written now: the store file or the lock file is not the one
        the engine opened (put back by the next checkpoint's ``_keep_in_place``)."""
        if self._file is not None and _identity(self.path) != self._file:
            return StoreError(f"the store {self.path} was removed or replaced while the engine"
                              " ran: nothing is written until it is back")
        if self._lock is not None and not self._lock.still_ours():
            return StoreError(f"the store's lock file {self._lock.path} was removed while the"
                              " engine ran: nothing is written until it holds the lock again")
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
        """Records committed to this node's journal but not yet in the database (after a
        crash).

        A record that is already in the database (a crash between a checkpoint's COMMIT and
        the journal's truncation) is skipped once its hash says it is the same record. What
        cannot be applied — a record that does not continue the chain, or whose hash does not
        match, or that takes a place in the chain another record holds, and bytes that are not
        records — is kept in the ``rejected`` table and logged; ``verify`` fails naming it."""
        assert self.journal is not None
        pending, rejected, self._seq, self._head = self._scan_chain(
            self.journal.path, self.node, self._seq, self._head)
        self._pending.extend(pending)
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

    def _scan_chain(self, path: Path, node: str, seq: int, head: str,
                    ) -> tuple[list[tuple[JournalRecord, dict[str, Any]]], list[Rejected], int,
                               str]:
        """What the journal ``path`` of ``node``'s chain (whose head in the database is
        ``seq``, ``head``) holds that the database lacks, and what cannot be applied; with
        the chain's head after them."""
        stored_seq = seq
        replayed: dict[int, str] = {}
        rejected: list[Rejected] = []
        pending: list[tuple[JournalRecord, dict[str, Any]]] = []
        for source, found in scan(path):
            if isinstance(found, Leftover):
                rejected.append(Rejected.leftover(found))
                continue
            record = found
            reason = None
            if record.seq <= seq:
                held = (self.audit_hash(record.seq, node) if record.seq <= stored_seq
                        else replayed.get(record.seq))
                if held == record.hash:
                    continue  # checkpointed before the crash, journal not yet emptied
                reason = f"audit record {record.seq} is another record"
            elif record.seq != seq + 1 or record.prev != head:
                reason = f"does not continue the audit chain (its head is record {seq})"
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
            pending.append((record, fields))
            replayed[record.seq] = record.hash
            seq, head = record.seq, record.hash
        for r in rejected:
            log.error("journal %s: %s%s: kept in the store's rejected table", r.source,
                      f"record {r.seq} ({r.kind}, session {r.session_id}) " if r.seq else "",
                      r.reason)
        return pending, rejected, seq, head

    def _replay_other(self, node: str) -> int:
        """Replay the journal another node left beside the store (it crashed), holding that
        node's lock meanwhile; returns the records moved. The node's files are emptied once
        its records are in the database. Raises StoreLocked when the node is running."""
        lock = StoreLock.acquire(self.path, node)
        try:
            path = journal_path(self.path, node)
            seq, head = self._chain_head(node)
            pending, rejected, _, _ = self._scan_chain(path, node, seq, head)
            if pending or rejected:
                failed = self._write_or_error(pending, rejected, node=node,
                                              conn=self._control_conn())
                if failed is not None:
                    raise failed
                log.warning("replayed %d records node %s left in its journal%s", len(pending),
                            node,
                            f", kept {len(rejected)} aside" if rejected else "")
            for file in [*rotated_files(path), path]:
                file.unlink(missing_ok=True)
            return len(pending)
        finally:
            lock.release()

    def interrupted_sessions(self) -> list[str]:
        """This node's sessions left open: never another node's (ARCHITECTURE.md invariant
        3); a lost node's are ended by ``end_lost_node``."""
        rows = self.conn.execute(
            "SELECT id FROM sessions WHERE status = 'open' AND node = ?", (self.node,)
        ).fetchall()
        return [r[0] for r in rows]

    def _chain_head(self, node: str | None = None) -> tuple[int, str]:
        node = self.node if node is None else node
        row = self.conn.execute(
            "SELECT seq, hash FROM audit WHERE node = ? ORDER BY seq DESC LIMIT 1",
            (node,)).fetchone()
        return (row[0], row[1]) if row else (0, self.genesis(node))

    def genesis(self, node: str) -> str:
        """The ``prev`` of the first record of ``node``'s chain (``store.nodes.genesis``)."""
        return genesis(node, self._zero)

    def _zero_genesis(self) -> str | None:
        row = self.conn.execute("SELECT node FROM zero_chain").fetchone()
        return None if row is None else str(row[0])

    # --- nodes and the fleet ----------------------------------------------------------------

    dialect = "sqlite"
    # Threaded checkpoints are written by a process of their own (``store/checkpointer.py``).
    offloads = True

    def _database(self, conn: sqlite3.Connection) -> sqlite_utils.Database:
        return sqlite_utils.Database(conn)

    def _clock(self) -> float:
        """Now, as the nodes of this store agree on it (one machine: its clock)."""
        return time.time()

    def _control_conn(self) -> sqlite3.Connection:
        """The connection for node bookkeeping, fleet commands and other nodes' replays: never
        the checkpoint's (which may be in a worker thread) nor the reading one."""
        if self._control is None:
            self._control = sqlite3.connect(f"file:{self.path}", uri=True,
                                            isolation_level=None, check_same_thread=False,
                                            timeout=10)
            self._control.execute("PRAGMA busy_timeout = 10000")
        return self._control

    @controlled
    def _register(self) -> None:
        """At open: this node in the ``nodes`` table (started now, not lost, not stopped)."""
        now = O.utc(self._clock())
        conn = self._control_conn()
        conn.execute(
            "INSERT INTO nodes (name, host, pid, started_at, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET host = excluded.host,"
            " pid = excluded.pid, started_at = excluded.started_at,"
            " heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, lost_at = NULL,"
            " lost_by = NULL",
            (self.node, socket.gethostname(), os.getpid(), now, now))

    @controlled
    def _stopped(self) -> None:
        try:
            self._control_conn().execute(
                "UPDATE nodes SET stopped_at = ? WHERE name = ? AND pid = ?",
                (O.utc(self._clock()), self.node, os.getpid()))
        except DB_ERRORS as exc:
            log.warning("cannot mark node %s stopped in the store: %s", self.node, exc)

    @controlled
    def register_node(self, info: dict[str, Any] | None = None) -> None:
        """Say what this node serves (listeners, control socket: JSON-able), for ``nodes``."""
        self._control_conn().execute(
            "UPDATE nodes SET info = ? WHERE name = ?",
            (None if info is None else json.dumps(info, sort_keys=True), self.node))

    @controlled
    def heartbeat(self) -> None:
        """This node is alive now. May wait for another node's write (the busy timeout): call
        it off the event loop."""
        self._control_conn().execute("UPDATE nodes SET heartbeat_at = ? WHERE name = ?",
                                     (O.utc(self._clock()), self.node))

    def nodes(self) -> list[dict[str, Any]]:
        """Every node that ever wrote the store, by name: name, host, pid, started_at,
        heartbeat_at, stopped_at (a clean stop), lost_at and lost_by (another node ended its
        sessions), info (JSON, as ``register_node`` gave it)."""
        return list(self.db.query("SELECT * FROM nodes ORDER BY name"))

    def lost_nodes(self, after_s: float) -> list[str]:
        """Nodes that did not stop cleanly and whose last heartbeat is older than ``after_s``
        seconds, and that no node has claimed (or whose claimer left its sessions open for
        ``CLAIM_S``: it died before committing their ends)."""
        now = self._clock()
        cutoff, lease = O.utc(now - after_s), O.utc(now - CLAIM_S)
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM nodes WHERE name <> ? AND stopped_at IS NULL"
            " AND heartbeat_at < ? AND (lost_at IS NULL OR (lost_at < ? AND EXISTS (SELECT 1"
            " FROM sessions s WHERE s.node = nodes.name AND s.status = 'open')))"
            " ORDER BY name", (self.node, cutoff, lease))]

    @controlled
    def end_lost_node(self, node: str, after_s: float) -> list[R.Record] | None:
        """Take over a lost node (see ``lost_nodes``): claim it, so that one node alone does
        this; replay the journal it left beside the store, holding its lock (when its lock is
        held, its process lives: it is not lost, and None is returned); then the records
        that end its open sessions (``node lost``) and expire its pending approvals, for the
        caller to commit through its recorder: they go in this node's chain. None when the
        node is not lost or another node claimed it. Blocking: call it off the event loop."""
        now_t = self._clock()
        now, cutoff, lease = O.utc(now_t), O.utc(now_t - after_s), O.utc(now_t - CLAIM_S)
        conn = self._control_conn()
        claimed = conn.execute(
            "UPDATE nodes SET lost_at = ?, lost_by = ? WHERE name = ?"
            " AND name <> ? AND stopped_at IS NULL AND heartbeat_at < ?"
            " AND (lost_at IS NULL OR lost_at < ?)", (now, self.node, node, self.node, cutoff,
                                                      lease))
        if claimed.rowcount != 1:
            return None
        try:
            try:
                self._replay_other(node)
            except StoreLocked:
                self._unclaim(node)
                if node not in self._alive_said:  # once: the fleet asks at every heartbeat
                    self._alive_said.add(node)
                    log.warning("node %s has not sent a heartbeat for %.0f s but its process"
                                " holds its lock: not ending its sessions", node, after_s)
                return None
            except (OSError, StoreError) as exc:
                log.error("cannot replay the journal of lost node %s (%s): ending its sessions"
                          " as the store has them", node, exc)
            return self._lost_records(node, now)
        except BaseException:
            self._unclaim(node)  # another try (here or elsewhere) need not wait out the claim
            raise

    def _unclaim(self, node: str) -> None:
        try:
            self._control_conn().execute(
                "UPDATE nodes SET lost_at = NULL, lost_by = NULL WHERE name = ? AND lost_by = ?",
                (node, self.node))
        except DB_ERRORS as exc:
            log.warning("cannot let go of the claim on lost node %s: %s", node, exc)

    def _lost_records(self, node: str, now: str) -> list[R.Record]:
        sessions = [r[0] for r in self.conn.execute(
            "SELECT id FROM sessions WHERE node = ? AND status = 'open' ORDER BY started_at",
            (node,))]
        approvals = [r[0] for r in self.conn.execute(
            "SELECT id FROM approvals WHERE node = ? AND status = 'pending'"
            " ORDER BY created_at", (node,))]
        records: list[R.Record] = [
            R.ApprovalUpdate(rid, status="expired", approvals=None, decided_at=now,
                             decided_by=None, decision_reason=NODE_LOST) for rid in approvals]
        records += [R.SessionClose(sid, ended_at=now, status="interrupted",
                                   end_reason=NODE_LOST) for sid in sessions]
        return records

    @controlled
    def notify(self, node: str, command: dict[str, Any]) -> int:
        """Ask ``node`` to do ``command`` (JSON-able: approve, deny, kill…); returns its id.
        The node's ``listen`` yields it within 50 ms."""
        cur = self._control_conn().execute(
            "INSERT INTO fleet_commands (node, command, created_at) VALUES (?, ?, ?)",
            (node, json.dumps(command, sort_keys=True), O.utc(time.time())))
        return int(cur.lastrowid or 0)

    async def listen(self, node: str | None = None) -> AsyncGenerator[dict[str, Any], None]:
        """The commands sent to ``node`` (by default this one), each once, oldest first, as
        ``notify`` gave them with their ``id``: polled every 50 ms (a read in WAL never
        waits; taking one is a short write, off the event loop)."""
        node = self.node if node is None else node
        reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                 check_same_thread=False, timeout=10)
        try:
            while True:
                rows = reader.execute(
                    "SELECT id, command FROM fleet_commands WHERE node = ? AND taken_at IS NULL"
                    " ORDER BY id", (node,)).fetchall()
                for cid, text in rows:
                    if await asyncio.to_thread(self._take, int(cid)):
                        yield {**json.loads(text), "id": int(cid)}
                await asyncio.sleep(POLL_S)
        finally:
            reader.close()

    @controlled
    def _take(self, cid: int) -> bool:
        cur = self._control_conn().execute(
            "UPDATE fleet_commands SET taken_at = ? WHERE id = ? AND taken_at IS NULL",
            (O.utc(time.time()), cid))
        return cur.rowcount == 1

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

    def open_sessions(self, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
        """Sessions still open, of every node but those in ``exclude``, newest first: all of
        them, however many sessions started since (``sessions`` pages by start time). Read
        node by node through the (node, status) index."""
        skip = f" WHERE n.name NOT IN ({','.join('?' * len(exclude))})" if exclude else ""
        return list(
            self.db.query(
                "SELECT s.*, (SELECT count(*) FROM statements t WHERE t.session_id = s.id)"
                " AS statements FROM nodes n JOIN sessions s"
                f" ON s.node = n.name AND s.status = 'open'{skip} ORDER BY s.started_at DESC",
                list(exclude),
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

    def audit_head(self, node: str | None = None) -> tuple[int, str]:
        """The newest audit record of ``node``'s chain (by default this handle's node) in the
        database, as (seq, hash); (0, its genesis) when empty."""
        return self._chain_head(node)

    def audit_heads(self) -> dict[str, tuple[int, str]]:
        """Every chain's newest record in the database, by node."""
        rows = self.conn.execute(
            "SELECT a.node, a.seq, a.hash FROM audit a JOIN (SELECT node, max(seq) AS seq"
            " FROM audit GROUP BY node) h ON a.node = h.node AND a.seq = h.seq ORDER BY 1")
        return {str(n): (int(q), str(h)) for n, q, h in rows}

    def audit_hash(self, seq: int, node: str | None = None) -> str | None:
        row = self.conn.execute("SELECT hash FROM audit WHERE node = ? AND seq = ?",
                                (self.node if node is None else node, seq)).fetchone()
        return None if row is None else str(row[0])

    def session_node(self, session_id: str) -> str | None:
        """The node that opened ``session_id`` (None: no such session in the database)."""
        row = self.conn.execute("SELECT node FROM sessions WHERE id = ?",
                                (session_id,)).fetchone()
        return None if row is None else str(row[0])

    def session_audit(self, session_id: str, after: int, upto: int,
                      limit: int = 1000, node: str | None = None,
                      ) -> list[tuple[int, str, str, int, str, str, str]]:
        """A session's audit records in the chain of ``node`` (by default the session's own
        node's, ``session_node``; this handle's when the session is not in the database) with
        ``after < seq <= upto``, in order: its own and its approval requests' (whose records
        are keyed by the request id), as (seq, kind, key, ref, body, prev, hash). A session's
        records are in the chain of the node that held it (``session_node``), but for the
        close another node wrote when that one was lost."""
        return self.conn.execute(
            "SELECT seq, kind, session_id, ref, body, prev, hash FROM audit"
            " WHERE node = ? AND seq > ? AND seq <= ? AND (session_id = ? OR (kind IN"
            " ('approval.request', 'approval.update') AND session_id IN"
            " (SELECT id FROM approvals WHERE session_id = ?)))"
            " ORDER BY seq LIMIT ?",
            (node or self.session_node(session_id) or self.node, after, upto, session_id,
             session_id, limit),
        ).fetchall()

    # --- what verify reads ---------------------------------------------------------------

    def journal_snapshots(self) -> dict[str, JournalSnapshot]:
        """Every node's journal beside the store, as read now (verify reads them before the
        database: a record leaves a journal only once it is in the database)."""
        return {node: read_snapshot(path) for node, path in journals(self.path).items()}

    def begin_read(self) -> bool:
        """One snapshot for the reads that follow, until ``end_read``; False when a
        transaction was open already (then the caller must not end it)."""
        if self.conn.in_transaction:
            return False
        self.conn.execute("BEGIN")
        return True

    def end_read(self) -> None:
        self.conn.execute("COMMIT")

    def audit_records(self) -> Iterator[tuple[str, int, str, str, int, str, str, str]]:
        """Every audit record, chain by chain (by node), each in order: (node, seq, kind,
        session, ref, body, prev, hash)."""
        yield from self.stream(
            "SELECT node, seq, kind, session_id, ref, body, prev, hash FROM audit"
            " ORDER BY node, seq")

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[Any]:
        """Rows (tuples) of ``sql`` read as they are iterated, never all at once (verify walks
        every record and output chunk)."""
        yield from self.conn.execute(sql, tuple(args))

    def has_table(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                                 " name = ?", (name,)).fetchone() is not None

    def query(self, sql: str, args: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """Rows as dicts (column -> value) of ``sql`` with ``?`` placeholders."""
        yield from self.db.query(sql, list(args))

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
        """This node's approval requests left pending: never another node's."""
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM approvals WHERE status = 'pending' AND node = ?", (self.node,)
        ).fetchall()]

    def close(self) -> None:
        try:
            if self._process is not None:
                self._process.stop()  # before the last checkpoint, here, and the lock's release
            if self.journal is not None:
                try:
                    self.checkpoint()
                    self._stopped()
                finally:
                    self.journal.close()
        finally:
            if self.writer is not self.conn:
                self.writer.close()
            if self._control is not None:
                self._control.close()
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


def journal_path(path: Path, node: str | None = None) -> Path:
    """The journal of ``node`` (by default this host's node) beside the store ``path``."""
    return node_journal(path, default_node() if node is None else node)


def open_store(location: Path | str, *, node: str | None = None, durability: str = "normal",
               readonly: bool = False, local: Path | None = None) -> SqliteStore:
    """Open the store at ``location`` as node ``node`` (by default this host's name): a path
    is a SQLite store (``open_sqlite``); ``postgresql://USER@HOST:PORT/DB`` a PostgreSQL
    store (``store.postgres``), whose node keeps its journal and lock file beside ``local``
    (``engine.local_store``; None: a file named after the database in
    ``$XDG_STATE_HOME/gatewatch``). Raises ``StoreError``."""
    if isinstance(location, str) and location.startswith(("postgresql://", "postgres://")):
        from store.postgres import open_postgres

        return open_postgres(location, node=node, durability=durability,
                             readonly=readonly, local=local)
    return open_sqlite(Path(location), node=node, durability=durability, readonly=readonly)


def open_sqlite(path: Path, *, node: str | None = None, durability: str = "normal",
                readonly: bool = False) -> SqliteStore:
    """Open the SQLite store at ``path``: read-only (the CLI, the TUI), or as the writer of
    node ``node`` (by default this host's name), which first takes that node's lock — before
    anything touches the store: migrations, journal replay — and creates, migrates and replays
    it. Other nodes may write the same store at the same time, each with its own lock and
    journal. Raises ``StoreError``; ``StoreLocked`` when an engine runs as that node,
    ``ExposedStore`` when others can read the store."""
    node = check_node(default_node() if node is None else node)
    if readonly:
        return _open_reader(path, node)
    lock = _lock(path, node)
    try:
        return _open_writer(path, durability, lock)
    except BaseException:
        lock.release()
        raise


def _open_reader(path: Path, node: str) -> SqliteStore:
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
        if version < SCHEMA_VERSION:
            raise StoreError(f"the store {path} has schema {version}, older than this Gatewatch"
                             " reads: start the engine once to bring it up to date")
        return SqliteStore(path, conn, writer=False, node=node)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    except BaseException:
        conn.close()
        raise


def _lock(path: Path, node: str) -> StoreLock:
    """The node's lock, in a private directory (created 0700 when absent), on files that
    are private (ARCHITECTURE.md invariant 12)."""
    try:
        private_directory(path.parent)
        check_private(path)
        return StoreLock.acquire(path, node)
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
        return SqliteStore(path, conn, writer=True, node=lock.node, durability=durability,
                           lock=lock)
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
    """Bring the schema up to date, one version per transaction; the version is read inside
    each (BEGIN IMMEDIATE), so that nodes starting together migrate it once."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            target = _version(conn)
            if target > SCHEMA_VERSION:
                raise StoreError(
                    f"store schema {target} is newer than this Gatewatch ({SCHEMA_VERSION})")
            if target == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement, {"node": default_node()} if ":node" in statement
                                 else ())
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(target + 1),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
