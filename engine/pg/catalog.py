"""The table columns behind result columns, read from the target's catalog for column masking.

A RowDescription names each result column as the query spelled it (``SELECT email AS e`` says
``e``) but also carries the table OID and attribute number of a column read straight from a
table. Column masking rules name table columns (``customers.email``), so an alias must not
escape them: ``TableCatalog`` turns (table OID, attnum) into (schema, table, column).

One catalog per connection and database, shared by its sessions. A lookup opens its own short
connection to the target with the connection's credential, through the same login code as the
sessions (TLS settings, allowed authentication methods), runs one catalog query for every table
it was asked about, and closes. These queries are the gateway's own: they are not recorded as
statements, and the target sees them with ``application_name`` ``gatewatch catalog``.

What it costs: one round trip to the target (plus a login) the first time a session's result
comes from a table, then nothing for ``TTL`` seconds. A column renamed in the meantime keeps its
old name here until the entry expires; that is the window in which a rename can move a column
out of (or into) a rule.

Failing closed: when the catalog cannot be read (the target refuses the extra connection, times
out, answers an error), the tables asked about are marked ``UNAVAILABLE`` for ``RETRY`` seconds
and the caller masks their columns as if a rule named them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from engine.config import Upstream
from engine.masking.lineage import Function, Relation, Source
from engine.masking.pg import UNAVAILABLE, ColumnSource, Unavailable
from engine.pg import codec, messages, startup
from engine.pg.side import PeerClosed

log = logging.getLogger(__name__)

TTL = 60.0
RETRY = 10.0
APPLICATION_NAME = "gatewatch catalog"


class CatalogError(Exception):
    """The catalog could not be read; the detail is for the log."""


class TableCatalog:
    def __init__(self, upstream: Upstream, database: str, max_message_size: int,
                 *, ttl: float = TTL, retry: float = RETRY) -> None:
        self.upstream = upstream
        self.database = database
        self.max_message_size = max_message_size
        self.ttl = ttl
        self.retry = retry
        # table oid → (valid until, {attnum: source} or UNAVAILABLE)
        self._tables: dict[int, tuple[float, dict[int, ColumnSource] | Unavailable]] = {}
        self._lock = asyncio.Lock()
        self.lookups = 0  # catalog queries run (for tests and statistics)
        # Relations and functions by name, for lineage (``engine.masking.lineage``): name →
        # (valid until, every relation or function of that name in any schema). A lookup that
        # failed leaves the name out, and lineage fails closed on it.
        self._relations: dict[str, tuple[float, list[Relation]]] = {}
        self._functions: dict[str, tuple[float, list[Function]]] = {}
        self.unreadable: set[str] = set()  # names whose lookup failed (until retried)
        # Table columns that statements of this connection's sessions wrote values into, and
        # the sources of those values (lineage): a read of the column carries them on. Kept in
        # memory for the engine's life (not persisted, not expired: a restart forgets them).
        self._derived: dict[tuple[str, str], frozenset[Source]] = {}
        self.generation = 0  # bumped by ``invalidate``: a lookup begun before is not kept

    def invalidate(self) -> None:
        """Forget every cached entry (a session changed the catalog: DDL). What was written
        where (``taint``) is kept."""
        self.generation += 1
        self._tables.clear()
        self._relations.clear()
        self._functions.clear()

    def taint(self, table: str, column: str, sources: frozenset[Source]) -> None:
        """Values computed from ``sources`` were written into ``table.column`` ("*": any
        column of the table)."""
        key = (table.lower(), "*" if column == _ANY_COLUMN else column.lower())
        if len(self._derived) >= _MAX_DERIVED and key not in self._derived:
            key = (key[0], "*")  # bounded: beyond this, a table is tainted whole
        self._derived[key] = self._derived.get(key, frozenset()) | sources

    def derived(self, table: str, column: str) -> frozenset[Source]:
        """The sources of values written into this table column (see ``taint``)."""
        if not self._derived:
            return frozenset()
        t = table.lower()
        found = self._derived.get((t, column.lower()), frozenset())
        for source in self._derived.get((t, "*"), frozenset()):
            # A table renamed from another: its column of this name, under the old name.
            found |= {source._replace(column=column) if source.column == "*" else source}
        return found

    def known(self, table_oid: int) -> bool:
        """Whether ``column`` can answer for this table now, without a lookup."""
        entry = self._tables.get(table_oid)
        return entry is not None and entry[0] > time.monotonic()

    def column(self, table_oid: int, attnum: int) -> ColumnSource | Unavailable | None:
        """The table column behind a result column; None for a table or column that does not
        exist (any more), UNAVAILABLE when the catalog could not be read."""
        entry = self._tables.get(table_oid)
        if entry is None:
            return None
        columns = entry[1]
        if isinstance(columns, Unavailable):
            return UNAVAILABLE
        return columns.get(attnum)

    def relations(self, name: str) -> list[Relation] | None:
        """Every relation named ``name``; None when not looked up (or expired)."""
        entry = self._relations.get(name)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def functions(self, name: str) -> list[Function] | None:
        entry = self._functions.get(name)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    async def resolve_names(self, relations: frozenset[str], functions: frozenset[str]) -> bool:
        """Look relations and functions up by name. False when the catalog could not be read
        (the caller fails closed); never raises."""
        async with self._lock:
            now = time.monotonic()
            generation = self.generation
            rels = sorted(n for n in relations if self.relations(n) is None)[:_MAX_NAMES]
            fns = sorted(n for n in functions if self.functions(n) is None)[:_MAX_NAMES]
            if not rels and not fns:
                return True
            self.lookups += 1
            try:
                rows = await self._run(names_query(rels, fns))
            except Exception as exc:  # fail closed: the caller masks what depends on them
                log.warning("masking: cannot read the catalog of database %r to follow a "
                            "statement's lineage (%s); its computed columns are masked",
                            self.database, exc)
                return False
            found_rel: dict[str, list[Relation]] = {n: [] for n in rels}
            found_fn: dict[str, list[Function]] = {n: [] for n in fns}
            for kind, schema, name, sub, columns, text in rows:
                if kind == "r" and name in found_rel:
                    cols = tuple(json.loads(columns or "[]"))
                    found_rel[name].append(Relation(schema or "", name, sub or "", cols, text))
                elif kind == "f" and name in found_fn:
                    found_fn[name].append(Function(schema or "", name, sub or "", text or ""))
            if generation != self.generation:
                return True  # the catalog changed meanwhile: the caller asks again
            until = now + self.ttl
            for n, r in found_rel.items():
                self._relations[n] = (until, r)
            for n, f in found_fn.items():
                self._functions[n] = (until, f)
            return True

    async def resolve(self, table_oids: set[int] | frozenset[int]) -> None:
        """Read the columns of these tables into the cache. Never raises: a failure marks the
        tables UNAVAILABLE (and is logged), so the caller can go on, masking them."""
        async with self._lock:  # sessions asking at once share one lookup
            wanted = sorted(o for o in table_oids if not self.known(o))
            if not wanted:
                return
            generation = self.generation
            self.lookups += 1
            try:
                found = await self._query(wanted)
            except Exception as exc:  # whatever went wrong, the tables are masked: fail closed
                log.warning("masking: cannot read the catalog of database %r to see which "
                            "table columns a result holds (%s); their values are masked until "
                            "it can be read", self.database, exc)
                until = time.monotonic() + self.retry
                for oid in wanted:
                    self._tables[oid] = (until, UNAVAILABLE)
                return
            # Kept even when the catalog changed meanwhile (the caller needs an answer now), but
            # only until the next lookup: OIDs name one table for its whole life.
            until = time.monotonic() + (self.ttl if generation == self.generation else 0.5)
            for oid in wanted:
                self._tables[oid] = (until, found.get(oid, {}))

    async def _query(self, oids: list[int]) -> dict[int, dict[int, ColumnSource]]:
        found: dict[int, dict[int, ColumnSource]] = {}
        for row in await self._run(catalog_query(oids)):
            if len(row) != 5 or any(v is None for v in row):
                raise CatalogError("the catalog query answered a malformed row")
            oid, attnum, schema, table, column = (str(v) for v in row)
            found.setdefault(int(oid), {})[int(attnum)] = ColumnSource(schema, table, column)
        return found

    async def _run(self, sql: str) -> list[list[str | None]]:
        """Every row of ``sql``'s results, as text, on a connection of the gateway's own."""
        params = {"user": self.upstream.user, "database": self.database,
                  "application_name": APPLICATION_NAME, "client_encoding": "UTF8"}
        try:
            greeting = await startup.connect_upstream(self.upstream, params,
                                                      self.max_message_size)
        except startup.UpstreamUnavailable as exc:
            raise CatalogError(str(exc)) from exc
        side = greeting.side
        rows: list[list[str | None]] = []
        error: str | None = None
        try:
            async with asyncio.timeout(self.upstream.connect_timeout):
                side.write(codec.message(b"Q", codec.cstr(sql)))
                while True:
                    tag, body = await side.read_message(self.max_message_size)
                    if tag == ord("D"):
                        rows.append(_row(body))
                    elif tag == ord("E"):
                        fields = messages.error_fields(body)
                        error = f"{fields.get('C', '')} {fields.get('M', 'error')}"
                    elif tag == ord("Z"):
                        if error is not None:
                            raise CatalogError(f"the catalog query failed: {error}")
                        return rows
        except TimeoutError as exc:
            raise CatalogError("the catalog query timed out") from exc
        except PeerClosed as exc:
            raise CatalogError("the target closed the catalog connection") from exc
        finally:
            side.write(codec.message(b"X"))
            side.close()

def catalog_query(oids: list[int]) -> str:
    """The one query a lookup runs. The OIDs are integers from a RowDescription, formatted as
    such: nothing a client sends ends up in this text."""
    listed = ",".join(str(int(o)) for o in oids)
    return (
        "SELECT a.attrelid::int8, a.attnum, n.nspname, c.relname, a.attname"
        " FROM pg_catalog.pg_attribute a"
        " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE a.attrelid IN ({listed}) AND a.attnum > 0 AND NOT a.attisdropped"
    )


_MAX_DERIVED = 10_000  # table columns remembered as written from other columns
_ANY_COLUMN = "\0any"  # lineage's name for a column of a relation it does not know
_MAX_NAMES = 2000  # names per lookup (a function body's words are looked up as relations)


def _literal(name: str) -> str:
    return "'" + name.replace("\x00", "").replace("'", "''") + "'"


def names_query(relations: list[str], functions: list[str]) -> str:
    """Relations (kind, columns, a view's definition) and functions (language, body) by name.
    The names come from a client's statement: each is a quoted literal, nothing else."""
    rels = "ARRAY[" + ",".join(map(_literal, relations)) + "]::text[]"
    fns = "ARRAY[" + ",".join(map(_literal, functions)) + "]::text[]"
    return (
        "SELECT 'r', n.nspname::text, c.relname::text, c.relkind::text,"
        " (SELECT coalesce(json_agg(a.attname::text ORDER BY a.attnum), '[]')::text"
        "  FROM pg_catalog.pg_attribute a"
        "  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),"
        " CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END"
        " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE c.relname = ANY({rels}) AND c.relkind IN ('r', 'v', 'm', 'f', 'p')"
        " UNION ALL"
        # A SQL-standard body (BEGIN ATOMIC ... END, RETURN ...) is not in prosrc (empty) but
        # in prosqlbody; pg_get_functiondef prints it on every version that has one.
        " SELECT 'f', n.nspname::text, p.proname::text, l.lanname::text, NULL,"
        " CASE WHEN p.prosrc = '' THEN pg_catalog.pg_get_functiondef(p.oid) ELSE p.prosrc END"
        " FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
        " JOIN pg_catalog.pg_language l ON l.oid = p.prolang"
        f" WHERE p.proname = ANY({fns})"
    )


def _row(body: bytes) -> list[str | None]:
    count = int.from_bytes(body[0:2], "big")
    values: list[str | None] = []
    pos = 2
    for _ in range(count):
        size = int.from_bytes(body[pos:pos + 4], "big", signed=True)
        pos += 4
        if size < 0:
            values.append(None)
            continue
        if pos + size > len(body):
            raise CatalogError("the catalog query answered a malformed row")
        values.append(body[pos:pos + size].decode("utf-8", "replace"))
        pos += size
    return values
