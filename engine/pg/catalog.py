"""The table columns behind result columns, read from the target's catalog for column masking.

A RowDescription names each result column as the query spelled it (``SELECT email AS e`` says
``e``) but also carries the table OID and attribute number of a column read straight from a
table. Column masking rules name table columns (``customers.email``), so an alias must not
escape them: ``TableCatalog`` turns (table OID, attnum) into (schema, table, column).

One catalog per connection and database, shared by its sessions. Lookups run on a connection
of the catalog's own to the target with the connection's credential, through the same login
code as the sessions (TLS settings, allowed authentication methods), kept open while in use
(closed after ``IDLE`` seconds unused, opened again when needed): one catalog query for every
table it was asked about. These queries are the gateway's own: they are not recorded as
statements, and the target sees them with ``application_name`` ``gatewatch catalog``.

What it costs: one round trip to the target the first time a session's result comes from a
table, then nothing for ``TTL`` seconds, unless a check of lineage's names (below) finds one of
its relations changed, which drops these entries.

Lineage's names (relations, views, functions, triggers) are cached too, but never trusted
without a check: each statement whose lineage used them has them checked once
(``resolve_names`` with cached names, ``stamp``): one query on a connection the catalog keeps
open compares a version of each name (the ``xmin`` of its catalog rows: pg_class, pg_namespace,
pg_attribute, pg_rewrite, pg_trigger, pg_attrdef, pg_proc) with the cached one, and reads
again what changed. A view replaced directly on the target is seen by the next statement.
The same query gives the target's snapshot (``txid_current_snapshot``: which transactions had
ended), and reads no version when that snapshot is the one of the last check and every name
was confirmed at it: catalog rows change only in transactions, so when none ended since,
nothing changed (``_resolve_names``). The check is taken after the statement's result arrived,
never before: it proves what the statement saw.

What a check costs the target: while the snapshot stays the one of the last check (no
transaction ended: a read-only load), the check asks for the snapshot alone
(``SNAPSHOT_QUERY``, about 10 µs of the target's time); once a check finds it moved, the next
ones ask for the versions at once, in the prepared probe, until one finds it still again. The
probe is planned once (``plan_cache_mode = force_generic_plan``): PostgreSQL otherwise
re-planned it at every execution (its parameters make a custom plan look cheaper), about
0.7 ms of the target's CPU per check, more than the statement it checked.

What statements wrote (``taint``) is kept in a journal beside the store (``taint_file``), keyed
by the target (host, port, database): it outlives a restart, and engines (workers) sharing the
store's directory read what the others wrote before each check.

Failing closed: when the catalog cannot be read (the target refuses the extra connection, times
out, answers an error), the tables asked about are marked ``UNAVAILABLE`` for ``RETRY`` seconds
and the caller masks their columns as if a rule named them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import Upstream
from engine.masking.lineage import Function, Relation, Source
from engine.masking.pg import UNAVAILABLE, ColumnSource, Unavailable
from engine.pg import codec, messages, startup
from engine.pg.side import PeerClosed
from engine.tasks import spawn

log = logging.getLogger(__name__)

TTL = 60.0
_KNOWN = 10_000
RETRY = 10.0
IDLE = 30.0  # seconds the catalog's own connection stays open unused
APPLICATION_NAME = "gatewatch catalog"


def taint_file(store: Path) -> Path:
    """Where the journal of what was written from what lives: beside the store."""
    return store.with_name(store.name + ".taint")


class CatalogError(Exception):
    """The catalog could not be read; the detail is for the log."""


class TableCatalog:
    def __init__(self, upstream: Upstream, database: str, max_message_size: int,
                 *, ttl: float = TTL, retry: float = RETRY,
                 taint_file: Path | None = None) -> None:
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
        # the sources of those values (lineage): a read of the column carries them on. Never
        # expired; kept in ``taint_file`` (when given), which other engines append to too.
        self._derived: dict[tuple[str, str], frozenset[Source]] = {}
        self.generation = 0  # bumped by ``invalidate``: a lookup begun before is not kept
        # Checks of lineage's names: ``checks`` counts lookups, ``_stamps`` says at which one
        # each name was last read or checked (``StatementFlow.lineage`` compares).
        self.checks = 0
        self._stamps: dict[str, int] = {}
        self._versions: dict[tuple[str, str], str] = {}  # (kind, name) → version
        self.probes = 0  # version checks run (for tests and statistics)
        # The target's snapshot (txid_current_snapshot) at the last check, and the names whose
        # cached version was the target's at that snapshot: while the snapshot is the same, no
        # transaction that could have changed the catalog has ended, so neither have they
        # (``_resolve_names``).
        self._snapshot: str | None = None
        self._fresh: set[tuple[str, str]] = set()
        self.quick = 0  # checks the snapshot answered alone (for tests and statistics)
        # Whether the last check found the snapshot it was gated on: the next asks for the
        # snapshot alone (``SNAPSHOT_QUERY``) rather than the versions too.
        self._still = False
        self._generic = False  # whether the target has plan_cache_mode (PostgreSQL 12+)
        # Bumped whenever what lineage reads of this catalog may have changed (an entry read
        # again, dropped or expired and read, a taint added): a lineage computed at the same
        # value, from the same statement, is the same (``StatementFlow``).
        self.changes = 0
        self._side: Any = None  # the catalog's own connection, kept open between queries
        self._prepared = False  # whether the version probe is prepared on it
        # Names asked about while a lookup runs, served together by the next one.
        self._batch: tuple[set[str], set[str], asyncio.Future[bool]] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._used = 0.0  # when the connection was last used (it closes ``IDLE`` after)
        # Checks asked through ``check_names``, for the next check; whether one runs; the
        # probe on the connection, driven by its callbacks, when one is in flight.
        self._waiting: list[_Asked] = []
        self._checking = False
        self._probe: _Probe | None = None
        self._target = f"{upstream.host}:{upstream.port}/{database}"
        self._looking: set[str] = set()  # relations ``look_up`` reads now
        # Relations by name as last read, never expired (``last_known``), the most recent
        # ``_KNOWN`` names.
        self._known: dict[str, list[Relation]] = {}
        # Functions (operators, types) by name as last read, never expired: the guard's
        # view of users' overloads of PostgreSQL's names (``last_known_functions``).
        self._known_functions: dict[str, list[Function]] = {}
        self.taint_file = taint_file
        self._taint_read = 0  # bytes of the journal read so far
        if taint_file is not None:
            self._read_taints()

    def invalidate(self) -> None:
        """Forget every cached entry (a session changed the catalog: DDL). What was written
        where (``taint``) is kept."""
        self.generation += 1
        self.changes += 1
        self._snapshot = None
        self._fresh.clear()
        self._tables.clear()
        self._relations.clear()
        self._functions.clear()
        self._stamps.clear()

    def stamp(self, name: str) -> int:
        """The lookup at which ``name`` (a relation's or a function's) was last read or
        checked against the target; 0 if never."""
        return self._stamps.get(name, 0)

    def taint(self, table: str, column: str, sources: frozenset[Source]) -> None:
        """Values computed from ``sources`` were written into ``table.column`` ("*": any
        column of the table; table "*": any table, when code the gateway cannot read ran)."""
        if self._add_taint(table, column, sources) and self.taint_file is not None:
            record = {"target": self._target, "table": table, "column": column,
                      "sources": sorted(([s.schema, s.table, s.column] for s in sources),
                                        key=lambda source: [v or "" for v in source])}
            line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
            try:
                fd = os.open(self.taint_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
            except OSError as exc:  # kept in memory for this engine's life all the same
                log.error("masking: cannot keep what was written from masked columns in %s "
                          "(%s): a restart would forget it", self.taint_file, exc)

    def _add_taint(self, table: str, column: str, sources: frozenset[Source]) -> bool:
        key = (table.lower(), "*" if column in (_ANY_COLUMN, "*") else column.lower())
        if len(self._derived) >= _MAX_DERIVED and key not in self._derived:
            key = (key[0], "*")  # bounded: beyond this, a table is tainted whole
        before = self._derived.get(key, frozenset())
        if sources <= before:
            return False
        self._derived[key] = before | sources
        self.changes += 1
        return True

    def _read_taints(self) -> None:
        """What this and other engines wrote into the journal since it was last read."""
        path = self.taint_file
        if path is None:
            return
        try:
            size = os.stat(path).st_size
            if size <= self._taint_read:
                return
            with path.open("rb") as f:
                f.seek(self._taint_read)
                data = f.read(size - self._taint_read)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("masking: cannot read %s (%s)", path, exc)
            return
        done = data.rfind(b"\n") + 1  # a line being appended is read next time
        self._taint_read += done
        for line in data[:done].splitlines():
            try:
                record = json.loads(line)
                if record.get("target") != self._target:
                    continue
                sources = frozenset(Source(sc, t, c) for sc, t, c in record["sources"])
                self._add_taint(str(record["table"]), str(record["column"]), sources)
            except (ValueError, KeyError, TypeError):
                # A line that cannot be read: what it said is unknown, so anything may be
                # anywhere (fail closed).
                log.error("masking: %s holds a line it cannot read: every table's columns "
                          "are masked as lineage-unknown", path)
                self._add_taint("*", "*", frozenset({Source(None, "", "")}))

    def derived(self, table: str, column: str) -> frozenset[Source]:
        """The sources of values written into this table column (see ``taint``)."""
        if not self._derived:
            return frozenset()
        t = table.lower()
        found = self._derived.get((t, column.lower()), frozenset())
        for source in self._derived.get((t, "*"), frozenset()):
            # A table renamed from another: its column of this name, under the old name.
            found |= {source._replace(column=column) if source.column == "*" else source}
        found |= self._derived.get(("*", "*"), frozenset())
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

    def last_known(self, name: str) -> list[Relation] | None:
        """Every relation named ``name`` as last read, expired or dropped from the cache since
        (by ``invalidate`` too): the guard's view of stored code (``engine.pg.storedcode``)
        must not go blind when a session's DDL empties the cache. None: never read."""
        return self._known.get(name)

    def functions(self, name: str) -> list[Function] | None:
        entry = self._functions.get(name)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def last_known_functions(self, name: str) -> list[Function] | None:
        """Every function (operator, type) named ``name`` as last read, expired since or not
        (``last_known``'s twin, for the guard's ``overloads``). None: never read."""
        return self._known_functions.get(name)

    async def resolve_names(self, relations: frozenset[str], functions: frozenset[str]) -> bool:
        """Look relations and functions up by name; names already cached are checked against
        the target's catalog and read again if they changed. Every name asked about is
        stamped with this lookup (``stamp``). False when the catalog could not be read: the
        names asked about are then forgotten, so lineage fails closed on them; never raises.

        Sessions asking while another lookup runs are served together by the next one (one
        query for all of them): each statement's check costs one round trip, not a queue."""
        batch = self._batch
        if batch is not None:  # a lookup waits for its turn: ride with it
            batch[0].update(relations)
            batch[1].update(functions)
            return await asyncio.shield(batch[2])
        batch = self._batch = (set(relations), set(functions),
                               asyncio.get_running_loop().create_future())
        try:
            async with self._lock:
                self._batch = None  # from here on, newcomers wait for the next lookup
                found = await self._resolve_names(frozenset(batch[0]), frozenset(batch[1]))
        except BaseException:
            if self._batch is batch:
                self._batch = None
            if not batch[2].done():
                batch[2].set_result(False)
            raise
        batch[2].set_result(found)
        return found

    def look_up(self, relation: str, *, function: bool = False) -> None:
        """Read ``relation`` (a function's name when ``function``) by name in the background,
        once at a time, for a caller that only reads the cache (the guard's
        ``engine.pg.storedcode`` where no masking drives the checks, its ``overloads``):
        what it finds serves ``relations`` (``functions``) until it expires (``ttl``)."""
        key = f"fn:{relation}" if function else relation
        if key in self._looking:
            return
        self._looking.add(key)

        async def read() -> None:
            try:
                names = frozenset({relation})
                await self.resolve_names(frozenset() if function else names,
                                         names if function else frozenset())
            finally:
                self._looking.discard(key)

        spawn(read(), f"catalog look-up {self._target}")

    def check_names(self, relations: frozenset[str], functions: frozenset[str],
                    done: Callable[[bool], None]) -> None:
        """``resolve_names`` for a caller that is not a coroutine: ``done(found)`` is called
        once the check has answered, never before this returns.

        Callers asking while a check runs are served together by the next one, whose snapshot
        is taken after they asked. When every name is cached, the check is one probe written
        on the catalog's connection and read by its callbacks, without a task or a coroutine
        (``_probe_now``); otherwise, or when the probe finds a name changed, it goes through
        ``_resolve_names`` (which reads what changed)."""
        self._waiting.append((relations, functions, done))
        if not self._checking:
            self._next_check()

    def _next_check(self) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:
            self._checking = False
            return
        self._checking = True
        rels = frozenset().union(*(b[0] for b in batch))
        fns = frozenset().union(*(b[1] for b in batch))
        if not self._probe_now(rels, fns, batch):
            spawn(self._check_slowly(rels, fns, batch), f"catalog check {self._target}")

    async def _check_slowly(self, rels: frozenset[str], fns: frozenset[str],
                            batch: list[_Asked]) -> None:
        found = False
        try:
            async with self._lock:
                found = await self._resolve_names(rels, fns)
        finally:
            self._checked(batch, found)

    def _checked(self, batch: list[_Asked], found: bool) -> None:
        """Tell each caller of ``batch``, then start the next check."""
        for _, _, done in batch:
            try:
                done(found)
            except Exception:  # one caller's bug must not leave the others waiting
                log.exception("masking: a session failed to take its catalog check's answer")
        self._next_check()

    def _probe_now(self, rels: frozenset[str], fns: frozenset[str],
                   batch: list[_Asked]) -> bool:
        """Start the probe of ``_resolve_names`` by callbacks, when it can answer alone: the
        connection is open, idle and has the probe prepared, and every name is cached. False:
        nothing was started."""
        side = self._side
        if (side is None or side.closed or side.buffered or not self._prepared
                or self._lock.locked() or self._probe is not None
                or len(rels) > _MAX_NAMES or len(fns) > _MAX_NAMES):
            return False
        rel_list, fn_list = sorted(rels), sorted(fns)
        if not (rel_list or fn_list) or any(self.relations(n) is None for n in rel_list) or any(
                self.functions(n) is None for n in fn_list):
            return False
        self.checks += 1
        self._read_taints()
        self.probes += 1
        asked = [("r", n) for n in rel_list] + [("f", n) for n in fn_list]
        gate = self._gate(asked)
        probe = self._probe = _Probe(self, rels, fns, batch, asked, gate,
                                     self.checks, self.generation,
                                     only_snapshot=bool(gate) and self._still)
        side.on_data = probe.data
        side.on_lost = probe.lost
        loop = asyncio.get_running_loop()
        probe.timer = loop.call_later(self.upstream.connect_timeout, probe.timed_out)
        self._used = time.monotonic()
        side.write(codec.message(b"Q", codec.cstr(
            SNAPSHOT_QUERY if probe.only_snapshot
            else probe_query(rel_list, fn_list, probe.gate, prepare=False))))
        return True

    def _probed(self, probe: _Probe, rows: list[list[str | None]] | None,
                failure: str | None) -> None:
        """The probe ``probe`` answered ``rows``, or failed (``failure``)."""
        side = self._side
        if side is not None:
            side.on_data = None
            side.on_lost = None
        if probe.timer is not None:
            probe.timer.cancel()
        self._probe = None
        if failure == _LOST:  # the target may have closed an idle connection: a new one
            self.close()
            spawn(self._check_slowly(probe.rels, probe.fns, probe.batch),
                  f"catalog check {self._target}")
            return
        try:
            if failure is not None or rows is None:
                raise CatalogError(failure or "no answer")
            snapshot, confirmed, stale = self._compare(probe.asked, rows, probe.gate)
        except CatalogError as exc:  # fail closed, as ``_resolve_names`` does
            self.close()
            log.warning("masking: cannot read the catalog of database %r to follow a "
                        "statement's lineage (%s); its computed columns are masked",
                        self.database, exc)
            self._forget(sorted(probe.rels), sorted(probe.fns))
            self._checked(probe.batch, False)
            return
        if probe.spent:
            self.close()
        else:
            self._keep_open()
        if stale or (probe.only_snapshot and snapshot != probe.gate):
            # What changed is read again (and the rest checked once more) there; a snapshot
            # asked for alone that moved proves nothing: the versions are compared there.
            spawn(self._check_slowly(probe.rels, probe.fns, probe.batch),
                  f"catalog check {self._target}")
            return
        if probe.generation == self.generation:
            if snapshot != probe.gate:  # versions were compared at this snapshot
                if snapshot != self._snapshot:
                    self._snapshot, self._fresh = snapshot, set()
                self._fresh.update(confirmed)
            stamps, check = self._stamps, probe.check
            for n in probe.rels:
                stamps[n] = max(stamps.get(n, 0), check)
            for n in probe.fns:
                stamps[n] = max(stamps.get(n, 0), check)
        # else: the catalog changed meanwhile; the names are not stamped and the caller asks
        # again (as ``_resolve_names``).
        self._checked(probe.batch, True)

    async def _resolve_names(self, relations: frozenset[str], functions: frozenset[str],
                             ) -> bool:
        """``resolve_names`` for one batch, under the lock.

        Cached names are checked in one query (``probe_query``) that gives the target's
        snapshot and, unless that snapshot is the one of the last check and every name was
        confirmed at it, the version of each name: with the same snapshot (the same
        transactions ended, none since), the catalog shows what it showed then."""
        self.checks += 1
        check = self.checks
        self._read_taints()
        generation = self.generation
        rels, fns = sorted(relations), sorted(functions)
        if not rels and not fns:
            return True
        if len(rels) > _MAX_NAMES or len(fns) > _MAX_NAMES:
            log.warning("masking: a statement's lineage needs more than %d catalog names; "
                        "what depends on them is masked", _MAX_NAMES)
            self._forget(rels, fns)
            return False
        try:
            cached_r = [n for n in rels if self.relations(n) is not None]
            cached_f = [n for n in fns if self.functions(n) is not None]
            stale_r: list[str] = []
            stale_f: list[str] = []
            confirmed: list[tuple[str, str]] = []
            snapshot: str | None = None
            if cached_r or cached_f:
                self.probes += 1
                asked = [("r", n) for n in cached_r] + [("f", n) for n in cached_f]
                gate = self._gate(asked)
                snapshot, confirmed, stale = self._compare(
                    asked, await self._run(cached_r, cached_f, gate), gate)
                stale_r = [n for k, n in stale if k == "r"]
                stale_f = [n for k, n in stale if k == "f"]
            if stale_r:
                self._tables.clear()  # a relation changed: its columns by OID too
            fetch_r = sorted({n for n in rels if n not in cached_r} | set(stale_r))
            fetch_f = sorted({n for n in fns if n not in cached_f} | set(stale_f))
            rows = await self._run(names_query(fetch_r, fetch_f)) if (
                fetch_r or fetch_f) else []
            if fetch_r or fetch_f:
                self.lookups += 1
        except Exception as exc:  # fail closed: the caller masks what depends on them
            log.warning("masking: cannot read the catalog of database %r to follow a "
                        "statement's lineage (%s); its computed columns are masked",
                        self.database, exc)
            self._forget(rels, fns)
            return False
        if generation != self.generation:
            return True  # the catalog changed meanwhile: the caller asks again
        if snapshot is not None and snapshot != self._snapshot:
            self._snapshot, self._fresh = snapshot, set()
        self._fresh.update(confirmed)
        if fetch_r or fetch_f:
            self._store(rows, fetch_r, fetch_f)
        for n in rels:
            self._stamps[n] = max(self._stamps.get(n, 0), check)
        for n in fns:
            self._stamps[n] = max(self._stamps.get(n, 0), check)
        return True

    def _gate(self, asked: list[tuple[str, str]]) -> str:
        """The snapshot at which every name asked about was confirmed, or "" (none)."""
        fresh = self._fresh
        return (self._snapshot or "") if all(k in fresh for k in asked) else ""

    def _compare(self, asked: list[tuple[str, str]], rows: list[list[str | None]], gate: str,
                 ) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]:
        """What a probe (``probe_query``) says of the names asked about: its snapshot, the
        names whose version is the cached one, and the others (to read again)."""
        snapshot: str | None = None
        versions: dict[tuple[str, str], str] = {}
        for kind, _, name, sub, _, version, _ in rows:
            if kind == "s":
                snapshot = version
            else:
                versions[(sub or "", name or "")] = version or ""
        if snapshot is None:
            raise CatalogError("the catalog check answered no snapshot")
        self._still = snapshot == gate
        if snapshot == gate:
            self.quick += 1  # nothing ended since the last check: all as they were
            return snapshot, [], []
        confirmed: list[tuple[str, str]] = []
        stale: list[tuple[str, str]] = []
        known = self._versions
        for key in asked:
            (confirmed if versions.get(key, "") == known.get(key) else stale).append(key)
        return snapshot, confirmed, stale

    def _store(self, rows: list[list[str | None]], fetch_r: list[str], fetch_f: list[str],
               ) -> None:
        """Keep what ``names_query`` read, with each name's version at its snapshot."""
        found_rel: dict[str, list[Relation]] = {n: [] for n in fetch_r}
        found_fn: dict[str, list[Function]] = {n: [] for n in fetch_f}
        versions: dict[tuple[str, str], str] = {}
        snapshot: str | None = None
        for kind, schema, name, sub, columns, text, extra in rows:
            if kind == "s":
                snapshot = text
            elif kind == "v" and name is not None:
                versions[(sub or "", name)] = text or ""
            elif kind == "r" and name in found_rel:
                found_rel[name].append(_relation(schema, name, sub, columns, text, extra))
            elif kind == "f" and name in found_fn:
                more = json.loads(extra or "{}")
                found_fn[name].append(Function(schema or "", name, sub or "", text or "",
                                               more.get("definition") or ""))
        self.changes += 1
        until = time.monotonic() + self.ttl
        read = [("r", n) for n in found_rel] + [("f", n) for n in found_fn]
        for n, r in found_rel.items():
            self._relations[n] = (until, r)
            self._known.pop(n, None)
            if len(self._known) >= _KNOWN:
                self._known.pop(next(iter(self._known)))  # the oldest read
            self._known[n] = r
        for n, f in found_fn.items():
            self._functions[n] = (until, f)
            self._known_functions.pop(n, None)
            if len(self._known_functions) >= _KNOWN:
                self._known_functions.pop(next(iter(self._known_functions)))
            self._known_functions[n] = f
        for key in read:
            self._versions[key] = versions.get(key, "")
        if snapshot is None:  # not known at which snapshot: checked in full next time
            self._fresh.difference_update(read)
        elif snapshot == self._snapshot:
            self._fresh.update(read)
        else:
            self._snapshot, self._fresh = snapshot, set(read)

    def _forget(self, rels: list[str], fns: list[str]) -> None:
        """The names could not be read or checked: lineage fails closed on them."""
        self.changes += 1
        for n in rels:
            self._relations.pop(n, None)
        for n in fns:
            self._functions.pop(n, None)
        self._fresh.difference_update([("r", n) for n in rels] + [("f", n) for n in fns])

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

    async def _run(self, sql: str | list[str], functions: list[str] | None = None,
                   gate: str = "") -> list[list[str | None]]:
        """Every row of ``sql``'s results, as text, on the connection the catalog keeps (a
        new one when it has none, or when the one it kept turns out closed). Given two lists
        of names instead, the target's snapshot and, unless it is ``gate``, the versions of
        those names (``probe_query``)."""
        while self._probe is not None:  # the connection answers a probe: after it
            await self._probe.answered
        for attempt in range(2):
            side = self._side
            reused = side is not None
            if side is None:
                side = self._side = await self._connect()
                self._prepared = False
            if isinstance(sql, str):
                text = sql
            else:
                text = probe_query(sql, functions or [], gate, prepare=not self._prepared)
                if not self._prepared and self._generic:
                    text = "SET plan_cache_mode = force_generic_plan; " + text
            try:
                rows = await self._ask(side, text)
            except _QueryFailed:
                if not isinstance(sql, str):
                    # Whether it is prepared is not known now: a fresh connection next time.
                    self.close()
                raise
            except CatalogError:
                self.close()
                if reused and attempt == 0:
                    continue  # the target may have closed an idle connection: once more
                raise
            if not isinstance(sql, str):
                self._prepared = True
            self._keep_open()
            return rows
        raise CatalogError("the catalog connection failed twice")  # not reached

    async def _connect(self) -> Any:
        # search_path: pg_catalog alone, so that the catalog's own queries (``||``,
        # ``json_agg``, ``coalesce`` … unqualified) can never run a user's operator or
        # function of a better-matching signature in a schema of the path (``public.||
        # (name, text)`` would rewrite what the queries read).
        params = {"user": self.upstream.user, "database": self.database,
                  "application_name": APPLICATION_NAME, "client_encoding": "UTF8",
                  "search_path": "pg_catalog"}
        try:
            greeting = await startup.connect_upstream(self.upstream, params,
                                                      self.max_message_size)
        except startup.UpstreamUnavailable as exc:
            raise CatalogError(str(exc)) from exc
        self._generic = server_major(greeting.status_messages) >= 12
        return greeting.side

    async def _ask(self, side: Any, sql: str) -> list[list[str | None]]:
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
                            self._keep_open()
                            raise _QueryFailed(f"the catalog query failed: {error}")
                        return rows
        except TimeoutError as exc:
            raise CatalogError("the catalog query timed out") from exc
        except (PeerClosed, OSError) as exc:
            raise CatalogError("the target closed the catalog connection") from exc

    def _keep_open(self) -> None:
        self._used = time.monotonic()
        if self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(IDLE, self._idle_check)

    def _idle_check(self) -> None:
        """Close the connection ``IDLE`` seconds after it was last used."""
        self._idle = None
        left = self._used + IDLE - time.monotonic()
        if left > 0 and self._side is not None:
            self._idle = asyncio.get_running_loop().call_later(left, self._idle_check)
        else:
            self.close()

    def close(self) -> None:
        """Close the catalog's own connection (it opens again when needed)."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        side, self._side = self._side, None
        if side is not None:
            with contextlib.suppress(Exception):
                side.write(codec.message(b"X"))
                side.close()


class _QueryFailed(CatalogError):
    """The target answered the catalog query with an error (the connection is fine)."""


# A caller of ``check_names``: its relations, its functions, and what to call with the answer.
_Asked = tuple[frozenset[str], frozenset[str], Callable[[bool], None]]
_LOST = "the target closed the catalog connection"


class _Probe:
    """One probe of ``check_names`` in flight: the backend messages that answer it, read as
    they arrive (the catalog connection's ``on_data``), up to ReadyForQuery."""

    def __init__(self, catalog: TableCatalog, rels: frozenset[str], fns: frozenset[str],
                 batch: list[_Asked], asked: list[tuple[str, str]], gate: str, check: int,
                 generation: int, *, only_snapshot: bool = False) -> None:
        self.catalog = catalog
        self.rels, self.fns, self.batch = rels, fns, batch
        self.asked, self.gate, self.check, self.generation = asked, gate, check, generation
        self.only_snapshot = only_snapshot  # ``SNAPSHOT_QUERY``: no versions in the answer
        self.timer: asyncio.TimerHandle | None = None
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.spent = False  # the connection is not to be used again
        self._buf = bytearray()
        self._rows: list[list[str | None]] = []
        self._error: str | None = None

    def data(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, n = 0, len(buf)
        try:
            while n - pos >= 5:
                size = int.from_bytes(buf[pos + 1:pos + 5], "big", signed=True)
                codec.check_length(buf[pos], size, self.catalog.max_message_size)
                end = pos + 1 + size
                if end > n:
                    break
                tag = buf[pos]
                if tag == 68:  # DataRow
                    self._rows.append(_row(bytes(buf[pos + 5:end])))
                elif tag == 69:  # ErrorResponse
                    fields = messages.error_fields(bytes(buf[pos + 5:end]))
                    self._error = (f"the catalog query failed: {fields.get('C', '')} "
                                   f"{fields.get('M', 'error')}")
                elif tag == 90:  # ReadyForQuery: the answer is complete
                    # What the target sent after it (nothing, unless unasked) would be read
                    # out of step: the connection is not used again.
                    self.spent = end < n
                    self._end(self._rows if self._error is None else None, self._error)
                    return
                pos = end
        except Exception as exc:  # a malformed answer: fail closed
            self._end(None, f"the catalog query answered a malformed message ({exc})")
            return
        del buf[:pos]

    def lost(self, exc: Exception | None) -> None:
        self._end(None, _LOST)

    def timed_out(self) -> None:
        self.timer = None
        self._end(None, "the catalog query timed out")

    def _end(self, rows: list[list[str | None]] | None, failure: str | None) -> None:
        if self.answered.done():
            return
        self.answered.set_result(None)
        self.catalog._probed(self, rows, failure)


def _relation(schema: str | None, name: str, kind: str | None, columns: str | None,
              definition: str | None, extra: str | None) -> Relation:
    more = json.loads(extra or "{}")
    return Relation(schema or "", name, kind or "", tuple(json.loads(columns or "[]")),
                    definition, tuple(more.get("triggers") or ()), tuple(more.get("rules") or ()),
                    tuple(more.get("generated") or ()), tuple(more.get("defaults") or ()),
                    tuple(more.get("family") or ()), tuple(more.get("checks") or ()),
                    tuple(more.get("indexes") or ()), tuple(more.get("policies") or ()),
                    tuple(more.get("evaluated") or ()),
                    tuple((str(t[0]), str(t[1])) for t in more.get("plain_types") or ()
                          if isinstance(t, list) and len(t) == 2),
                    tuple((str(t[0]), str(t[1])) for t in more.get("types") or ()
                          if isinstance(t, list) and len(t) == 2))


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


def _names(names: list[str]) -> str:
    return "ARRAY[" + ",".join(map(_literal, names)) + "]::text[]"


# The version of one relation: the xmin of each catalog row that says what lineage reads of
# it (a row updated in place by DDL gets a new xmin), and its OID (dropped and created again).
_RELATION_VERSION = (
    "c.oid::text || '/' || c.xmin::text || '/' || ns.xmin::text"
    " || '/' || coalesce((SELECT string_agg(a.attnum::text || '.' || a.xmin::text, ','"
    "  ORDER BY a.attnum) FROM pg_catalog.pg_attribute a"
    "  WHERE a.attrelid = c.oid AND a.attnum > 0), '')"
    " || '/' || coalesce((SELECT string_agg(r.oid::text || '.' || r.xmin::text, ','"
    "  ORDER BY r.oid) FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid), '')"
    " || '/' || coalesce((SELECT string_agg(t.oid::text || '.' || t.xmin::text, ','"
    "  ORDER BY t.oid) FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid), '')"
    " || '/' || coalesce((SELECT string_agg(d.oid::text || '.' || d.xmin::text, ','"
    "  ORDER BY d.oid) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = c.oid), '')"
    " || '/' || coalesce((SELECT string_agg(i.inhrelid::text || '.' || i.inhparent::text"
    "  || '.' || i.xmin::text, ',' ORDER BY i.inhrelid, i.inhparent)"
    "  FROM pg_catalog.pg_inherits i WHERE c.oid IN (i.inhrelid, i.inhparent)), '')"
    # Indexes, row-security policies and constraints: what the guardrail reads of stored
    # code changes with them too (an expression index, a policy added by a DBA).
    " || '/' || coalesce((SELECT string_agg(x.indexrelid::text || '.' || x.xmin::text, ','"
    "  ORDER BY x.indexrelid) FROM pg_catalog.pg_index x WHERE x.indrelid = c.oid), '')"
    " || '/' || coalesce((SELECT string_agg(y.oid::text || '.' || y.xmin::text, ','"
    "  ORDER BY y.oid) FROM pg_catalog.pg_policy y WHERE y.polrelid = c.oid), '')"
    " || '/' || coalesce((SELECT string_agg(k.oid::text || '.' || k.xmin::text, ','"
    "  ORDER BY k.oid) FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid), '')"
    " || '/' || coalesce((SELECT string_agg(s.oid::text || '.' || s.xmin::text, ','"
    "  ORDER BY s.oid) FROM pg_catalog.pg_statistic_ext s WHERE s.stxrelid = c.oid), '')"
    # Casts into the types its defaults and constraints name: one added to an enum makes a
    # cast into it code (``Relation.plain_types``).
    " || '/' || coalesce((SELECT string_agg(k.oid::text || '.' || k.xmin::text, ','"
    "  ORDER BY k.oid) FROM pg_catalog.pg_depend dp JOIN pg_catalog.pg_cast k"
    "  ON k.casttarget = dp.refobjid"
    "  WHERE dp.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND ("
    "  (dp.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND dp.objid IN"
    "  (SELECT d.oid FROM pg_catalog.pg_attrdef d WHERE d.adrelid = c.oid)) OR"
    "  (dp.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND dp.objid IN"
    "  (SELECT q.oid FROM pg_catalog.pg_constraint q WHERE q.conrelid = c.oid)))), '')"
)
_FUNCTION_VERSION = "p.oid::text || '/' || p.xmin::text || '/' || ns.xmin::text"
_RELKINDS = "('r', 'v', 'm', 'f', 'p')"
# The functions whose OIDs a subquery ({}) gives, as 'schema.name' separated by spaces.
_SUPPORT = (
    "coalesce((SELECT string_agg(sn.nspname || '.' || sp.proname, ' ')"
    " FROM pg_catalog.pg_proc sp JOIN pg_catalog.pg_namespace sn ON sn.oid = sp.pronamespace"
    " WHERE sp.oid IN ({})), '')")


_PROBE = "gatewatch_probe"
# The target's snapshot: which transactions had ended when the query began. Catalog rows are
# only changed by transactions (DDL always has one): the same snapshot, the same catalog.
_SNAPSHOT = "pg_catalog.txid_current_snapshot()::text"
# The snapshot alone, in the row shape of ``versions_query``.
SNAPSHOT_QUERY = f"SELECT 's', NULL, NULL, NULL, NULL, {_SNAPSHOT}, NULL"


def server_major(status_messages: bytes) -> int:
    """The target's major version, from the ``server_version`` its login reported (0 when it
    did not, or it cannot be read)."""
    pos = 0
    while pos + 5 <= len(status_messages):
        end = pos + 1 + int.from_bytes(status_messages[pos + 1:pos + 5], "big")
        if status_messages[pos:pos + 1] == b"S":
            name, _, rest = status_messages[pos + 5:end].partition(b"\0")
            if name == b"server_version":
                digits = rest.split(b"\0")[0].split(b".")[0].strip()
                return int(digits) if digits.isdigit() else 0
        pos = end
    return 0


def probe_query(relations: list[str], functions: list[str], gate: str = "", *,
                prepare: bool) -> str:
    """``versions_query`` as a prepared statement of the catalog's connection (planned once:
    planning is most of its cost), prepared first when ``prepare``: the snapshot, and the
    versions unless the snapshot is ``gate``."""
    execute = f"EXECUTE {_PROBE}({_names(relations)}, {_names(functions)}, {_literal(gate)})"
    if not prepare:
        return execute
    return (f"PREPARE {_PROBE}(text[], text[], text) AS {versions_query_of('$1', '$2', '$3')}; "
            + execute)


def versions_query(relations: list[str], functions: list[str]) -> str:
    """One row per name: ('v', NULL, name, 'r' or 'f', NULL, version, NULL), and the snapshot
    they were read at: ('s', NULL, NULL, NULL, NULL, snapshot, NULL). A name nothing has gets
    '' (created later, it changes)."""
    return versions_query_of(_names(relations), _names(functions), "NULL")


def versions_query_of(relations: str, functions: str, gate: str) -> str:
    """The versions are read only when the snapshot is not ``gate`` (a one-time filter: when
    it is, the target reads no catalog row)."""
    when = f" WHERE {gate}::text IS DISTINCT FROM {_SNAPSHOT}"
    return (
        f"SELECT 's', NULL, NULL, NULL, NULL, {_SNAPSHOT}, NULL"
        " UNION ALL"
        " SELECT 'v', NULL, n, 'r', NULL, coalesce((SELECT md5(string_agg(x.v, ';' ORDER BY x.v))"
        f" FROM (SELECT {_RELATION_VERSION} AS v FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace"
        f" WHERE c.relname = n AND c.relkind IN {_RELKINDS}) x), '')::text, NULL"
        f" FROM unnest({relations}) n{when}"
        " UNION ALL"
        " SELECT 'v', NULL, n, 'f', NULL, coalesce((SELECT md5(string_agg(x.v, ';' ORDER BY x.v))"
        f" FROM (SELECT {_FUNCTION_VERSION} AS v FROM pg_catalog.pg_proc p"
        " JOIN pg_catalog.pg_namespace ns ON ns.oid = p.pronamespace"
        " WHERE p.proname = n UNION ALL SELECT o.oid::text || '/' || o.xmin::text"
        " FROM pg_catalog.pg_operator o WHERE 'operator:' || o.oprname = n"
        " UNION ALL SELECT coalesce(k.oid::text || '/' || k.xmin::text, '') || '/'"
        " || t.oid::text || '/' || t.xmin::text"
        " FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_constraint k ON k.contypid = t.oid"
        " WHERE n IN ('type:' || t.typname, 'type:#' || t.oid::text)) x), '')::text, NULL"
        f" FROM unnest({functions}) n{when}"
    )


def names_query(relations: list[str], functions: list[str]) -> str:
    """Relations (kind, columns, a view's definition, triggers, rules, generated columns,
    defaults that call functions) and functions (language, body, definition) by name, and
    the version of each name (``versions_query``), all in one snapshot. The names come from a
    client's statement: each is a quoted literal, nothing else."""
    rels, fns = _names(relations), _names(functions)
    return (
        "SELECT 'r', n.nspname::text, c.relname::text, c.relkind::text,"
        " (SELECT coalesce(json_agg(a.attname::text ORDER BY a.attnum), '[]')::text"
        "  FROM pg_catalog.pg_attribute a"
        "  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),"
        " CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END,"
        " json_build_object("
        "  'triggers', (SELECT coalesce(json_agg(pn.nspname || '.' || p.proname), '[]')"
        "   FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid"
        "   JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace"
        "   WHERE t.tgrelid = c.oid AND NOT t.tgisinternal),"
        "  'rules', (SELECT coalesce(json_agg(pg_catalog.pg_get_ruledef(r.oid)), '[]')"
        "   FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_type <> '1'),"
        "  'generated', (SELECT coalesce(json_agg(a.attname), '[]')"
        "   FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
        "   AND NOT a.attisdropped AND a.attgenerated <> ''),"
        "  'defaults', (SELECT coalesce(json_agg(x.e), '[]') FROM ("
        "   SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS e"
        "   FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_attribute a"
        "   ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
        "   WHERE d.adrelid = c.oid AND a.attgenerated = '' UNION ALL"
        # An identity column has no default expression, but each row it fills moves its
        # sequence as a serial's nextval() does (lineage follows the call).
        "   SELECT 'pg_catalog.nextval(0)' FROM pg_catalog.pg_attribute a"
        "   WHERE a.attrelid = c.oid AND a.attidentity <> '' AND NOT a.attisdropped) x),"
        "  'family', (SELECT coalesce(json_agg(k.relname), '[]') FROM pg_catalog.pg_inherits i"
        "   JOIN pg_catalog.pg_class k ON k.oid IN (i.inhrelid, i.inhparent) AND k.oid <> c.oid"
        "   WHERE c.oid IN (i.inhrelid, i.inhparent)),"
        # CHECK constraints of the table and of its columns' domains (VALUE): a write runs them.
        "  'checks', (SELECT coalesce(json_agg(x.e), '[]') FROM ("
        "   SELECT pg_catalog.pg_get_expr(k.conbin, k.conrelid) AS e"
        "   FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c' UNION ALL"
        # A column's type, and what it is made of (a domain's base, an array's element, a
        # composite's attributes), some levels down: each domain's CHECK runs on a write.
        "   SELECT pg_catalog.pg_get_expr(k.conbin, 0) FROM pg_catalog.pg_attribute a"
        "   CROSS JOIN LATERAL (WITH RECURSIVE d(tid, n) AS (SELECT a.atttypid, 0 UNION"
        "    SELECT z.nxt, d.n + 1 FROM d JOIN pg_catalog.pg_type y ON y.oid = d.tid"
        "    CROSS JOIN LATERAL (SELECT y.typbasetype UNION ALL SELECT y.typelem UNION ALL"
        "     SELECT q.atttypid FROM pg_catalog.pg_attribute q WHERE q.attrelid = y.typrelid"
        "     AND y.typrelid <> 0 AND q.attnum > 0) z(nxt)"
        "    WHERE z.nxt <> 0 AND d.n < 6) SELECT tid FROM d) dd"
        "   JOIN pg_catalog.pg_constraint k ON k.contypid = dd.tid"
        "   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        "   AND k.contype = 'c' UNION ALL"
        # A trigger's WHEN condition: evaluated for each row a write touches.
        "   SELECT pg_catalog.pg_get_expr(g.tgqual, g.tgrelid) FROM pg_catalog.pg_trigger g"
        "   WHERE g.tgrelid = c.oid AND g.tgqual IS NOT NULL) x),"
        # Users' types of its columns, and what they are made of (as for the CHECKs above):
        # a value assigned to such a column goes through a user's cast into the type, whose
        # function may keep it anywhere (``Relation.types``).
        "  'types', (SELECT coalesce(pg_catalog.jsonb_agg(DISTINCT"
        "   pg_catalog.jsonb_build_array(tn.nspname::text, t.typname::text)), '[]'::jsonb)"
        "   FROM pg_catalog.pg_attribute a"
        "   CROSS JOIN LATERAL (WITH RECURSIVE d(tid, n) AS (SELECT a.atttypid, 0 UNION"
        "    SELECT z.nxt, d.n + 1 FROM d JOIN pg_catalog.pg_type y ON y.oid = d.tid"
        "    CROSS JOIN LATERAL (SELECT y.typbasetype UNION ALL SELECT y.typelem UNION ALL"
        "     SELECT q.atttypid FROM pg_catalog.pg_attribute q WHERE q.attrelid = y.typrelid"
        "     AND y.typrelid <> 0 AND q.attnum > 0) z(nxt)"
        "    WHERE z.nxt <> 0 AND d.n < 6) SELECT tid FROM d) dd"
        "   JOIN pg_catalog.pg_type t ON t.oid = dd.tid"
        "   JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace"
        "   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        "   AND tn.nspname NOT IN ('pg_catalog', 'information_schema')),"
        # Index expressions and predicates (a write evaluates them), row-security policies'
        # expressions (a read or a write does): code that is not PostgreSQL's own there is
        # code a statement runs without naming it (``engine.pg.storedcode``).
        "  'indexes', (SELECT coalesce(json_agg(x.e), '[]') FROM ("
        "   SELECT pg_catalog.pg_get_expr(i.indexprs, i.indrelid) AS e"
        "   FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indexprs IS NOT NULL"
        "   UNION ALL SELECT pg_catalog.pg_get_expr(i.indpred, i.indrelid)"
        "   FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indpred IS NOT NULL) x),"
        "  'policies', (SELECT coalesce(json_agg(x.e), '[]') FROM ("
        "   SELECT pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS e"
        "   FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid AND p.polqual IS NOT NULL"
        "   UNION ALL SELECT pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)"
        "   FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid"
        "   AND p.polwithcheck IS NOT NULL) x),"
        # The functions (an operator's too) and types extended statistics and a partition
        # key use, read from pg_depend (every version: pg_statistic_ext's expressions have
        # no column before 14), written as calls and casts for the guard to read.
        "  'evaluated', (SELECT coalesce(json_agg(x.e), '[]') FROM ("
        "   SELECT pg_catalog.quote_ident(fn.nspname) || '.'"
        "   || pg_catalog.quote_ident(fp.proname) || '()' AS e"
        "   FROM pg_catalog.pg_depend dp LEFT JOIN pg_catalog.pg_operator o"
        "   ON dp.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass"
        "   AND o.oid = dp.refobjid JOIN pg_catalog.pg_proc fp ON fp.oid = CASE"
        "   WHEN dp.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass THEN dp.refobjid"
        "   ELSE o.oprcode::oid END"
        "   JOIN pg_catalog.pg_namespace fn ON fn.oid = fp.pronamespace"
        "   WHERE (dp.classid = 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass"
        "   AND dp.objid IN (SELECT s.oid FROM pg_catalog.pg_statistic_ext s"
        "   WHERE s.stxrelid = c.oid)) OR (dp.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
        "   AND dp.objid = c.oid AND dp.objsubid = 0) UNION ALL"
        "   SELECT 'NULL::' || pg_catalog.quote_ident(tn.nspname) || '.'"
        "   || pg_catalog.quote_ident(t.typname) FROM pg_catalog.pg_depend dp"
        "   JOIN pg_catalog.pg_type t ON dp.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass"
        "   AND t.oid = dp.refobjid JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace"
        "   WHERE dp.classid = 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass"
        "   AND dp.objid IN (SELECT s.oid FROM pg_catalog.pg_statistic_ext s"
        "   WHERE s.stxrelid = c.oid)) x),"
        # Enums its stored expressions depend on that no cast with a function leads into:
        # a cast into one runs only enum_in (``storedcode``: not code).
        "  'plain_types', (SELECT coalesce(pg_catalog.jsonb_agg(DISTINCT"
        "   pg_catalog.jsonb_build_array(tn.nspname::text, t.typname::text)), '[]'::jsonb)"
        "   FROM pg_catalog.pg_depend dp JOIN pg_catalog.pg_type t"
        "   ON dp.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass"
        "   AND t.oid = dp.refobjid JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace"
        "   WHERE t.typtype = 'e' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_cast k"
        "   WHERE k.casttarget = t.oid AND k.castfunc <> 0) AND ("
        "   (dp.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND dp.objid IN"
        "   (SELECT d.oid FROM pg_catalog.pg_attrdef d WHERE d.adrelid = c.oid)) OR"
        "   (dp.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND dp.objid IN"
        "   (SELECT k.oid FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid)))))::text"
        " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE c.relname = ANY({rels}) AND c.relkind IN {_RELKINDS}"
        " UNION ALL"
        # A SQL-standard body (BEGIN ATOMIC ... END, RETURN ...) is not in prosrc (empty) but
        # in prosqlbody; pg_get_functiondef prints it on every version that has one. A
        # PL/pgSQL body is compiled with its signature (parameters, trigger or not).
        # An aggregate is the functions it runs (language 'aggregate', its body their names).
        " SELECT 'f', n.nspname::text, p.proname::text,"
        " CASE WHEN p.prokind = 'a' THEN 'aggregate' ELSE l.lanname::text END,"
        " NULL, CASE WHEN p.prokind = 'a' THEN " + _SUPPORT.format(
            "SELECT unnest(ARRAY[g.aggtransfn, g.aggfinalfn, g.aggcombinefn, g.aggserialfn,"
            " g.aggdeserialfn, g.aggmtransfn, g.aggminvtransfn, g.aggmfinalfn]::oid[])"
            " FROM pg_catalog.pg_aggregate g WHERE g.aggfnoid = p.oid") +
        " WHEN p.prosrc = '' THEN pg_catalog.pg_get_functiondef(p.oid) ELSE p.prosrc END,"
        " json_build_object('definition', CASE WHEN p.prokind IN ('f', 'p')"
        "  AND (l.lanname = 'plpgsql' OR p.prosrc = '')"
        "  THEN pg_catalog.pg_get_functiondef(p.oid) END)::text"
        " FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
        " JOIN pg_catalog.pg_language l ON l.oid = p.prolang"
        f" WHERE p.proname = ANY({fns})"
        " UNION ALL"
        # An operator (asked for as 'operator:<name>'): the function it runs.
        " SELECT 'f', n.nspname::text, 'operator:' || o.oprname, 'operator', NULL, "
        + _SUPPORT.format("SELECT o.oprcode::oid") + ", NULL"
        " FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n"
        " ON n.oid = o.oprnamespace"
        f" WHERE 'operator:' || o.oprname = ANY({fns})"
        " UNION ALL"
        # A type (asked for as 'type:<name>', or 'type:#<oid>' for a parameter's type given by
        # OID in a Parse): the functions of casts into it and out of it (a value of the type
        # read into a column of another goes through one), and a domain's CHECK expressions
        # (of VALUE), run by a cast into it (and by a parameter's input at the Bind).
        " SELECT 'f', n.nspname::text, a.name, 'type', NULL, "
        + _SUPPORT.format("SELECT k.castfunc FROM pg_catalog.pg_cast k"
                          " WHERE t.oid IN (k.casttarget, k.castsource)") +
        ", json_build_object('definition', (SELECT coalesce(json_agg("
        "pg_catalog.pg_get_expr(k.conbin, 0)), '[]') FROM pg_catalog.pg_constraint k"
        " WHERE k.contypid IN (t.oid, t.typbasetype) AND k.contypid <> 0"
        " AND k.contype = 'c')::text)::text"
        f" FROM unnest({fns}) a(name) JOIN pg_catalog.pg_type t"
        " ON a.name IN ('type:' || t.typname, 'type:#' || t.oid::text)"
        " JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
        " UNION ALL " + versions_query(relations, functions)
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
