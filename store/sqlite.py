"""The SQLite store: one file, WAL, one writer (the engine), any number of readers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from store import ops as O
from store.chain import GENESIS, canonical, link
from store.schema import MIGRATIONS, SCHEMA_VERSION


class StoreError(Exception):
    """The store cannot be opened or written; the message is for the operator."""


_SESSION_INSERT = (
    "INSERT INTO sessions (id, protocol, connection, identity, identity_kind, client_addr,"
    " application_name, database, started_at, status)"
    " VALUES (:id, :protocol, :connection, :identity, :identity_kind, :client_addr,"
    " :application_name, :database, :started_at, :status)"
)
_SESSION_CLOSE = (
    "UPDATE sessions SET ended_at = :ended_at, status = :status, end_reason = :end_reason"
    " WHERE id = :id"
)
_STATEMENT_INSERT = (
    "INSERT INTO statements (session_id, seq, protocol, text, params, started_at, status)"
    " VALUES (:id, :ref, :protocol, :text, :params, :started_at, :status)"
)
_STATEMENT_END = (
    "UPDATE statements SET finished_at = :finished_at, duration_ms = :duration_ms,"
    " status = :status, command = :command, rows = :rows, sqlstate = :sqlstate, error = :error"
    " WHERE session_id = :id AND seq = :ref"
)
_SQL = {
    O.SESSION_OPEN: _SESSION_INSERT,
    O.SESSION_CLOSE: _SESSION_CLOSE,
    O.STATEMENT_START: _STATEMENT_INSERT,
    O.STATEMENT_END: _STATEMENT_END,
}
_AUDIT = "INSERT INTO audit (seq, kind, session_id, ref, body, prev, hash) VALUES (?,?,?,?,?,?,?)"


class SqliteStore:
    def __init__(self, path: Path, conn: sqlite3.Connection, *, writer: bool) -> None:
        self.path = path
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._writer = writer
        self._seq, self._head = self._chain_head()

    # --- writing --------------------------------------------------------------------------

    def apply(self, batch: Iterable[O.Op]) -> None:
        """Write a batch of ops and their audit records in one transaction.

        Raises ``StoreError`` (after rolling back) when SQLite cannot write, for example when
        the disk or the database is full; the in-memory chain head is left as it was.
        """
        conn = self.conn
        seq, head = self._seq, self._head
        try:
            conn.execute("BEGIN")
            for op in batch:
                seq += 1
                body = canonical(op.fields)
                prev, head = head, link(head, seq, op.kind, op.session_id, op.ref, body)
                conn.execute(_SQL[op.kind], {**op.fields, "id": op.session_id, "ref": op.ref})
                conn.execute(_AUDIT, (seq, op.kind, op.session_id, op.ref, body, prev, head))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"cannot write to the store {self.path}: {exc}") from exc
        self._seq, self._head = seq, head

    def interrupted_sessions(self) -> list[str]:
        rows = self.conn.execute("SELECT id FROM sessions WHERE status = 'open'").fetchall()
        return [r[0] for r in rows]

    def _chain_head(self) -> tuple[int, str]:
        row = self.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    # --- reading --------------------------------------------------------------------------

    def sessions(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT s.*, (SELECT count(*) FROM statements t WHERE t.session_id = s.id)"
                " AS statements FROM sessions s ORDER BY s.started_at DESC LIMIT ?",
                [limit],
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

    def close(self) -> None:
        self.conn.close()


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
        return SqliteStore(path, conn, writer=not readonly)
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
