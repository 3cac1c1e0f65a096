"""Which statement each result belongs to, so that its columns can be followed (``lineage``).

``StatementFlow`` is fed the frontend messages the gateway forwards to the target (``sent``)
and told of each backend message in order (``advance``); ``current`` is then the statement
whose RowDescription, rows, COPY data or error the target is sending. It keeps the queue of
answers the target owes, as the relay does: a Query's statements end one by one (each with
CommandComplete, EmptyQueryResponse, or an ErrorResponse that ends them all); a Describe is
answered by RowDescription or NoData, an Execute ends with CommandComplete, EmptyQueryResponse
or PortalSuspended; after an error in the extended protocol the target skips to the next Sync.

Without I/O and without the relay's internals: only bytes that reached the target count, so a
statement the gateway refused (and answered itself) never enters the queue. When the queue and
the answers disagree (which a correct target never causes), ``current`` is None and the caller
fails closed.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.masking.lineage import (
    FIRST_USER_OID,
    PARAM_TYPES,
    UNKNOWN,
    Analyzer,
    Lin,
    Lineage,
    Missing,
    parse,
)

log = logging.getLogger(__name__)

_I32 = struct.Struct("!i")
_PARSED_CACHE = 512
_LINEAGE_CACHE = 256  # lineages kept by parse tree, for the next statement with that tree
_UNKNOWN = frozenset({UNKNOWN})
# Statements that change no catalog entry lineage reads (relations, columns, views, functions).
# Any other statement that completes may have (DDL, DO, CALL, SELECT INTO...): until its
# transaction ends the gateway's catalog, read on a connection of its own, may not show it.
CATALOG_KEEPING = frozenset({
    "SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "CopyStmt",
    "DeclareCursorStmt", "FetchStmt", "ClosePortalStmt", "PrepareStmt", "ExecuteStmt",
    "DeallocateStmt", "TransactionStmt", "VariableSetStmt", "VariableShowStmt", "ExplainStmt",
    "ListenStmt", "UnlistenStmt", "NotifyStmt", "LockStmt", "CheckPointStmt",
})
# Statements whose lineage matters when they complete (what they write, directly or through
# the functions, triggers and rules they run; what they declare): their catalog names are
# looked up before their CommandComplete is handled.
COMPLETION_LINEAGE = frozenset({
    "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "CreateTableAsStmt", "SelectStmt",
    "DeclareCursorStmt", "PrepareStmt", "ExecuteStmt", "CallStmt", "DoStmt", "CopyStmt",
    "ExplainStmt", "RenameStmt", "TruncateStmt", "AlterTableStmt", "IndexStmt",
    "AlterDomainStmt", "ClusterStmt",
})
# Statements that may commit part of their work before they fail (transaction control inside
# a procedure or a DO block): what they wrote is followed even when they end in an error.
_COMMITS_INSIDE = frozenset({"CallStmt", "DoStmt"})
_NAME_BYTES = 63  # NAMEDATALEN - 1: the target compares no more of a name
_DEPTH = 4  # EXECUTE of a statement that is itself EXECUTE …: followed this deep
# Statements that change what a name means (when an EXECUTE runs one, it does as well).
_NAMING = frozenset({"DeclareCursorStmt", "ClosePortalStmt", "DeallocateStmt", "PrepareStmt",
                     "DiscardStmt", "TransactionStmt", "ExecuteStmt"})
_CURSOR_OPT_HOLD = 0x0020  # DeclareCursorStmt.options: WITH HOLD
# Transaction control that ends the transaction (its portals end with it).
_ENDS = frozenset({"TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE",
                   "TRANS_STMT_COMMIT_PREPARED", "TRANS_STMT_ROLLBACK_PREPARED"})


@dataclass(eq=False)
class Statement:
    """One statement the target runs: its parse tree, and its lineage once computed."""

    text: str
    tree: dict[str, Any] | None  # None: PostgreSQL would not parse it (nor run it)
    lineage: Lineage | None = None
    # The catalog's check count when the statement was first followed, and whether every
    # catalog name its lineage used has been checked against the target since
    # (``StatementFlow.lineage``).
    checked_from: int | None = None
    checked: bool = False
    # The lineage computed from the catalog's cached entries before they were checked, with
    # the catalog's state then (``StatementFlow._epoch``): once they are checked, it is the
    # statement's lineage if that state has not changed (``StatementFlow.lineage``).
    unchecked: tuple[tuple[int, int], Lineage] | None = None

    @property
    def kind(self) -> str:
        return next(iter(self.tree), "") if self.tree else ""


@dataclass(eq=False)
class _Query:
    statements: list[Statement]
    index: int = 0
    failed: bool = False


@dataclass(eq=False)
class _Describe:
    kind: bytes  # b"S": a prepared statement, else a portal
    key: bytes | None  # its name as the target holds it (None: the gateway cannot tell)


@dataclass(eq=False)
class _Execute:
    key: bytes | None  # the portal's name


@dataclass(eq=False)
class _Sync:
    pass


@dataclass(eq=False)
class _Parse:  # answered by ParseComplete
    key: bytes | None
    statement: Statement


@dataclass(eq=False)
class _Bind:  # answered by BindComplete
    portal: bytes | None
    key: bytes | None  # the statement it binds


@dataclass(eq=False)
class _Close:  # answered by CloseComplete
    kind: bytes
    key: bytes | None


@dataclass(eq=False)
class _Portal:
    """A portal or an SQL cursor (one namespace on the target): what an Execute of it runs,
    and what a FETCH of it returns."""

    statement: Statement | None  # None: not known, its rows are masked whole
    columns: tuple[Lin, ...] | None = None  # a DECLARE's columns, for FETCH (None: unknown)
    hold: bool = False  # WITH HOLD: it outlives its transaction's commit
    fresh: bool = True  # made in the transaction in progress


class _ByName:
    """The flow's names as the analyzer looks them up: by the name SQL text spells."""

    __slots__ = ("_get", "_key")

    def __init__(self, key: Callable[[str], bytes | None],
                 get: Callable[[bytes], Any]) -> None:
        self._key, self._get = key, get

    def get(self, name: str, /) -> Any:
        key = self._key(name)
        return None if key is None else self._get(key)


def _raw_name(raw: bytes) -> bytes | None:
    return raw[:_NAME_BYTES]


def _sql_name(name: str) -> bytes | None:
    return name.encode()[:_NAME_BYTES]


_ANSWER: dict[type, int] = {_Parse: 49, _Bind: 50, _Close: 51}
_Entry = _Query | _Describe | _Execute | _Sync | _Parse | _Bind | _Close


@dataclass
class StatementFlow:
    analyzer: Analyzer
    # A name as the target holds it: of a protocol message (its bytes), of SQL text (the
    # parser's reading); None when the gateway cannot tell (``engine.pg.encoding``).
    name_key: Callable[[bytes], bytes | None] = _raw_name
    sql_key: Callable[[str], bytes | None] = _sql_name
    _owed: deque[_Entry] = field(default_factory=deque)
    # The session's prepared statements, however made (Parse, PREPARE), and its portals and
    # cursors (Bind, DECLARE): one namespace each on the target, so one map each here, by
    # name as the target holds it, changed when the target confirms a change (ParseComplete,
    # BindComplete, CloseComplete, a statement's CommandComplete), never before.
    _prepared: dict[bytes, Statement] = field(default_factory=dict)
    _portals: dict[bytes, _Portal] = field(default_factory=dict)
    _aborted: bool = False  # an error or a rollback in the transaction in progress
    _parsed: OrderedDict[str, list[dict[str, Any]] | None] = field(default_factory=OrderedDict)
    current: Statement | None = None  # the statement whose result is in progress
    lost: bool = False  # the queue and the answers disagreed once: fail closed from then on
    # A statement of the transaction in progress may have changed the catalog (DDL): lineage
    # cannot be trusted until the transaction ends (every column is masked meanwhile), and
    # then the connection's catalog cache is dropped so that every session reads it afresh.
    catalog_changed: bool = False
    # The last check of catalog names failed (``engine.pg.results``): a lineage whose names
    # are not checked is used as it is, failing closed on them, rather than looked up again.
    names_failed: bool = False
    # ReadyForQuery messages that said idle: DDL judged since the last one may have changed
    # the catalog the cache does not show yet (``engine.masking.effects``).
    idle: int = 0
    # Lineages by parse tree (its id, the tree itself kept alive) and the state they were
    # computed at: a statement sent again (a prepared statement's each Bind, the same text
    # again) is followed again only when the catalog or the session's declarations changed.
    _lineages: OrderedDict[int, tuple[dict[str, Any], tuple[int, int], Lineage]] = field(
        default_factory=OrderedDict)

    def __post_init__(self) -> None:
        # EXECUTE x and FETCH x (SQL) find what the flow's maps hold under that name.
        self.analyzer.prepared_queries = _ByName(self.sql_key, self._query_of)
        self.analyzer.cursors = _ByName(self.sql_key, self._columns_of)

    def _query_of(self, key: bytes) -> dict[str, Any] | None:
        statement = self._prepared.get(key)
        return None if statement is None else statement.tree

    def _columns_of(self, key: bytes) -> tuple[Lin, ...] | None:
        portal = self._portals.get(key)
        return None if portal is None else portal.columns

    def _resolved(self, entry: _Describe | _Execute) -> Statement | None:
        """What a Describe or an Execute is of, now that the messages before it are answered
        (the target reads the name when it gets there)."""
        if entry.key is None:
            return None
        if isinstance(entry, _Describe) and entry.kind == b"S":
            return self._prepared.get(entry.key)
        portal = self._portals.get(entry.key)
        return None if portal is None else portal.statement

    # --- frontend ---------------------------------------------------------------------------

    def sent(self, data: bytes) -> None:
        """Complete frontend messages, as forwarded to the target."""
        pos, n = 0, len(data)
        while n - pos >= 5:
            tag = data[pos]
            end = pos + 1 + _I32.unpack_from(data, pos + 1)[0]
            if end > n:
                break
            body = data[pos + 5 : end]
            if tag == 81:  # Query
                text = _cstr(body, 0)[0]
                trees = self._parse(text)
                stmts = ([Statement(text, t) for t in trees] if trees is not None
                         else [Statement(text, None)])
                self._owed.append(_Query(stmts))
            elif tag == 80:  # Parse
                raw, p = _cstr_raw(body, 0)
                text, p = _cstr(body, p)
                trees = self._parse(text)
                tree = trees[0] if trees and len(trees) == 1 else None
                if tree is not None:
                    tree = _typed(tree, body, p)
                self._owed.append(_Parse(self.name_key(raw), Statement(text, tree)))
            elif tag == 66:  # Bind
                portal, p = _cstr_raw(body, 0)
                name = _cstr_raw(body, p)[0]
                self._owed.append(_Bind(self.name_key(portal), self.name_key(name)))
            elif tag == 68:  # Describe
                self._owed.append(_Describe(body[:1], self.name_key(_cstr_raw(body, 1)[0])))
            elif tag == 69:  # Execute
                self._owed.append(_Execute(self.name_key(_cstr_raw(body, 0)[0])))
            elif tag == 83:  # Sync
                self._owed.append(_Sync())
            elif tag == 67:  # Close
                self._owed.append(_Close(body[:1], self.name_key(_cstr_raw(body, 1)[0])))
            pos = end

    def trees(self, text: str) -> list[dict[str, Any]] | None:
        """The statements of ``text`` as the flow will follow them when it is sent (parsed
        once: the lineage computed before it runs is the one used after)."""
        return self._parse(text)

    def analyze(self, tree: dict[str, Any]) -> Lineage:
        """The lineage of a statement not sent yet, from the catalog as cached (names not
        looked up are in its ``missing``): what ``engine.masking.effects`` judges."""
        return self._analyze(tree, self._epoch())

    def _parse(self, text: str) -> list[dict[str, Any]] | None:
        if text in self._parsed:
            self._parsed.move_to_end(text)
            return self._parsed[text]
        trees = parse(text)
        self._parsed[text] = trees
        if len(self._parsed) > _PARSED_CACHE:
            self._parsed.popitem(last=False)
        return trees

    # --- backend ----------------------------------------------------------------------------

    def upcoming(self, tag: int) -> Statement | None:
        """The statement a RowDescription, CopyOutResponse or ErrorResponse (``tag``) about to
        be handled belongs to, without moving on (``advance`` does)."""
        if not self._owed:
            return self.current if tag in (69, 78) else None
        front = self._owed[0]
        if isinstance(front, _Query):
            return (front.statements[front.index] if front.index < len(front.statements)
                    else None)
        if isinstance(front, _Describe | _Execute):
            return self._resolved(front)
        if isinstance(front, _Parse):  # its error is about its own text
            return front.statement
        if isinstance(front, _Bind):  # its error (a parameter's input) is its statement's
            return self._prepared.get(front.key) if front.key is not None else None
        return self.current if tag in (69, 78) else None

    def advance(self, tag: int) -> None:
        """A backend message was handled: move the queue on."""
        owed = self._owed
        front = owed[0] if owed else None
        if tag in (84, 0):  # RowDescription (the client's Describe, a query's, the gateway's)
            if isinstance(front, _Query):
                self.current = self.upcoming(tag)
            elif isinstance(front, _Describe):
                self.current = self._resolved(front)
                owed.popleft()
            else:
                self._lose()
        elif tag in (110, 1):  # NoData
            if isinstance(front, _Describe):
                owed.popleft()
            else:
                self._lose()
        elif tag in (72, 71, 87):  # CopyOut-, CopyIn-, CopyBothResponse
            self.current = self.upcoming(tag)
        elif tag in (67, 73):  # CommandComplete, EmptyQueryResponse
            if isinstance(front, _Query):
                self._learn(front.statements[front.index] if front.index < len(
                    front.statements) else None)
                front.index += 1
            elif isinstance(front, _Execute):
                self._learn(self._resolved(front))
                owed.popleft()
            self.current = None
        elif tag in (49, 50, 51):  # ParseComplete, BindComplete, CloseComplete
            if isinstance(front, _Parse | _Bind | _Close) and tag == _ANSWER[type(front)]:
                owed.popleft()
                self._confirmed(front)
            else:
                self._lose()
        elif tag == 115:  # PortalSuspended
            if isinstance(front, _Execute):
                owed.popleft()
        elif tag == 69:  # ErrorResponse
            failing = self.upcoming(tag)
            if failing is not None and (failing.kind in _COMMITS_INSIDE or self._keeps(failing)):
                self._learn(failing, failed=True)
            self._aborted = True
            if isinstance(front, _Query):
                front.failed = True
            else:
                while owed and not isinstance(owed[0], _Sync | _Query):
                    owed.popleft()
            self.current = None
        elif tag == 90:  # ReadyForQuery
            while owed:
                entry = owed.popleft()
                if isinstance(entry, _Query):
                    # A simple Query runs in the unnamed portal, and drops it when done:
                    # whatever a later Execute of "" finds, no Bind of the client's made it
                    # (a function may open a cursor named ""). It drops the unnamed
                    # statement too.
                    self._portal_changed(self._portals.pop(b"", None))
                    self._prepared.pop(b"", None)
                    break
                if isinstance(entry, _Sync):
                    break
            self.current = None

    def ready(self, status: int) -> None:
        """A ReadyForQuery with this transaction status: at the end of a transaction that
        may have changed the catalog, the connection's catalog cache is dropped."""
        if status == 73:  # 'I': idle, the transaction is over, and its portals
            self.idle += 1
            self._ended()
        if status == 73 and self.catalog_changed:
            self.catalog_changed = False
            invalidate = getattr(self.analyzer.catalog, "invalidate", None)
            if invalidate is not None:
                invalidate()

    def _learn(self, statement: Statement | None, *, failed: bool = False,
               depth: int = 0) -> None:
        """A statement completed: a DECLARE's or PREPARE's columns are known now, what it
        wrote (itself, or through the functions, triggers and rules it ran) carries the
        lineage of what it was computed from, and a statement that may have changed the
        catalog is noted."""
        if statement is None or statement.tree is None:
            return
        kind = statement.kind
        if not failed:
            self._names(statement)
            if kind == "ExecuteStmt" and depth < _DEPTH:
                # EXECUTE of a statement that is itself DECLARE, CLOSE, PREPARE, DEALLOCATE
                # (a protocol Parse may prepare any statement): its names change as if it
                # had been sent.
                key = self.sql_key(str(statement.tree[kind].get("name", "")))
                inner = self._prepared.get(key) if key is not None else None
                if inner is not None and inner.kind in _NAMING:
                    self._learn(Statement(inner.text, inner.tree), depth=depth + 1)
        if not failed and (kind not in CATALOG_KEEPING or (
                kind == "SelectStmt" and statement.tree[kind].get("intoClause"))):
            self.catalog_changed = True
        if kind not in COMPLETION_LINEAGE:
            return
        lineage = self.lineage(statement, final=True)
        assert lineage is not None
        unsure = bool(lineage.missing.relations or lineage.missing.functions)
        if kind in ("DeclareCursorStmt", "PrepareStmt"):
            if failed:
                return  # it declared nothing
            if unsure:
                lineage.declares = (lineage.declares[0], None) if lineage.declares else None
            self._declared(statement, lineage)
            if kind == "PrepareStmt":
                return  # what it writes, it writes at each EXECUTE
        taint = getattr(self.analyzer.catalog, "taint", None)
        if taint is None:
            return
        for target, sources in lineage.writes:
            if sources:
                taint(target.table, target.column, sources)
        if lineage.opaque is not None or lineage.missing.functions:
            # Code the gateway cannot read ran: any table may now hold any value it could
            # read (ARCHITECTURE.md invariant 9).
            reason = lineage.opaque or "functions it runs could not be looked up"
            log.warning("masking: a statement ran code the gateway cannot follow (%s): every "
                        "table's columns are masked as lineage-unknown from now on", reason)
            taint("*", "*", frozenset({UNKNOWN}))
        elif unsure:  # what was written is not known: every column of the tables it wrote
            for table in lineage.written:
                taint(table, "*", frozenset({UNKNOWN}))

    def _confirmed(self, entry: _Parse | _Bind | _Close) -> None:
        """The target did what a Parse, Bind or Close asked."""
        if isinstance(entry, _Parse):
            if entry.key is not None:
                self._prepared[entry.key] = entry.statement
                self._statement_changed(entry.key)
        elif isinstance(entry, _Bind):
            if entry.portal is None:
                return
            found = self._prepared.get(entry.key) if entry.key is not None else None
            # A Statement of its own: its lineage is followed at its Execute.
            self._portal_changed(self._portals.get(entry.portal))
            self._portals[entry.portal] = _Portal(
                None if found is None else Statement(found.text, found.tree))
        elif entry.key is not None:
            if entry.kind == b"S":
                if self._prepared.pop(entry.key, None) is not None:
                    self._statement_changed(entry.key)
            else:
                self._portal_changed(self._portals.pop(entry.key, None))

    def _statement_changed(self, key: bytes) -> None:
        """A lineage computed before may differ now (``EXECUTE`` of the name): computed again.
        Not for the unnamed statement, which no SQL text can name (a driver's every query
        would follow its statement afresh)."""
        if key:
            self.analyzer.learned += 1

    def _portal_changed(self, portal: _Portal | None) -> None:
        """A cursor's columns (``FETCH`` of it) are gone or replaced."""
        if portal is not None and portal.columns is not None:
            self.analyzer.learned += 1

    def _names(self, statement: Statement) -> None:
        """A statement completed: the names it removed (DEALLOCATE, DISCARD ALL, CLOSE) are
        gone, and a transaction it ended took its portals with it. (What PREPARE and DECLARE
        make is added with their lineage: ``_declared``.)"""
        assert statement.tree is not None
        kind, node = statement.kind, statement.tree[statement.kind]
        if kind == "DeallocateStmt":
            key = None if node.get("isall") or node.get("name") is None else self.sql_key(
                str(node["name"]))
            if key is None:  # DEALLOCATE ALL (or a name not known: fail closed)
                if self._prepared:
                    self._prepared.clear()
                    self.analyzer.learned += 1
            elif self._prepared.pop(key, None) is not None:
                self._statement_changed(key)
        elif kind == "DiscardStmt" and node.get("target") == "DISCARD_ALL":
            if self._prepared or self._portals:
                self._prepared.clear()
                self._portals.clear()
                self.analyzer.learned += 1
        elif kind == "ClosePortalStmt":
            name = node.get("portalname")
            key = None if name is None else self.sql_key(str(name))
            if key is None:  # CLOSE ALL
                for portal in self._portals.values():
                    self._portal_changed(portal)
                self._portals.clear()
            else:
                self._portal_changed(self._portals.pop(key, None))
        elif kind == "TransactionStmt":
            what = node.get("kind")
            if what in _ENDS:
                if what != "TRANS_STMT_COMMIT":
                    self._aborted = True
                self._ended()
            elif what == "TRANS_STMT_ROLLBACK_TO":
                # Portals made since the savepoint are gone: those of this transaction
                # count as gone (unknown, masked whole, if the name is used again).
                for key in [k for k, p in self._portals.items() if p.fresh]:
                    self._portal_changed(self._portals.pop(key))

    def _declared(self, statement: Statement, lineage: Lineage) -> None:
        """A PREPARE or a DECLARE completed: the name stands for its query now."""
        assert statement.tree is not None
        kind, node = statement.kind, statement.tree[statement.kind]
        self.analyzer.learned += 1
        if kind == "PrepareStmt":
            key = self.sql_key(str(node.get("name", "")))
            query = lineage.prepared_query
            if key is not None and query is not None:
                self._prepared[key] = Statement(statement.text, query)
            elif key is not None:
                self._prepared.pop(key, None)
            return
        name = str(node.get("portalname", ""))
        key = self.sql_key(name)
        if key is None:
            return
        columns = lineage.declares[1] if lineage.declares else None
        # An Execute of the cursor returns what a FETCH of it would.
        fetch = Statement(statement.text, {"FetchStmt": {"portalname": name}})
        self._portals[key] = _Portal(fetch, columns,
                                     bool(int(node.get("options", 0)) & _CURSOR_OPT_HOLD))

    def _ended(self) -> None:
        """The transaction ended: its portals with it, but the holdable cursors, which
        outlive a commit (not a rollback of the transaction that declared them)."""
        aborted, self._aborted = self._aborted, False
        if not self._portals:
            return
        for key, portal in list(self._portals.items()):
            if not portal.hold or (portal.fresh and aborted):
                del self._portals[key]
                self._portal_changed(portal)
            else:
                portal.fresh = False

    def _keeps(self, statement: Statement) -> bool:
        """Whether a statement that failed may have kept a value outside its transaction
        (``setval``, an advisory lock: ``Lineage.keeps``), which is then followed."""
        if statement.kind not in COMPLETION_LINEAGE:
            return False
        lineage = self.lineage(statement, final=True)
        return lineage is not None and lineage.keeps

    def _lose(self) -> None:
        self.lost = True
        self.current = None

    def lineage(self, statement: Statement, *, final: bool = False) -> Lineage | None:
        """The statement's lineage; None when it does not parse.

        Once per statement, every catalog name the lineage used is checked against the
        target's catalog (a view replaced, a trigger added, by anyone, on any path): until
        the catalog (``stamp``) says each was read or checked after the statement was first
        seen here, the lineage comes back with those names in ``missing``, and the caller
        looks them up (which checks them) before it uses the lineage. Meanwhile it fails
        closed: every column and write carries ``UNKNOWN`` (``_unchecked``); after a failed
        check (``names_failed``), or when ``final`` (what the statement wrote is kept), the
        names not checked count as not looked up instead, and only what depends on them is
        unknown.

        The lineage is computed once from the cached entries: when the check finds them
        unchanged (the catalog's ``changes`` the same), that one is the statement's."""
        if statement.tree is None:
            return None
        catalog = self.analyzer.catalog
        stamp = getattr(catalog, "stamp", None)
        if statement.checked_from is None:
            statement.checked_from = int(getattr(catalog, "checks", 0))
        known = statement.lineage
        if known is not None and statement.checked and not (
                known.missing.relations or known.missing.functions):
            return known
        epoch = self._epoch()
        unchecked = statement.unchecked
        if unchecked is not None and unchecked[0] == epoch:
            lineage = unchecked[1]
        else:
            lineage = self._analyze(statement.tree, epoch)
            statement.unchecked = (epoch, lineage) if epoch is not None else None
        statement.lineage = lineage
        if lineage.missing.relations or lineage.missing.functions:
            return lineage
        if stamp is None:
            statement.checked = True
            return lineage
        since = statement.checked_from
        stale = Missing(
            frozenset(n for n in lineage.consulted.relations if stamp(n) <= since),
            frozenset(n for n in lineage.consulted.functions if stamp(n) <= since))
        if stale.relations or stale.functions:
            if not (self.names_failed or final):
                # Not to be used as it is: the caller looks the names up (and so checks
                # them) first, and asks again.
                unsure = statement.lineage = _unchecked(lineage, stale)
                return unsure
            # Not to be used as cached: what depends on them fails closed.
            self.analyzer.distrust = stale
            try:
                lineage = statement.lineage = self.analyzer.statement(statement.tree)
            finally:
                self.analyzer.distrust = None
            # All of them at once (what a distrusted view reads was not reached this time).
            lineage.missing = Missing(stale.relations | lineage.missing.relations,
                                      stale.functions | lineage.missing.functions)
            return lineage
        statement.checked = True
        statement.unchecked = None
        return lineage

    def _epoch(self) -> tuple[int, int] | None:
        """What a lineage is computed from besides the statement: the catalog's entries (its
        ``changes``) and the session's cursors and prepared statements (the analyzer's
        ``learned``). None when the catalog does not count its changes."""
        changes = getattr(self.analyzer.catalog, "changes", None)
        if not isinstance(changes, int):
            return None
        return changes, self.analyzer.learned

    def _analyze(self, tree: dict[str, Any], epoch: tuple[int, int] | None) -> Lineage:
        """The lineage of ``tree`` with the catalog's cached entries; the one computed for the
        same tree at the same ``epoch`` when there is one (a copy: callers change theirs)."""
        lineages = self._lineages
        key = id(tree)
        if epoch is not None:
            found = lineages.get(key)
            if found is not None and found[0] is tree and found[1] == epoch:
                lineages.move_to_end(key)
                return dataclasses.replace(found[2])
        lineage = self.analyzer.statement(tree)
        if epoch is not None:
            lineages[key] = (tree, epoch, dataclasses.replace(lineage))
            if len(lineages) > _LINEAGE_CACHE:
                lineages.popitem(last=False)
        return lineage


def _typed(tree: dict[str, Any], body: bytes, pos: int) -> dict[str, Any]:
    """A Parse's tree with the types it gave its parameters that are not PostgreSQL's own
    (``PARAM_TYPES``): their input at each Bind runs a domain's CHECKs. A tree of its own
    (lineages are kept by tree), or the parsed text's shared one when there are none."""
    count = int.from_bytes(body[pos:pos + 2], "big")
    oids = tuple(sorted({o for o in (int.from_bytes(body[p:p + 4], "big")
                                     for p in range(pos + 2, pos + 2 + 4 * count, 4))
                         if o >= FIRST_USER_OID}))
    if not oids:
        return tree
    kind, node = next(iter(tree.items()))
    return {kind: {**node, PARAM_TYPES: oids}}


def _unchecked(lineage: Lineage, stale: Missing) -> Lineage:
    """``lineage`` while ``stale`` names are not checked: what it says, and ``UNKNOWN`` in
    every column, read and write (fails closed whatever depends on them)."""
    return dataclasses.replace(
        lineage,
        columns=(None if lineage.columns is None
                 else tuple(c | _UNKNOWN for c in lineage.columns)),
        reads=lineage.reads | _UNKNOWN,
        writes=tuple((target, sources | _UNKNOWN) for target, sources in lineage.writes),
        declares=(lineage.declares[0], None) if lineage.declares else None,
        missing=Missing(stale.relations | lineage.missing.relations,
                        stale.functions | lineage.missing.functions),
        opaque=lineage.opaque or "its catalog names are not checked yet")


def _cstr_raw(body: bytes, pos: int) -> tuple[bytes, int]:
    end = body.find(b"\x00", pos)
    if end < 0:
        end = len(body)
    return body[pos:end], end + 1


def _cstr(body: bytes, pos: int) -> tuple[str, int]:
    end = body.find(b"\x00", pos)
    if end < 0:
        end = len(body)
    return body[pos:end].decode("utf-8", "replace"), end + 1


Resolver = Callable[[frozenset[str], frozenset[str]], None]
