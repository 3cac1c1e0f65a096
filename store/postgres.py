"""The PostgreSQL store (``engine.store: postgresql://USER@HOST:PORT/DB``): several machines'
engines, each a node, write one database.

The write-ahead path is a SQLite store's: a node commits to its journal on its own disk (the
commit point, ARCHITECTURE.md invariant 1), and checkpoints move the records into PostgreSQL in
one short transaction each, within the same bounds. The journal and the node's lock file live
beside ``local`` (``engine.local_store``; by default a file named after the database in
``$XDG_STATE_HOME/gatewatch``), 0600 in a 0700 directory; a node killed with SIGKILL replays
its journal when it comes back, and a node of the same machine that finds it lost replays it
for it. What is lost with a node's disk is what it had committed to its journal and not yet
moved: at most the last checkpoint interval's records (about 50 ms).

The same schema as SQLite (``PG_SCHEMA``; no chain starts at the all-zero hash, as no
records come from before nodes; created and migrated under an advisory lock so that
nodes starting together do it once), the same per-node audit chains, nodes table and verify.
A node holds, for its life, a session-level advisory lock keyed by its name on a connection
of its own (with TCP keepalives, so that the server lets go of a dead machine's within about
half a minute): a second engine under the same name on any machine is refused, and another
node tells a lost node from a slow one by it. Fleet commands use LISTEN/NOTIFY.

``PgConnection`` speaks to psycopg through the part of ``sqlite3.Connection`` the store's
readers use (``execute`` with ``?`` and ``:name`` parameters, ``executemany``,
``in_transaction``), so that the SQL of ``store/`` is written once. The password comes from
libpq's environment (PGPASSWORD, a service or password file) or from the URL, which the
policies file may build with ``${VAR}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import re
import time
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict

from store.checkpoint import Rejected
from store.errors import StoreError, StoreLocked
from store.files import check_private, private_directory
from store.journal import JournalRecord
from store.lock import StoreLock
from store.nodes import check_node, default_node
from store.schema import SCHEMA_VERSION
from store.sqlite import SqliteStore, controlled, journal_path

log = logging.getLogger(__name__)

CHANNEL = "gatewatch_fleet"  # LISTEN/NOTIFY channel of fleet commands; the payload: the node
_MIGRATION_LOCK = 0x6761_7465  # pg_advisory_xact_lock key while the schema is created
_CURSORS = itertools.count()  # names of server-side cursors
_TOKEN = re.compile(r"'(?:[^']|'')*'|::|:([A-Za-z_]\w*)|\?|%")

# The schema of ``store/schema.py`` at version 10, in PostgreSQL's types. Ids compare byte by
# byte (COLLATE "C"), as SQLite's do: a session id prefix is a range.
PG_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY, protocol TEXT NOT NULL, connection TEXT NOT NULL,
    identity TEXT, identity_kind TEXT, client_addr TEXT, application_name TEXT, database TEXT,
    started_at TEXT NOT NULL, ended_at TEXT, status TEXT NOT NULL, end_reason TEXT,
    target TEXT, masked TEXT, identity_vendor TEXT, node TEXT NOT NULL DEFAULT '');
CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_node ON sessions (node, status);
CREATE TABLE statements (
    session_id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, protocol TEXT NOT NULL,
    text TEXT NOT NULL, params TEXT, started_at TEXT NOT NULL, finished_at TEXT,
    duration_ms DOUBLE PRECISION, status TEXT NOT NULL, command TEXT, rows BIGINT,
    sqlstate TEXT, error TEXT, verdict TEXT NOT NULL DEFAULT 'allow', rule TEXT,
    approval_id TEXT, exit_status BIGINT, masked TEXT, PRIMARY KEY (session_id, seq));
CREATE TABLE audit (
    node TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL, ref BIGINT NOT NULL, body TEXT NOT NULL,
    prev TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (node, seq));
CREATE INDEX audit_session ON audit (session_id, node, seq);
CREATE TABLE approvals (
    id TEXT COLLATE "C" PRIMARY KEY, session_id TEXT COLLATE "C" NOT NULL,
    requester TEXT NOT NULL, connection TEXT NOT NULL, statement TEXT NOT NULL,
    statement_hash TEXT NOT NULL, rule TEXT, reason TEXT, created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL, status TEXT NOT NULL, approvals TEXT, decided_at TEXT,
    decided_by TEXT, decision_reason TEXT, node TEXT NOT NULL DEFAULT '');
CREATE INDEX approvals_status ON approvals (status);
CREATE INDEX approvals_node ON approvals (node, status);
CREATE TABLE ssh_output (
    session_id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, t DOUBLE PRECISION NOT NULL,
    channel BIGINT NOT NULL, stream TEXT NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (session_id, seq));
CREATE TABLE rejected (
    id BIGSERIAL PRIMARY KEY, found_at TEXT NOT NULL, source TEXT NOT NULL, seq BIGINT,
    kind TEXT, session_id TEXT, torn BIGINT NOT NULL, reason TEXT NOT NULL,
    data BYTEA NOT NULL);
CREATE TABLE lockouts (
    id TEXT COLLATE "C" PRIMARY KEY, identity TEXT NOT NULL, connection TEXT,
    until TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
    reason TEXT NOT NULL, session_id TEXT, lifted_at TEXT, lifted_by TEXT, lift_reason TEXT);
CREATE INDEX lockouts_until ON lockouts (until);
CREATE TABLE nodes (
    name TEXT COLLATE "C" PRIMARY KEY, host TEXT, pid BIGINT, started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL, stopped_at TEXT, lost_at TEXT, lost_by TEXT, info TEXT);
CREATE TABLE fleet_commands (
    id BIGSERIAL PRIMARY KEY, node TEXT NOT NULL, command TEXT NOT NULL,
    created_at TEXT NOT NULL, taken_at TEXT);
CREATE INDEX fleet_commands_node ON fleet_commands (node, id);
CREATE TABLE zero_chain (node TEXT NOT NULL)
"""
PG_SCHEMA_VERSION = 10  # the SQLite schema version PG_SCHEMA matches
assert PG_SCHEMA_VERSION == SCHEMA_VERSION, "a new SQLite migration needs its PostgreSQL twin"


@lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """``sql`` as written for SQLite's module (``?``, ``:name``) in psycopg's parameter style
    (``%s``, ``%(name)s``, every ``%`` doubled, in quoted literals too: psycopg reads them
    everywhere); ``?`` and ``:name`` in quoted literals and ``::`` casts are left as they are.
    The statement is always sent with parameters (an empty tuple at least), so that psycopg
    undoubles them. ``BEGIN IMMEDIATE`` (SQLite's write lock up front) is a plain BEGIN."""
    if sql.strip().upper() == "BEGIN IMMEDIATE":
        return "BEGIN"

    def one(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if m.group(1):
            return f"%({m.group(1)})s"
        return token.replace("%", "%%")  # a literal (psycopg reads % even there) or a cast

    return _TOKEN.sub(one, sql)


_INSERT = re.compile(r"\s*INSERT INTO (\w+) \(([^)]*)\)\s*VALUES \(([^)]*)\)\s*", re.I)


@lru_cache(maxsize=64)
def _copy_of(sql: str) -> tuple[str, tuple[str, ...] | None] | None:
    """``COPY table (columns) FROM STDIN`` for an INSERT whose values are all parameters, and
    the parameters' names in column order (None: positional ``?``); None for any other SQL."""
    m = _INSERT.fullmatch(sql)
    if m is None:
        return None
    values = [v.strip() for v in m.group(3).split(",")]
    if all(v == "?" for v in values):
        names = None
    elif all(re.fullmatch(r":\w+", v) for v in values):
        names = tuple(v[1:] for v in values)
    else:
        return None
    return f"COPY {m.group(1)} ({m.group(2)}) FROM STDIN", names


class PgCursor:
    """The result of ``PgConnection.execute``: rows as tuples, as sqlite3's cursor has them."""

    def __init__(self, cur: psycopg.Cursor[Any] | None) -> None:
        self._cur = cur

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._cur is not None and self.description else None

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall() if self._cur is not None and self.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cur) if self._cur is not None and self.description else iter(())

    @property
    def description(self) -> Any:
        return None if self._cur is None else self._cur.description

    @property
    def rowcount(self) -> int:
        return -1 if self._cur is None else self._cur.rowcount

    @property
    def lastrowid(self) -> None:
        return None


class PgConnection:
    """A psycopg connection (autocommit: transactions are the store's own BEGIN/COMMIT)
    behind the part of ``sqlite3.Connection`` the store uses. A connection the server or the
    network ended is opened again by the next statement that starts a transaction or runs
    outside one (a transaction it broke fails, and the store tries its records again)."""

    def __init__(self, conn: psycopg.Connection[Any], dsn: str, *, read_only: bool = False,
                 ) -> None:
        self.raw = conn
        self._dsn, self._read_only = dsn, read_only
        self._transaction = False  # between the store's BEGIN and its COMMIT or ROLLBACK

    def _usable(self) -> psycopg.Connection[Any]:
        """The connection, opened again if it was lost — never inside a transaction: a
        COMMIT on a new connection would report success for statements the old one lost."""
        if (self.raw.closed or self.raw.broken) and not self._transaction:
            self.raw = _connect(self._dsn, read_only=self._read_only)
        return self.raw

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> PgCursor:
        args = params if isinstance(params, dict) else tuple(params)
        statement = pg_sql(sql)
        if statement in ("COMMIT", "ROLLBACK"):
            ending, self._transaction = self._transaction, False
            if statement == "ROLLBACK" and (self.raw.closed or self.raw.broken):
                return PgCursor(None)  # the transaction went with the connection
            if ending and (self.raw.closed or self.raw.broken):
                raise psycopg.OperationalError("the connection to the store was lost in a"
                                               " transaction: nothing of it was written")
        try:
            cur = PgCursor(self._usable().execute(statement, args))  # type: ignore[arg-type]
        except psycopg.OperationalError:
            if self._transaction or not self.lost:
                raise
            # lost before this statement (the server or network ended it while idle): once
            # more on a new connection, as nothing of it ran
            cur = PgCursor(self._usable().execute(statement, args))  # type: ignore[arg-type]
        if statement.startswith("BEGIN"):
            self._transaction = True
        return cur

    @property
    def lost(self) -> bool:
        """The server or the network ended the connection."""
        return bool(self.raw.closed or self.raw.broken)

    def executemany(self, sql: str, rows: Any) -> None:
        """An INSERT of plain values goes as one COPY (about twice as fast as the pipelined
        INSERTs a checkpoint otherwise sends); anything else row by row, pipelined."""
        rows = list(rows)
        if not rows:
            return
        self._usable()
        copy = _copy_of(sql)
        with self.raw.cursor() as cur:
            if copy is None:
                cur.executemany(pg_sql(sql), rows)  # type: ignore[arg-type]
                return
            statement, names = copy
            with cur.copy(statement) as out:  # type: ignore[arg-type]
                for row in rows:
                    out.write_row([row[n] for n in names] if names else row)

    @property
    def in_transaction(self) -> bool:
        if self.raw.closed or self.raw.broken:
            return False
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


class _Rows:
    """``sqlite_utils.Database.query`` over a ``PgConnection``: rows as dicts, read as they are
    iterated inside a transaction (a server-side cursor), all at once outside one."""

    def __init__(self, conn: PgConnection) -> None:
        self._conn = conn

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[list[str], Any]]:
        """(column names, row) of ``sql``."""
        if not self._conn.in_transaction:
            cur = self._conn.execute(sql, params)
            names = [d.name for d in cur.description or ()]
            for row in cur.fetchall():
                yield names, row
            return
        with self._conn.raw.cursor(name=f"gatewatch_{next(_CURSORS)}") as named:
            named.itersize = 2000
            try:
                named.execute(pg_sql(sql), tuple(params))  # type: ignore[arg-type]
            except psycopg.errors.NoActiveSqlTransaction:
                # The transaction ended between the look and the DECLARE (another user of
                # the connection committed): read the rows at once instead (nothing was
                # yielded yet). A node's control connection was closed on this.
                cur = self._conn.execute(sql, params)
                names = [d.name for d in cur.description or ()]
                for row in cur.fetchall():
                    yield names, row
                return
            names = [d.name for d in named.description or ()]
            for row in named:
                yield names, row

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        for names, row in self.stream(sql, params):
            yield dict(zip(names, row, strict=True))


def _connect(dsn: str, *, read_only: bool = False, keepalive: bool = False,
             ) -> psycopg.Connection[Any]:
    options = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
               "keepalives_count": 3} if keepalive else {}
    name = "gatewatch-node" if keepalive else "gatewatch-store"
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name=name,
                           **options)  # type: ignore[arg-type]
    try:
        if keepalive:  # the server's side: a dead machine's backend ends, and its lock goes
            conn.execute("SET tcp_keepalives_idle = 10")
            conn.execute("SET tcp_keepalives_interval = 5")
            conn.execute("SET tcp_keepalives_count = 3")
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
    except BaseException:
        conn.close()
        raise
    return conn


def _node_key(node: str) -> int:
    """The advisory lock key of ``node``: 63 bits of a hash of its name."""
    return int.from_bytes(hashlib.sha256(f"gatewatch node {node}".encode()).digest()[:8],
                          "big") >> 1


def shown(dsn: str) -> str:
    """``dsn`` without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)


def local_base(dsn: str) -> Path:
    """Where a node keeps its journal for the database ``dsn`` when not told
    (``engine.local_store``): ``$XDG_STATE_HOME/gatewatch/pg-HOST-PORT-DB``."""
    info = conninfo_to_dict(dsn)
    name = "-".join(str(info.get(k) or d) for k, d in
                    (("host", "local"), ("port", "5432"), ("dbname", "postgres")))
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "gatewatch" / ("pg-" + re.sub(r"[^A-Za-z0-9._-]", "_", name))


class PostgresStore(SqliteStore):
    """A ``SqliteStore`` whose database is PostgreSQL: the journal, replay, chains, nodes and
    reads are the same code; connections, schema, clock and fleet commands are PostgreSQL's."""

    dialect = "postgresql"
    # Its checkpoints wait on the network more than they compute: they stay in a thread.
    offloads = False

    def __init__(self, dsn: str, local: Path, conn: PgConnection, *, writer: bool, node: str,
                 durability: str = "normal", lock: StoreLock | None = None,
                 holder: psycopg.Connection[Any] | None = None) -> None:
        self.dsn = dsn
        self._holder = holder
        self._controls: PgConnection | None = None
        super().__init__(local, conn, writer=writer, node=node,  # type: ignore[arg-type]
                         durability=durability, lock=lock)

    def _database(self, conn: Any) -> Any:
        return _Rows(conn)

    def _connect_writer(self) -> Any:
        self._file = None  # the database is not a file here
        return PgConnection(_connect(self.dsn), self.dsn)

    def _control_conn(self) -> Any:
        if self._control is None:
            self._control = PgConnection(  # type: ignore[assignment]
                _connect(self.dsn), self.dsn)
        return self._control

    def _clock(self) -> float:
        """The database server's clock: the nodes' machines may disagree. Read on the
        reading connection, which nothing holds for long (``lost_nodes`` runs on the event
        loop while a takeover may hold the control connection)."""
        row = self.conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
        return float(row[0])

    def has_table(self, name: str) -> bool:
        return bool(self.conn.execute("SELECT to_regclass(?) IS NOT NULL",
                                      (name,)).fetchone()[0])

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[Any]:
        for _, row in _Rows(self.conn).stream(sql, args):  # type: ignore[arg-type]
            yield row

    def _restore(self) -> None:
        """The local file ``local`` names is no store here (the database is): nothing to
        put back."""
        self._file = None

    def begin_read(self) -> bool:
        if self.conn.in_transaction:
            return False
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return True

    def output(self, session_id: str, after: int = 0,
               limit: int = 10_000) -> list[tuple[int, float, int, str, bytes]]:
        return [(seq, t, ch, st, bytes(data)) for seq, t, ch, st, data in
                super().output(session_id, after, limit)]

    def _replay_other(self, node: str) -> int:
        """As SQLite's (the journal a node of this machine left), after checking that no
        engine anywhere holds ``node``'s advisory lock."""
        key = _node_key(node)
        conn = self._control_conn()
        if not conn.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone()[0]:
            raise StoreLocked(f"node {node} holds its lock on the store")
        try:
            return super()._replay_other(node)
        finally:
            conn.execute("SELECT pg_advisory_unlock(?)", (key,))

    @controlled
    def notify(self, node: str, command: dict[str, Any]) -> int:
        conn = self._control_conn()
        conn.execute("BEGIN")
        try:
            row = conn.execute(
                "INSERT INTO fleet_commands (node, command, created_at) VALUES (?, ?, ?)"
                " RETURNING id", (node, orjson.dumps(command, option=orjson.OPT_SORT_KEYS)
                                  .decode(), _utc(self._clock()))).fetchone()
            conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, node))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(row[0])

    async def listen(self, node: str | None = None) -> AsyncGenerator[dict[str, Any], None]:
        """The commands sent to ``node``, each once: woken by NOTIFY (and every second, in
        case a notification was missed); a lost connection is opened again."""
        node = self.node if node is None else node
        while True:
            try:
                aconn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, application_name="gatewatch-fleet")
            except psycopg.OperationalError as exc:
                log.warning("cannot listen for fleet commands (%s): trying again", exc)
                await asyncio.sleep(1.0)
                continue
            try:
                await aconn.execute(f"LISTEN {CHANNEL}")
                while True:
                    cur = await aconn.execute(
                        "UPDATE fleet_commands SET taken_at = %s WHERE id IN (SELECT id FROM"
                        " fleet_commands WHERE node = %s AND taken_at IS NULL ORDER BY id FOR"
                        " UPDATE SKIP LOCKED) RETURNING id, command",
                        (_utc(time.time()), node))
                    for cid, text in sorted(await cur.fetchall()):
                        yield {**orjson.loads(text), "id": int(cid)}
                    async for note in aconn.notifies(timeout=1.0, stop_after=1):
                        del note  # any node's: look again
            except psycopg.OperationalError as exc:
                log.warning("lost the connection that listens for fleet commands (%s):"
                            " opening it again", exc)
                await asyncio.sleep(0.2)
            finally:
                await aconn.close()

    def _write_or_error(self, records: list[tuple[JournalRecord, dict[str, Any]]],
                        rejected: Iterable[Rejected] = (), *, node: str | None = None,
                        conn: Any = None) -> StoreError | None:
        """As SQLite's, while this engine holds its node's advisory lock: while the connection
        that held it is lost (a restarted server, a network cut) nothing is written — another
        engine could take the name — until the next heartbeat (off the event loop) takes it
        again. Statements are refused meanwhile, as with any store that cannot be written."""
        if self._holder is not None and (self._holder.closed or self._holder.broken):
            return StoreError(f"this engine's hold on node {self.node} in {shown(self.dsn)} was"
                              " lost: nothing is written until its next heartbeat takes it"
                              " again")
        return super()._write_or_error(records, rejected, node=node, conn=conn)

    def _keep_holder(self) -> None:
        """The node's advisory lock taken again on a new connection when the one that held
        it was lost; StoreError when another engine took the name meanwhile (then nothing is
        written until this one is stopped)."""
        if self._holder is None or not (self._holder.closed or self._holder.broken):
            return
        try:
            self._holder = _hold(self.dsn, self.node)
        except StoreLocked as exc:
            raise StoreError(f"this engine lost its hold on node {self.node} and another took"
                             f" it: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"cannot hold node {self.node} in {shown(self.dsn)}: {exc}"
                             ) from exc
        log.warning("node %s holds its lock in the store again (its connection was lost)",
                    self.node)

    def heartbeat(self) -> None:
        self._keep_holder()
        super().heartbeat()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._holder is not None:
                self._holder.close()  # lets go of the node's advisory lock
                self._holder = None


def _utc(ts: float) -> str:
    from store.ops import utc

    return utc(ts)


def open_postgres(dsn: str, *, node: str | None = None, durability: str = "normal",
                  readonly: bool = False, local: Path | None = None) -> PostgresStore:
    """Open the PostgreSQL store at ``dsn``: read-only, or as the writer of node ``node`` (by
    default this host's name), which takes the node's lock here (beside ``local``) and in
    the database, creates or migrates the schema, and replays its local journal. Raises
    ``StoreError``; ``StoreLocked`` when an engine runs as that node."""
    node = check_node(default_node() if node is None else node)
    base = local_base(dsn) if local is None else local
    try:
        if readonly:
            conn = PgConnection(_connect(dsn, read_only=True), dsn, read_only=True)
            try:
                if _version(conn) != PG_SCHEMA_VERSION:
                    raise StoreError(f"no Gatewatch store at {shown(dsn)}: has the engine run"
                                     " with this policies file?")
                return PostgresStore(dsn, base, conn, writer=False, node=node)
            except BaseException:
                conn.close()
                raise
        return _open_writer(dsn, base, node, durability)
    except psycopg.Error as exc:
        raise StoreError(f"cannot open the store {shown(dsn)}: {exc}".strip()) from exc


def _open_writer(dsn: str, base: Path, node: str, durability: str) -> PostgresStore:
    try:
        private_directory(base.parent)
        check_private(base)
        lock = StoreLock.acquire(base, node)
    except OSError as exc:
        raise StoreError(f"cannot open the local journal beside {base}: {exc.strerror or exc}"
                         ) from exc
    holder = conn = None
    try:
        holder = _hold(dsn, node)
        conn = PgConnection(_connect(dsn), dsn)
        _migrate(conn)
        return PostgresStore(dsn, base, conn, writer=True, node=node, durability=durability,
                             lock=lock, holder=holder)
    except BaseException:
        if conn is not None:
            conn.close()
        if holder is not None:
            holder.close()
        lock.release()
        raise


def _hold(dsn: str, node: str) -> psycopg.Connection[Any]:
    """A connection holding ``node``'s advisory lock; StoreLocked when another has it."""
    holder = _connect(dsn, keepalive=True)
    try:
        if not holder.execute("SELECT pg_try_advisory_lock(%s)",
                              (_node_key(node),)).fetchone()[0]:  # type: ignore[index]
            raise StoreLocked(
                f"the store {shown(dsn)} is in use by another engine as node {node}: stop that"
                " one first, or give this one a node name of its own (engine.node)")
    except BaseException:
        holder.close()
        raise
    return holder


def _version(conn: PgConnection) -> int:
    if not conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _migrate(conn: PgConnection) -> None:
    """Create the schema once, whichever node starts first (a transaction-scoped advisory
    lock serialises nodes starting together)."""
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        version = _version(conn)
        if version > PG_SCHEMA_VERSION:
            raise StoreError(f"store schema {version} is newer than this Gatewatch"
                             f" ({PG_SCHEMA_VERSION})")
        if version == 0:
            for statement in PG_SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                         (str(PG_SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


__all__ = ["PgConnection", "PostgresStore", "journal_path", "open_postgres", "pg_sql"]
