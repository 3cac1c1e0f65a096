"""Lineage: which table columns each result column of a statement is computed from.

A column rule names table columns (``customers.national_id``); PostgreSQL's RowDescription
names the table column behind a result column only when the column is read straight from a
table. Everything computed (``national_id || ''``, ``upper(iban)``, ``row_to_json(c)``, a CTE,
a UNION arm, a view that renames the column) comes without a table. ``lineage`` reads the
statement's parse tree (pglast, PostgreSQL's own parser) and follows each result column back
through aliases, expressions, function calls, casts, subqueries, CTEs, set operations, joins,
``*`` and whole-row references to the table columns it depends on.

The walk is conservative: an expression depends on every column it mentions (a CASE's
conditions and a function's arguments included); only ``count(*)`` and ``count`` of a column
read straight from a table, whose result never carries a value, are left out. What picks,
orders or counts a query level's rows (WHERE, JOIN conditions, ORDER BY, LIMIT, GROUP BY,
DISTINCT, HAVING…: its "shape") is carried into every column of the level and of the levels
it feeds: a clean column of rows a masked value picks spells that value. What cannot be
followed is ``UNKNOWN`` and the caller fails closed (masks the column and counts it as
``lineage-unknown``):

- a function that is not PostgreSQL's own whose body the gateway cannot read, or that runs
  dynamic SQL, or reads a relation with a column a rule names (``Catalog.function``);
- PostgreSQL functions that run SQL given as text (``query_to_xml``, ``dblink``...) or read
  outside the tables (large objects, server files);
- the statistics PostgreSQL keeps of column values (``pg_stats`` most common values and
  histograms, ``pg_statistic``);
- the names and text of the session's cursors and prepared statements as the catalog shows
  them (``pg_cursors``, ``pg_prepared_statements``): a refcursor names its portal with a value
  chosen at run time;
- a cursor or a prepared statement the gateway did not see declared, or whose declaration it
  could not follow (``FETCH``, ``EXECUTE``);
- a relation the catalog does not show (a temporary table, one created since the lookup or in
  a transaction not committed yet), and a column name no relation in scope has;
- a function whose body the catalog shows empty (a SQL-standard body it could not read).

What a statement writes (``Lineage.writes``) is remembered by the catalog (``derived``): a
later read of that table column depends on what was written into it. Writes are followed into
the code the statement runs besides itself (``_effects``): the bodies of the user functions
and procedures it calls and of its ``DO`` blocks (``engine.masking.bodies``), the triggers,
rules and column defaults of the relations it writes, the base tables of a view written
through, the partitions and parents of a table. In a body, every value written carries all
the body reads and its arguments (what flows through variables is not followed one by one).
Code that cannot be read (dynamic SQL, another procedural language) makes the lineage
``opaque``: what it wrote, and where, is unknown.

Relations are looked up by name in the target's catalog (``Catalog``): their columns (for ``*``
and whole-row references) and, for views, their definition, whose own lineage is followed. The
catalog does not know the session's ``search_path``: an unqualified name stands for every
relation of that name (PostgreSQL's own ``pg_catalog`` first, as the server resolves it).
A lookup the catalog has not made yet is reported in ``Lineage.missing``; the caller looks the
names up and asks again.

Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar, cast

import orjson
from pglast.parser import ParseError, parse_sql_json

from engine.guardrail import attribute, builtin_names, querytext
from engine.masking import bodies


class Source(NamedTuple):
    """A table column (schema None: the statement did not say, any schema)."""

    schema: str | None
    table: str
    column: str


UNKNOWN = Source(None, "", "")
"""A dependency the gateway cannot follow: fail closed."""

Lin = frozenset[Source]
_NONE: Lin = frozenset()
# The first OID PostgreSQL gives an object created after initdb: below it, every type is
# PostgreSQL's own (the system catalogs' and information_schema's).
FIRST_USER_OID = 16384
# The key, in a statement's tree, of the user types its Parse gave its parameters by OID
# (``engine.masking.flow``); a tuple, which no walk of the tree descends into.
PARAM_TYPES = "gatewatchParamTypes"
_UNKNOWN: Lin = frozenset({UNKNOWN})


@dataclass(frozen=True)
class Relation:
    """A relation as the catalog knows it: ``kind`` is pg_class.relkind."""

    schema: str
    name: str
    kind: str
    columns: tuple[str, ...]
    definition: str | None = None  # a view's query
    # What a write into the relation also runs: its triggers' functions ("schema.name"), its
    # rules other than a view's SELECT (``CREATE RULE`` text, pg_get_ruledef), the default
    # expressions of its columns; and its generated columns (computed from the others).
    triggers: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    generated: tuple[str, ...] = ()
    defaults: tuple[str, ...] = ()  # column default expressions that call functions
    # Partitions and inheritance: the relations whose rows are this one's, or whose rows
    # this one's are (a write into one is read through the other).
    family: tuple[str, ...] = ()
    # CHECK expressions a write into the relation runs: the table's, and its columns'
    # domains' (of VALUE).
    checks: tuple[str, ...] = ()
    # Index expressions and partial-index predicates (a write evaluates them), and row-security
    # policies' USING and WITH CHECK expressions (a read or a write does).
    indexes: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    # What ANALYZE, or a write into a partitioned table, also evaluates: the functions (as
    # calls, ``s.f()``) and types (as casts) its extended statistics and partition key use.
    evaluated: tuple[str, ...] = ()
    # Enums its defaults, CHECKs, index expressions and policies name (schema, name) that no
    # user's cast leads into: a cast into one (pg_dump's ``'new'::public.status``) runs no
    # user's code.
    plain_types: tuple[tuple[str, str], ...] = ()
    # Users' types of its columns (schema, name), and of what they are made of: a value
    # assigned to one goes through a cast into the type (an assignment cast), a user's code.
    types: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    language: str
    source: str  # the body (prosrc)
    definition: str = ""  # the whole CREATE FUNCTION (pg_get_functiondef), for PL/pgSQL


_T_co = TypeVar("_T_co", covariant=True)
_EXECUTE_DEPTH = 4  # EXECUTE of a statement that is itself EXECUTE …: followed this deep


class Named(Protocol[_T_co]):
    """Declared things by the name SQL text gives them (a dict, or the flow's maps)."""

    def get(self, name: str, /) -> _T_co | None: ...


class Catalog(Protocol):
    """What lineage needs of the target's catalog. ``None``: not looked up yet.

    A catalog may also answer ``derived(table, column)``: the sources of values written into
    that table column by earlier statements (``CREATE TABLE AS``, ``INSERT ... SELECT``,
    ``UPDATE ... SET``), which a read of the column carries on (see ``Lineage.writes``)."""

    def relations(self, name: str) -> list[Relation] | None: ...

    def functions(self, name: str) -> list[Function] | None: ...


class Missing(NamedTuple):
    relations: frozenset[str]
    functions: frozenset[str]


@dataclass
class Lineage:
    """The lineage of one statement.

    ``columns``: one set of sources per result column, or None when the statement returns no
    rows the gateway can account for (then ``reads`` decides). ``reads``: every column the
    statement mentions anywhere (errors it raises may quote them). ``missing``: catalog names to
    look up before the answer is complete (then the rest is provisional).
    """

    columns: tuple[Lin, ...] | None
    reads: Lin
    missing: Missing = field(default_factory=lambda: Missing(frozenset(), frozenset()))
    declares: tuple[str, tuple[Lin, ...] | None] | None = None  # DECLARE/PREPARE name
    writes: tuple[tuple[Source, Lin], ...] = ()  # table columns assigned from these sources
    written: frozenset[str] = frozenset()  # the tables it writes into (by name)
    # Code the statement runs that the gateway cannot read (dynamic SQL, a body in another
    # language): what it wrote, and where, is unknown. The reason, for the log.
    opaque: str | None = None
    # Every catalog name the lineage depends on (looked up or not): checked against the
    # target's catalog once per statement (``engine.pg.catalog``).
    consulted: Missing = field(default_factory=lambda: Missing(frozenset(), frozenset()))
    prepared_query: dict[str, Any] | None = None  # a PREPARE's query, run by each EXECUTE
    # A built-in kept a value outside the transaction (``setval``, an advisory lock): what it
    # wrote stays even when the statement fails.
    keeps: bool = False
    # What the statement, or code it runs, does that other sessions (or later statements)
    # observe besides its result and its writes: a setting, a row or advisory lock, a
    # notification, subtransactions (each takes a transaction id), in words for an error
    # (``engine.masking.effects`` refuses them where the statement reads a masked column).
    effects: frozenset[str] = frozenset()
    # Row locks (FOR UPDATE/SHARE) of the statement's own query levels: what picks the rows
    # they lock (every level's shape: WHERE, JOIN conditions, LIMIT …), which another
    # session's SKIP LOCKED or NOWAIT finds; None: it locks no rows. (The columns it shows
    # do not choose them: ``select * from customers where id = 1 for update`` picks by id.)
    locks: Lin | None = None


# PostgreSQL's functions that run SQL given as text, or read what is not in a table.
_OPAQUE_FUNCTIONS = re.compile(
    r"(?:query|cursor|table|schema|database)_to_xml(?:schema|_and_xmlschema)?|dblink\w*"
    r"|lo_get|loread|lo_export|pg_read_file|pg_read_binary_file|pg_ls_\w+|lo_import"
    r"|pg_stat_file|pg_logical\w*|pg_cursor|pg_prepared_statement"
    r"|pg_get_backend_memory_contexts")
# Count of rows or values: ``count(*)``, or ``count(c)`` of a column read straight from a
# table, is a number, never one of the values. ``count(expr)`` counts the rows where expr is
# not null: ``count(nullif(g <= ascii(substr(nid, p, 1)), false))`` is the character's code,
# so it carries expr's sources (``Analyzer._counts_rows``).
_VALUE_FREE = frozenset({"count"})
# Catalog relations that hold samples of column values.
_STATISTICS = frozenset({"pg_stats", "pg_statistic", "pg_stats_ext", "pg_stats_ext_exprs",
                         "pg_statistic_ext_data"})
_STATISTIC_VALUE = re.compile(r"most_common|histogram|stavalues|stxd|elem_count|exprs")
_BUILTIN_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
_TRUSTED_BODIES = frozenset({"sql", "plpgsql"})
# What the catalog says of an aggregate and of an operator (looked up as 'operator:<name>'):
# its "body" is the functions it runs ('schema.name', space separated), followed as calls.
_RUNS_FUNCTIONS = frozenset({"aggregate", "operator", "type"})
_OPERATOR = re.compile(r"[-+*/<>=~!@#%^&|`?]+")
_INSTALLED_CODE = frozenset({"c", "internal"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_ESCAPED_NAME = re.compile(r'[Uu]&"')
_MAX_DEPTH = 8
# Passes over a recursive CTE before its columns are taken as unknown (each pass that
# changes something adds a source to a column: a statement needs far fewer).
_MAX_FIXED_POINT = 64
_MAX_EFFECTS = 200  # bodies, triggers and rules followed for one statement
# Where a value kept in a setting can be read back (``set_config``; ``SET`` takes literals).
_SETTINGS = (Source("pg_catalog", "pg_settings", "setting"),
             Source("pg_catalog", "pg_stat_activity", "application_name"))
_SETTINGS_WRITE = frozenset({"set_config"})
# Built-ins whose call other sessions (or the session's later results) observe, whatever they
# return: how many times they run, and with which arguments, is what a masked value in the
# statement may decide (``Lineage.effects``). A setting changes how later values print (a
# TimeZone offset in every timestamptz, DateStyle reported to the client); a lock is found
# by another session's ``pg_try_advisory_lock``; a notification is delivered or not; a
# backend is cancelled or not.
_EFFECT_FUNCTIONS = re.compile(
    r"set_config|pg_(?:try_)?advisory_\w+|pg_notify|pg_cancel_backend|pg_terminate_backend"
    r"|pg_log_backend_memory_contexts|pg_reload_conf|pg_rotate_logfile|pg_stat_reset\w*"
    r"|pg_switch_wal|pg_promote|pg_wal_replay_\w+")
# Statements whose running is observed outside their result (in a body, under an IF on a
# masked value): a setting, a table lock, a notification.
_EFFECT_STATEMENTS = {"VariableSetStmt": "a setting (SET)", "LockStmt": "a table lock (LOCK)",
                      "NotifyStmt": "a notification (NOTIFY)"}
# What a body may run that shows only in its result and its writes (which lineage follows):
# any other statement in a body changes the catalog, a role or database setting, a cursor…
_BODY_DATA = frozenset({"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt",
                        "CallStmt", "DoStmt", "DeclareCursorStmt", "FetchStmt",
                        "ClosePortalStmt", "ExecuteStmt", "PrepareStmt", "DeallocateStmt",
                        "TransactionStmt", "VariableShowStmt", "CopyStmt", "TruncateStmt",
                        "ExplainStmt"})
# PL/pgSQL that opens subtransactions or ends transactions (an EXCEPTION block, COMMIT,
# ROLLBACK): each takes a transaction id when it writes, which any session's txid_current()
# counts (a loop of them as long as a masked value says).
_SUBTRANSACTIONS = re.compile(r"\b(?:exception|commit|rollback)\b", re.IGNORECASE)
_RAISE = re.compile(r"\braise\s+exception\b", re.IGNORECASE)  # an error, no block
# Built-in functions that keep an argument outside any table, where a later statement of any
# session reads it back: ``setval`` (``currval``, ``nextval``, ``lastval``, pg_sequences),
# the advisory locks (pg_locks), ``setseed`` (``random``). The value is written into a
# column of the view (or a name) it is read back from; these keep it even when the statement
# or its transaction fails (``Lineage.keeps``).
_SEQUENCE = Source("pg_catalog", "pg_sequences", "last_value")
_LOCKS = tuple(Source("pg_catalog", "pg_locks", c) for c in ("classid", "objid", "objsubid"))
_SEED = Source("pg_catalog", "setseed", "seed")
_KEEPS: dict[str, tuple[Source, ...]] = {
    "setval": (_SEQUENCE,), "setseed": (_SEED,),
    **{f"pg{t}_advisory{x}_lock{s}": _LOCKS for t in ("", "_try") for x in ("", "_xact")
       for s in ("", "_shared")},
}
# Built-ins that move a sequence on: how many times they run (a row count a masked value
# decides, a CASE over one) is kept in the sequence, read back by ``pg_sequences``,
# ``currval`` and the next serial id, by any session (``Analyzer._sequence_moves``).
_SEQUENCE_MOVES = frozenset({"nextval", "setval"})
# Catalog views whose columns hold names and text chosen at run time: a PL/pgSQL refcursor's
# value names its portal (``declare c refcursor := national_id; open c for …``), so
# ``pg_cursors.name`` may be any value a function read. Masked as lineage-unknown.
_RUNTIME_NAMES: dict[str, frozenset[str]] = {
    "pg_cursors": frozenset({"name", "statement"}),
    "pg_prepared_statements": frozenset({"name", "statement"}),
    # (a portal's memory context is identified by the portal's name)
    "pg_backend_memory_contexts": frozenset({"name", "ident", "path"}),
}
_KEPT_READ: dict[str, Source] = {
    "currval": _SEQUENCE, "nextval": _SEQUENCE, "lastval": _SEQUENCE,
    "pg_sequence_last_value": _SEQUENCE, "random": _SEED, "random_normal": _SEED,
}
# Built-ins that keep an argument where the gateway does not follow it (large objects and
# their oids, backup labels, restore points, replication origins and slots): given a masked
# value, the statement is code the gateway cannot follow (every table lineage-unknown).
_KEEPS_UNFOLLOWED = re.compile(
    r"lo_\w+|lowrite|lo_creat|pg_backup_start|pg_start_backup|pg_create_restore_point"
    r"|pg_replication_origin\w*|pg_\w*replication_slot")
# Built-ins whose result reads settings set_config() may have kept a value in: the time zone
# (``to_char(now(), 'TZ')`` spells a zone named '<…>+4' whole, its hours shift by the
# offset), the locale's names, ``timeofday()``'s zone.
_SETTINGS_READ = frozenset({"current_setting", "to_char", "timeofday"})
_ANY = "\0any"  # the column of a function's result that answers to any name


# A SELECT's clauses that decide how many rows it gives, which, and in what order: their
# sources are carried into every column (``_select``). A WHERE over a masked column picks the
# rows of another row source whose columns are output (``… where ascii(substr(nid, p, 1)) =
# g`` spells the value with the clean ``g``), an ORDER BY orders them or picks the one a LIMIT
# keeps; GROUP BY, DISTINCT and HAVING decide how many groups; a named window's PARTITION BY
# and ORDER BY decide its functions' values. (JOIN … ON / USING are a FROM's: ``_from_item``.)
_SHAPING = frozenset({"whereClause", "sortClause", "limitCount", "limitOffset", "groupClause",
                      "distinctClause", "havingClause", "windowClause"})
# Clauses whose bare names may be output columns' (``order by n``, ``group by 1``).
_BY_OUTPUT = frozenset({"sortClause", "groupClause", "distinctClause"})
# Built-in set-returning functions: in a target list each makes rows as its arguments say. A
# function the gateway does not know may return a set too: any call that is not PostgreSQL's
# own is taken as one.
_SET_RETURNING = frozenset({
    "generate_series", "generate_subscripts", "unnest", "regexp_split_to_table",
    "regexp_matches", "string_to_table", "json_array_elements", "json_array_elements_text",
    "jsonb_array_elements", "jsonb_array_elements_text", "json_each", "json_each_text",
    "jsonb_each", "jsonb_each_text", "json_object_keys", "jsonb_object_keys",
    "jsonb_path_query", "json_populate_recordset", "jsonb_populate_recordset",
    "json_to_recordset", "jsonb_to_recordset", "pg_options_to_table", "ts_stat",
    "ts_debug", "ts_parse", "ts_token_type", "xpath_table", "aclexplode",
})


def _calls(node: Any, names: frozenset[str], *, subqueries: bool
           ) -> Iterator[dict[str, Any]]:
    """The calls in an expression of a function named in ``names``, or of one that is not
    PostgreSQL's own (a user's may do anything); ``subqueries``: inside them too."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            call = item.get("FuncCall")
            if isinstance(call, dict):
                parts = [_only(n)[1].get("sval", "") for n in call.get("funcname", [])]
                schema = parts[-2] if len(parts) > 1 else None
                if parts and (parts[-1] in names or schema not in (None, "pg_catalog")
                              or parts[-1] not in builtin_names.FUNCTIONS):
                    yield call
            for kind in ("A_Indirection", "ColumnRef"):  # (x).f is f(x) (``attribute``)
                inner = item.get(kind)
                if isinstance(inner, dict):
                    yield from (attribute.call(n, a) for n, a in
                                attribute.selections(kind, inner) if n in names)
            if "SelectStmt" in item and not subqueries:
                continue
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _set_returning(node: Any) -> list[dict[str, Any]]:
    """The calls in an expression that may return a set: PostgreSQL's set-returning functions
    and every function that is not PostgreSQL's own (a user's may be declared SETOF). A
    subquery's own target list decides its own rows."""
    return list(_calls(node, _SET_RETURNING, subqueries=False))


_CONDITIONAL = frozenset({"CaseExpr", "CoalesceExpr", "BoolExpr", "MinMaxExpr"})


def _may_move_sequence(node: Any) -> bool:
    """Whether an expression may call nextval or setval: by name, or a function that is not
    PostgreSQL's own (its body may)."""
    return next(_calls(node, _SEQUENCE_MOVES, subqueries=True), None) is not None


def parse(text: str) -> list[dict[str, Any]] | None:
    """The raw statements of ``text`` (pglast JSON), or None when PostgreSQL would not parse it."""
    try:
        tree = orjson.loads(parse_sql_json(text))
    except ParseError:
        return None
    stmts: list[dict[str, Any]] = tree.get("stmts", [])
    return [s.get("stmt", {}) for s in stmts]


class _Range(NamedTuple):
    name: str  # alias, or the relation's name
    columns: tuple[tuple[str, Lin], ...]
    table: str = ""  # the relation it reads straight (no CTE, subquery or function)

    def whole(self) -> Lin:
        out: set[Source] = set()
        for _, lin in self.columns:
            out |= lin
        return frozenset(out)


Scope = tuple[tuple[_Range, ...], ...]  # innermost level first


class Analyzer:
    """Computes lineages against a catalog. ``masked(source)`` says whether a rule names a
    table column; it decides whether a function's body is safe to ignore."""

    def __init__(self, catalog: Catalog, masked: Callable[[Source], bool], *,
                 names: Callable[[str], bool] | None = None) -> None:
        self.catalog = catalog
        self.masked = masked
        # ``names(word)``: whether a word could be a masked column's name (a function body
        # that mentions one is not safe); defaults to never.
        self.names = names or (lambda word: False)
        self._missing_rel: set[str] = set()
        self._missing_fn: set[str] = set()
        self._consulted_rel: set[str] = set()
        self._consulted_fn: set[str] = set()
        self._reads: set[Source] = set()
        # What decides how many rows there are, which and in what order (``_select``): the
        # sources of the FROM being read (set-returning functions' arguments, JOIN
        # conditions, subqueries' and CTEs' own), the last SELECT's, each CTE's (by name).
        self._shapes: Lin = _NONE
        self._last_shape: Lin = _NONE
        self._cte_shapes: dict[str, Lin] = {}
        self._view_shapes: dict[str, Lin] = {}  # a view's query's, by the view's name
        self._written: set[str] = set()
        self._writes: list[tuple[Source, Lin]] = []
        # User functions the statement calls: (schema, name, what their arguments carry).
        self._calls: list[tuple[str | None, str, Lin]] = []
        self._opaque: str | None = None
        # Inside a body (a function's, a trigger's, a DO block's): names no relation has are
        # the body's variables (what they hold is in what the body reads, see ``_body``), and
        # NEW and OLD are the rows of the table a trigger fires on.
        self._in_body = False
        self._bound: tuple[_Range, ...] = ()
        self._no_derived = False  # a view's base columns for a write through it
        # Names whose cached catalog entries are not to be used (not checked yet): they
        # count as not looked up (``StatementFlow.lineage``).
        self.distrust: Missing | None = None
        self._prepared_query: dict[str, Any] | None = None
        self._depth = 0
        self._fn_safety: dict[str, bool] = {}
        # The CTEs visible where the walk is: a subquery, sublink, lateral item or set-op
        # branch nested anywhere in a statement sees its WITH names (a CTE named like a real
        # table shadows it); a view's query or a function's body starts with none.
        self._ctes: dict[str, list[tuple[str, Lin]]] = {}
        self._keeps = False  # a built-in kept a value outside the transaction
        self._side: set[str] = set()  # what others observe besides its result (``effects``)
        self._locked = False  # a query level of its own locks rows (``locks``)
        # Sequences (``_sequence_moves``): whether the statement may move one (nextval,
        # setval, a serial or identity default of a table it inserts into), every shape of
        # its query levels, and what decides whether a conditional runs a nextval.
        self._sequenced = False
        self._all_shapes: set[Source] = set()
        self._inserts: set[str] = set()
        # Cursors and prepared statements declared in the session, by name (the statement
        # flow gives its own maps, which the protocol's names share: ``engine.masking.flow``).
        self.cursors: Named[tuple[Lin, ...] | None] = {}
        # The query of each prepared statement: each EXECUTE follows it afresh (what it reads
        # may have been written to since the PREPARE).
        self.prepared_queries: Named[dict[str, Any]] = {}
        self.learned = 0  # bumped by ``learn``: a lineage computed before may differ now
        self._executing = 0  # EXECUTEs being followed, one inside the other

    # --- entry points ---------------------------------------------------------------------

    def statement(self, stmt: dict[str, Any]) -> Lineage:
        self._missing_rel, self._missing_fn, self._reads = set(), set(), set()
        self._shapes, self._last_shape, self._cte_shapes = _NONE, _NONE, {}
        self._view_shapes = {}
        self._consulted_rel, self._consulted_fn = set(), set()
        self._written, self._writes, self._calls = set(), [], []
        # Not narrowed to None (cast): the walk below sets both, and mypyc would trust a
        # narrowed None when they are read after it (store/compiled.py).
        self._opaque = cast("str | None", None)
        self._in_body, self._bound = False, ()
        self._prepared_query = cast("dict[str, Any] | None", None)
        self._ctes = {}
        self._keeps = False
        self._side = set()
        self._locked = False
        self._sequenced, self._all_shapes, self._inserts = False, set(), set()
        self._fn_safety = {}
        columns: tuple[Lin, ...] | None = None
        declares: tuple[str, tuple[Lin, ...] | None] | None = None
        try:
            columns, declares = self._stmt(stmt)
            for oid in _only(stmt)[1].get(PARAM_TYPES, ()):
                self._parameter_type(oid)
            self._effects()
            self._sequence_moves()
        except RecursionError:
            columns, self._reads = None, {UNKNOWN}
            self._opaque = self._opaque or "statement too deeply nested to follow"
        missing = Missing(frozenset(self._missing_rel), frozenset(self._missing_fn))
        consulted = Missing(frozenset(self._consulted_rel), frozenset(self._consulted_fn))
        return Lineage(columns, frozenset(self._reads), missing, declares, tuple(self._writes),
                       frozenset(self._written), self._opaque, consulted,
                       self._prepared_query, self._keeps, frozenset(self._side),
                       frozenset(self._all_shapes) if self._locked else None)

    def _stmt(self, stmt: dict[str, Any],
              ) -> tuple[tuple[Lin, ...] | None, tuple[str, tuple[Lin, ...] | None] | None]:
        """One statement's result columns and declaration; what it reads, writes and calls
        accumulates in the analyzer's state."""
        columns: tuple[Lin, ...] | None = None
        declares: tuple[str, tuple[Lin, ...] | None] | None = None
        kind, node = _only(stmt)
        if kind == "SelectStmt":
            out = self._select(node, (), {})
            into = node.get("intoClause")
            if into:
                rel = into.get("rel", {})
                self._writes += self._assign(rel, [n for n, _ in out], out,
                                             into.get("colNames"))
            else:
                columns = tuple(lin for _, lin in out)
        elif kind in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
            columns = self._modify(kind, node)
        elif kind == "CopyStmt":
            if not node.get("is_from"):
                columns = self._copy(node)
            else:
                rel = node.get("relation") or {}
                self._range_var(rel, {})
                self._written.add(rel.get("relname", ""))
                if node.get("filename") or node.get("is_program"):
                    # A server file or a program's output: anything may be in it (a COPY TO
                    # of a masked column earlier, a dump).
                    self._writes.append((Source(rel.get("schemaname"), rel.get("relname", ""),
                                                _ANY), _UNKNOWN))
                self._sequence_fills(rel, ())
        elif kind == "DeclareCursorStmt":
            q = self._select_any(node.get("query", {}))
            declares = (node.get("portalname", ""), tuple(lin for _, lin in q))
        elif kind == "PrepareStmt":
            start, calls = len(self._writes), len(self._calls)
            cols, _ = self._stmt(node.get("query", {}))
            declares = (node.get("name", ""), cols)
            # What it writes and runs happens at each EXECUTE, which follows the query again.
            self._prepared_query = node.get("query") or None
            del self._writes[start:]
            del self._calls[calls:]
        elif kind == "FetchStmt":
            # The rows are the declared query's: its columns when the gateway followed
            # them (None: not, and every column is masked). What it reads is not kept:
            # its errors may quote any value it reads (fail closed).
            columns = self.cursors.get(node.get("portalname", ""))
            self._reads.add(UNKNOWN)
        elif kind == "ExecuteStmt":
            name = node.get("name", "")
            params = self._expr(node.get("params"), ())
            self._reads.add(UNKNOWN)  # its errors may quote any value it reads
            query = self.prepared_queries.get(name)
            if query is None:
                self._opaque = self._opaque or f"EXECUTE of {name!r}, not seen prepared"
            elif self._executing >= _EXECUTE_DEPTH:
                self._opaque = self._opaque or f"EXECUTE of {name!r} runs EXECUTE this deep"
            else:
                start = len(self._writes)
                self._executing += 1
                try:
                    cols, _ = self._stmt(query)
                finally:
                    self._executing -= 1
                columns = tuple(c | params for c in cols) if cols is not None else None
                self._writes[start:] = [(t, lin | params) for t, lin in self._writes[start:]]
        elif kind == "CallStmt":
            lin = self._expr({"FuncCall": node.get("funccall") or {}}, ())
            self._reads |= lin
            columns = None
            if lin:
                self._reads.add(UNKNOWN)
        elif kind == "CreateTableAsStmt":
            q = self._select_any(node.get("query", {}))
            into = node.get("into", {})
            self._writes += self._assign(into.get("rel", {}), [n for n, _ in q], q,
                                         into.get("colNames"))
        elif kind == "ExplainStmt":
            self._stmt(node.get("query", {}))  # its reads: an error may still quote a value
            columns = None
        elif kind == "DoStmt":
            # An anonymous block: its errors and notices may quote what it reads, and what it
            # writes is followed like any body's (``_body``).
            body = ""
            language = "plpgsql"
            for arg in node.get("args", []):
                d = _only(arg)[1]
                value = _only(d.get("arg", {}))[1].get("sval", "")
                if d.get("defname") == "as":
                    body = value
                elif d.get("defname") == "language":
                    language = value.lower()
            if not self._body_safe(Function("", "", language, body)):
                self._reads.add(UNKNOWN)
            self._run_code(Function("", "", language, body), _NONE, ())
        elif kind == "RenameStmt":
            self._rename(node)
        elif kind == "AlterTableStmt":
            self._alter_table(node)
        elif kind == "IndexStmt":  # its expressions run on every row (a function may write)
            rng = self._range_var(node.get("relation") or {}, {})
            for param in node.get("indexParams", []):
                self._expr(_only(param)[1].get("expr"), ((rng,),))
            self._expr(node.get("whereClause"), ((rng,),))
        elif kind == "AlterDomainStmt":  # a new CHECK runs on values of any table: unknown
            con = _only(node.get("def", {}))[1] if node.get("def") else {}
            if con.get("raw_expr"):
                self._expr(con["raw_expr"],
                           ((_Range("", (("value", _UNKNOWN),)),),))
        elif kind == "VariableShowStmt":  # a setting may hold what set_config() kept
            self._reads |= self._derived(_SETTINGS[0].table, _SETTINGS[0].column)
        elif kind == "ClusterStmt" and node.get("relation"):
            # Rewrites the table in an index's order: a plain read's row order then follows
            # the indexed values, whatever columns it shows (which index: not looked up).
            rel = node["relation"]
            whole = self._range_var(rel, {}).whole()
            if any(s is UNKNOWN or self.masked(s) for s in whole):
                self._written.add(rel.get("relname", ""))
                self._writes.append((Source(rel.get("schemaname"), rel.get("relname", ""),
                                            _ANY), whole))
        elif kind == "TruncateStmt":  # its triggers (ON TRUNCATE) run
            for rel in node.get("relations", []):
                self._written.add(_only(rel)[1].get("relname", ""))
        elif kind in _EFFECT_STATEMENTS:
            self._side.add(_EFFECT_STATEMENTS[kind])
        if self._in_body and kind and kind not in _BODY_DATA and kind not in _EFFECT_STATEMENTS:
            # DDL in a body (a table created, a role's setting altered under an IF over what
            # the body read): other sessions see the catalog change, or the next login's
            # ParameterStatus.
            self._side.add(f"{kind.removesuffix('Stmt')} in code it runs")
        return columns, declares

    def _sequence_moves(self) -> None:
        """A statement that moves a sequence (nextval, setval, a serial or identity default
        of a table it inserts into) as many times as its rows say keeps that count in the
        sequence: ``nextval('s')`` once per row of ``generate_series(1, ascii(…))`` leaves
        the character's code in ``pg_sequences.last_value``, which any session reads. The
        sequence then carries what shaped any of the statement's query levels (the level of
        the call cannot always be told: an outer LIMIT stops an inner one) and what decides
        whether a conditional reaching a nextval runs it. Which sequence is not followed:
        every read of sequence state carries it (``_KEPT_READ``, ``pg_sequences``)."""
        if not self._sequenced:
            return
        shape = frozenset(self._all_shapes)
        if shape:
            self._keeps = True  # a sequence does not roll back
            self._writes.append((_SEQUENCE, shape))

    def _shaped(self, shape: Lin) -> Lin:
        """Remember one query level's shape for ``_sequence_moves``; returned as given."""
        if shape:
            self._all_shapes |= shape
        return shape

    def _sequence_fills(self, rel: dict[str, Any], added: tuple[str, ...]) -> None:
        """A sequence setval() set from a masked column: a write that fills rows with column
        defaults the statement does not spell (COPY FROM, ALTER TABLE … ADD COLUMN filling the
        existing rows) may write that value into any column of the table (``added``: columns
        the statement adds), as an INSERT's serial or identity default does."""
        kept = self._derived(_SEQUENCE.table, _SEQUENCE.column)
        if not kept:
            return
        rng = self._range_var(rel, {})
        schema, table = rel.get("schemaname"), rel.get("relname", "")
        self._written.add(table)
        for name in [n for n, _ in rng.columns] + list(added) or [_ANY]:
            self._writes.append((Source(schema, table, name), kept))

    def _alter_table(self, node: dict[str, Any]) -> None:
        """``ALTER COLUMN c TYPE … USING expr`` rewrites c from the row's other columns;
        ``ADD COLUMN c … DEFAULT expr`` (or GENERATED) fills c in every existing row."""
        rel = node.get("relation") or {}
        rng: _Range | None = None
        for cmd in node.get("cmds", []):
            c = _only(cmd)[1]
            if c.get("subtype") in ("AT_AddColumn", "AT_AlterColumnType"):
                col = _only(c.get("def", {}))[1] if c.get("def") else {}
                name = col.get("colname") or c.get("name") or ""
                self._sequence_fills(rel, (name,) if name else ())
            if c.get("subtype") == "AT_AddColumn":
                col = _only(c.get("def", {}))[1] if c.get("def") else {}
                exprs = [_only(k)[1].get("raw_expr") for k in col.get("constraints") or []]
                exprs = [e for e in [*exprs, col.get("raw_default")] if e]
                if exprs:
                    rng = rng or self._range_var(rel, {})
                    self._written.add(rel.get("relname", ""))
                    lin = self._expr(exprs, ((rng,),))
                    if lin:
                        self._writes.append((Source(rel.get("schemaname"),
                                                    rel.get("relname", ""),
                                                    col.get("colname", "")), lin))
                continue
            if c.get("subtype") in ("AT_AddConstraint", "AT_ValidateConstraint"):
                # Checked against every existing row: what its functions get is the table.
                rng = rng or self._range_var(rel, {})
                con = _only(c.get("def", {}))[1] if c.get("def") else {}
                if con.get("raw_expr"):
                    self._expr(con["raw_expr"], ((rng,),))
                self._consulted_rel.add(rel.get("relname", ""))
                for found in self._relations(rel.get("relname", "")) or []:
                    self._checks(found.checks, rng.columns, found.name)
                continue
            if c.get("subtype") != "AT_AlterColumnType":
                continue
            using = _only(c.get("def", {}))[1].get("raw_default")
            if not using:
                continue
            if rng is None:
                rng = self._range_var(rel, {})
                self._written.add(rel.get("relname", ""))
            lin = self._expr(using, ((rng,),))
            self._writes.append((Source(rel.get("schemaname"), rel.get("relname", ""),
                                        c.get("name", "")), lin))

    def _rename(self, node: dict[str, Any]) -> None:
        """A renamed column or table keeps the rules of its old name: rules name columns, and
        ``ALTER TABLE customers RENAME national_id TO x`` moves no value."""
        rel = node.get("relation") or {}
        table, schema = rel.get("relname", ""), rel.get("schemaname")
        new = node.get("newname", "")
        if not table or not new:
            return
        if node.get("renameType") == "OBJECT_COLUMN":
            self._writes.append((Source(schema, table, new),
                                 frozenset({Source(schema, table, node.get("subname", ""))})))
        elif node.get("renameType") in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW",
                                        "OBJECT_FOREIGN_TABLE"):
            self._writes.append((Source(schema, new, _ANY),
                                 frozenset({Source(schema, table, "*")})))

    # --- code the statement runs ----------------------------------------------------------

    def _effects(self) -> None:
        """Follow what the statement runs besides itself, until nothing new comes up: the
        bodies of the user functions it calls, the triggers and rules of the relations it
        writes, the base tables of the views it writes through. Each adds writes (and maybe
        more calls and written relations)."""
        done_calls: dict[tuple[str | None, str], Lin] = {}
        done_tables: set[str] = set()
        steps = 0
        while True:
            progressed = False
            for schema, name, args in list(self._calls):
                key = (schema, name)
                seen = done_calls.get(key)
                if seen is not None and args <= seen:
                    continue
                done_calls[key] = (seen or _NONE) | args
                progressed = True
                steps += 1
                if steps > _MAX_EFFECTS:
                    self._opaque = self._opaque or "too much code to follow"
                    return
                self._call_effects(schema, name, done_calls[key])
            for table in sorted(self._written - done_tables):
                done_tables.add(table)
                progressed = True
                steps += 1
                if steps > _MAX_EFFECTS:
                    self._opaque = self._opaque or "too much code to follow"
                    return
                self._write_effects(table)
            if not progressed:
                return

    def _call_effects(self, schema: str | None, name: str, args: Lin) -> None:
        if schema in _BUILTIN_SCHEMAS:
            return
        found = self._functions(name)
        self._consulted_fn.add(name)  # checked with the rest (an operator's, a trigger's)
        if found is None:
            self._missing_fn.add(name)
            return
        if schema is not None:
            found = [f for f in found if f.schema == schema]
        for fn in found:
            if fn.schema not in _BUILTIN_SCHEMAS:
                self._run_code(fn, args, ())

    def _write_effects(self, table: str) -> None:
        """A write into ``table`` (by name: any schema's) also runs its triggers and rules,
        and a view passes it on to its base tables."""
        found = self._relations(table)
        self._consulted_rel.add(table)
        if found is None:
            self._missing_rel.add(table)
            return
        into = [(t, lin) for t, lin in self._writes if t.table == table]
        new = frozenset().union(*(lin for _, lin in into))
        if table in self._inserts and all(r.schema in _BUILTIN_SCHEMAS for r in found):
            # A table the catalog does not show (a temporary one): a serial column of its
            # may move a sequence (``_sequence_moves``).
            self._sequenced = True
        for rel in found:
            if rel.schema in _BUILTIN_SCHEMAS:
                continue
            columns = self._columns_of(rel)
            row = tuple((c, lin | new) for c, lin in columns)
            bound = (_Range("new", row), _Range("old", row))
            for trigger in rel.triggers:
                fn_schema, _, fn_name = trigger.rpartition(".")
                fns = self._functions(fn_name)
                self._consulted_fn.add(fn_name)
                if fns is None:
                    self._missing_fn.add(fn_name)
                    continue
                for fn in fns:
                    if fn.schema == fn_schema or not fn_schema:
                        self._run_code(fn, new, bound)
            self._checks(rel.checks, row, table)
            for type_schema, type_name in rel.types:
                # An assignment cast into a column's type runs with the value written (a
                # user's cast function may write it into any table): followed as a cast is.
                self._calls.append((type_schema, f"type:{type_name}", new))
            sequenced = self._sequenced
            for default in rel.defaults:  # an INSERT evaluates them (a function may write)
                trees = parse("SELECT " + default)
                if trees is None:
                    self._opaque = self._opaque or f"a default of {table!r} cannot be read"
                    continue
                self._expr(trees[0], ())
            if table not in self._inserts:
                # (an UPDATE or DELETE fills no default: its nextval does not run)
                self._sequenced = sequenced
            for rule in rel.rules:
                trees = parse(rule)
                node = _only(trees[0])[1] if trees else {}
                actions = node.get("actions") if trees and "RuleStmt" in trees[0] else None
                if actions is None:
                    self._opaque = self._opaque or f"a rule of {table!r} the gateway cannot read"
                    continue
                self._body([a for a in actions if isinstance(a, dict)], new, bound)
            if rel.kind == "v" and rel.definition and into:
                self._through_view(rel, into)
            for other in rel.family:  # a partition's rows are its parent's, and back
                if other != table:
                    self._writes += [(t._replace(schema=None, table=other), lin)
                                     for t, lin in into]
                    self._written.add(other)
                    if table in self._inserts:
                        self._inserts.add(other)

    def _checks(self, checks: Iterable[str], row: tuple[tuple[str, Lin], ...],
                what: str) -> None:
        """CHECK expressions run on a row (a domain's on VALUE, which then is the whole row):
        the functions they call get the values, and are followed."""
        whole: Lin = frozenset().union(*(lin for _, lin in row))
        scope: Scope = ((_Range("", (*row, ("value", whole))),),)
        for check in checks:
            trees = parse("SELECT " + check)
            if not trees:
                self._opaque = self._opaque or f"a CHECK of {what!r} cannot be read"
                continue
            self._expr(trees[0], scope)

    def _through_view(self, view: Relation, into: list[tuple[Source, Lin]]) -> None:
        """Values written into a view's columns land in the columns its query reads them from
        (an updatable view); what was already derived is left out, so as not to taint the
        sources themselves."""
        stmts = parse(view.definition or "")
        if not stmts:
            self._opaque = self._opaque or f"the view {view.name!r} cannot be read"
            return
        saved = self._reads, self._writes, self._no_derived, self._ctes
        self._reads, self._writes, self._no_derived, self._ctes = set(), [], True, {}
        try:
            out = self._select_any(stmts[0])
        finally:
            self._reads, self._writes, self._no_derived, self._ctes = saved
        by_name = {c: (out[i][1] if i < len(out) else _UNKNOWN)
                   for i, c in enumerate(view.columns)}
        for target, lin in into:
            bases = (frozenset().union(*by_name.values()) if target.column == _ANY
                     else by_name.get(target.column, _UNKNOWN))
            for base in bases:
                if base is UNKNOWN or base.column in ("", "*"):
                    continue
                self._writes.append((base, lin))
                self._written.add(base.table)
                if view.name in self._inserts:  # its base table's defaults fill the rows
                    self._inserts.add(base.table)

    def _run_code(self, fn: Function, args: Lin, bound: tuple[_Range, ...]) -> None:
        """A function's (or DO block's, or trigger's) body: its statements are followed as
        the statement's own; what they write carries what the body reads (``_body``). A body
        the gateway cannot read makes the statement opaque."""
        if fn.language in _RUNS_FUNCTIONS:
            # A user aggregate's state and final functions, an operator's function: run on
            # the arguments (``create aggregate leak(text) (sfunc = copies_it, ...)``).
            for support in fn.source.split():
                schema, _, name = support.rpartition(".")
                if schema not in _BUILTIN_SCHEMAS:
                    self._calls.append((schema or None, name, args))
            if fn.language == "type":  # a cast into a domain runs its CHECKs on the value
                self._checks(_json_list(fn.definition), (("value", args),), fn.name)
            return
        if fn.language in _INSTALLED_CODE:
            # Compiled code a superuser installed (an extension's functions): taken not to
            # copy data between tables; the ones known to run SQL given as text are opaque by
            # name (``_OPAQUE_FUNCTIONS``).
            return
        if fn.language not in _TRUSTED_BODIES:
            self._opaque = self._opaque or f"code in language {fn.language!r}"
            return
        if fn.language == "plpgsql" and _SUBTRANSACTIONS.search(_RAISE.sub("", fn.source)):
            self._side.add("subtransactions (a PL/pgSQL EXCEPTION block, COMMIT or ROLLBACK: "
                           "each takes a transaction id)")
        if self._depth >= _MAX_DEPTH:
            self._opaque = self._opaque or "code nested too deeply to follow"
            return
        code = bodies.statements(fn.language, fn.source, fn.definition)
        if isinstance(code, str):
            self._opaque = self._opaque or code
            return
        self._depth += 1
        try:
            self._body(list(code), args, bound)
        finally:
            self._depth -= 1

    def _body(self, statements: list[dict[str, Any]], args: Lin,
              bound: tuple[_Range, ...]) -> None:
        """Statements of one body. A value moves through a body's variables in ways a walk
        of each statement cannot see (``SELECT x INTO v``, then ``INSERT ... VALUES (v)``):
        every value the body writes carries everything the body reads, and its arguments."""
        saved = self._reads, self._writes, self._in_body, self._bound, self._ctes
        calls_from = len(self._calls)
        self._reads, self._writes, self._in_body, self._bound = set(), [], True, bound
        self._ctes = {}
        try:
            for stmt in statements:
                self._stmt(stmt)
            reads, writes = self._reads, self._writes
        finally:
            self._reads, self._writes, self._in_body, self._bound, self._ctes = saved
        union = frozenset(reads) | args
        self._reads |= reads
        self._writes += [(target, lin | union) for target, lin in writes]
        if union:
            # How many rows a body writes (a loop's bound, an IF) is what it reads too, and
            # the rows fill the columns it does not name (a serial id counts them).
            for schema, table in sorted({(t.schema or "", t.table) for t, _ in writes
                                         if t.table and t.schema not in _BUILTIN_SCHEMAS}):
                self._writes.append((Source(schema or None, table, _ANY), union))
        # What the body calls gets what the body holds.
        self._calls[calls_from:] = [(s, n, a | union) for s, n, a in self._calls[calls_from:]]

    def _relations(self, name: str) -> list[Relation] | None:
        if self.distrust is not None and name in self.distrust.relations:
            return None
        return self.catalog.relations(name)

    def _functions(self, name: str) -> list[Function] | None:
        if self.distrust is not None and name in self.distrust.functions:
            return None
        return self.catalog.functions(name)

    def learn(self, lineage: Lineage, kind: str) -> None:
        """Remember what a statement declared (a cursor, a prepared statement), in the
        analyzer's own maps (an analyzer without a statement flow)."""
        self.learned += 1
        if lineage.declares is not None:
            name, cols = lineage.declares
            if kind == "DeclareCursorStmt" and isinstance(self.cursors, dict):
                self.cursors[name] = cols
            elif (kind == "PrepareStmt" and lineage.prepared_query is not None
                  and isinstance(self.prepared_queries, dict)):
                self.prepared_queries[name] = lineage.prepared_query

    # --- statements -----------------------------------------------------------------------

    def _select_any(self, node: dict[str, Any]) -> list[tuple[str, Lin]]:
        kind, inner = _only(node)
        if kind == "SelectStmt":
            return self._select(inner, (), self._ctes)
        if kind in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
            cols = self._modify(kind, inner)
            return [("?column?", lin) for lin in (cols or ())]
        return []

    def _modify(self, kind: str, node: dict[str, Any]) -> tuple[Lin, ...] | None:
        """The RETURNING columns of an INSERT, UPDATE, DELETE or MERGE (None: none); what it
        writes goes to ``_writes`` (also from inside a WITH)."""
        saved = self._ctes
        try:
            return self._modify_in(kind, node)
        finally:
            self._ctes = saved

    def _modify_in(self, kind: str, node: dict[str, Any]) -> tuple[Lin, ...] | None:
        ctes = self._with(node.get("withClause"), (), self._ctes)
        self._ctes = ctes
        rel = node.get("relation", {})
        target = self._range_var(rel, {})  # a write's target is a table, never a CTE
        assigned: dict[str, Lin] = {}
        writes = self._writes
        levels: list[_Range] = [target]
        # What picks the rows it writes (its FROM's or USING's JOIN conditions and functions,
        # its WHERE, a MERGE's join and WHEN conditions): an UPDATE that sets a clean value on
        # the rows a masked column picks writes what that column says (``_SHAPING``).
        shaped, self._shapes = self._shapes, _NONE
        try:
            if kind == "UpdateStmt":
                levels += self._from(node.get("fromClause", []), (), ctes)
            elif kind == "DeleteStmt":
                levels += self._from(node.get("usingClause", []), (), ctes)
            elif kind == "MergeStmt":
                levels += self._from([node.get("sourceRelation", {})], (), ctes)
            picks = self._shapes
        finally:
            self._shapes = shaped
        scope: Scope = (tuple(levels),)
        # (a view written through: its query's WHERE picks the rows too)
        picks = picks | self._expr(node.get("whereClause"), scope) | self._view_shapes.get(
            rel.get("relname", ""), _NONE)
        conflict: dict[str, Any] = {}
        if kind == "MergeStmt":
            picks = picks | self._expr(node.get("joinCondition"), scope)
            for clause in node.get("mergeWhenClauses", []):
                picks = picks | self._expr(_only(clause)[1].get("condition"), scope)
        if kind == "InsertStmt":
            cols = [_only(c)[1].get("name", "") for c in node.get("cols", [])]
            if not cols:
                cols = [n for n, _ in target.columns]
            sel = node.get("selectStmt")
            self._last_shape = _NONE
            out = self._select_any(sel) if sel else []
            # What decides how many rows it inserts (``select 1 from generate_series(1,
            # ascii(…))``): each row fills its defaults too (a serial id counts them).
            picks = picks | self._last_shape
            if cols == [_ANY]:  # a table the catalog does not show: any column, any value
                out = [(_ANY, frozenset().union(*(lin for _, lin in out)))]
            for name, (_, lin) in zip(cols, out, strict=False):
                assigned[name] = assigned.get(name, _NONE) | lin
            conflict = _only(node.get("onConflictClause", {}))[1] if node.get(
                "onConflictClause") else {}
            if conflict:
                # Whether a row is inserted (or updated) depends on the values already in the
                # arbiter's columns (``on conflict (national_id) do nothing returning id``
                # confirms a guess): the columns it names, or any (a constraint's name).
                infer = conflict.get("infer") or {}
                elems = [_only(e)[1] for e in infer.get("indexElems") or []]
                if elems and not infer.get("conname"):
                    by = dict(target.columns)
                    for elem in elems:
                        picks = picks | (by.get(elem["name"], _UNKNOWN) if elem.get("name")
                                         else self._expr(elem.get("expr"), ((target,),)))
                else:
                    picks = picks | target.whole()
            if conflict.get("targetList"):
                # ON CONFLICT DO UPDATE: EXCLUDED is the row being inserted.
                excluded = _Range("excluded", tuple(
                    (n, lin | assigned.get(n, _NONE) | assigned.get(_ANY, _NONE))
                    for n, lin in target.columns))
                on: Scope = ((target, excluded),)
                # Its WHERE picks the rows it updates.
                when = self._expr(conflict.get("whereClause"), on)
                picks = picks | when
                for t in conflict.get("targetList", []):
                    res = _only(t)[1]
                    assigned[res.get("name", "")] = (assigned.get(res.get("name", ""), _NONE)
                                                     | self._expr(res.get("val"), on) | when)
        elif kind == "UpdateStmt":
            for t in node.get("targetList", []):
                res = _only(t)[1]
                assigned[res.get("name", "")] = (assigned.get(res.get("name", ""), _NONE)
                                                 | self._expr(res.get("val"), scope))
        elif kind == "MergeStmt":
            for clause in node.get("mergeWhenClauses", []):
                c = _only(clause)[1]
                names = [_only(t)[1].get("name", "") for t in c.get("targetList", [])]
                vals = c.get("values") or [(_only(t)[1].get("val")) for t in
                                            c.get("targetList", [])]
                if not names:
                    names = [n for n, _ in target.columns]
                for name, val in zip(names, vals, strict=False):
                    assigned[name] = assigned.get(name, _NONE) | self._expr(val, scope)
        if picks:
            # The rows a DELETE or MERGE removes, or an UPDATE (an ON CONFLICT DO UPDATE)
            # rewrites: every column of the table tells which rows were picked — those left,
            # and the order a plain read gives (an updated row is written anew, at the end of
            # the table: ``update t set x = x where g = ascii(…)``, then ``select g from t``
            # ends with the value). The rows an INSERT adds fill every column, those it does
            # not name with their defaults (``max(id)`` of a serial counts them): every
            # column, and any the catalog does not list yet.
            self._shaped(picks)
            for name in [n for n, _ in target.columns] + [_ANY]:
                assigned[name] = assigned.get(name, _NONE) | picks
        if kind in ("InsertStmt", "MergeStmt") or '"SetToDefault"' in orjson.dumps(
                node.get("targetList") or []).decode():
            # (``UPDATE … SET id = DEFAULT`` fills a default in each row it picks too)
            self._inserts.add(rel.get("relname", ""))
        self._written.add(rel.get("relname", ""))
        kept = self._derived(_SEQUENCE.table, _SEQUENCE.column)
        if kept:
            # A sequence setval() set from a masked column: a serial or identity default
            # (nextval() in no text of the statement) writes that value into the row.
            for name in [n for n, _ in target.columns] or [_ANY]:
                assigned[name] = assigned.get(name, _NONE) | kept
        if assigned:
            src_table = rel.get("relname", "")
            src_schema = rel.get("schemaname")
            for name, lin in assigned.items():
                writes.append((Source(src_schema, src_table, name), lin))
            cols_with = tuple((n, lin | assigned.get(n, _NONE)) for n, lin in target.columns)
            target = _Range(target.name, cols_with)
            scope = ((target, *levels[1:]),)
        returning = node.get("returningList")  # PostgreSQL 18: returningClause.exprs
        if returning is None and node.get("returningClause"):
            returning = _only(node["returningClause"])[1].get("exprs") if (
                "ReturningClause" in node["returningClause"]) else node["returningClause"].get(
                "exprs")
        if not returning:
            return None
        return tuple(lin | picks for _, lin in self._targets(returning, scope))

    def _copy(self, node: dict[str, Any]) -> tuple[Lin, ...] | None:
        query = node.get("query")
        if query:
            return tuple(lin for _, lin in self._select_any(query))
        rel = node.get("relation")
        if not rel:
            return None
        rng = self._range_var(rel, {})
        wanted = [_only(a)[1].get("sval", "") for a in node.get("attlist", [])]
        if wanted:
            by = dict(rng.columns)
            for w in wanted:
                self._reads |= by.get(w, _UNKNOWN)
            return tuple(by.get(w, _UNKNOWN) for w in wanted)
        for _, lin in rng.columns:
            self._reads |= lin
        return tuple(lin for _, lin in rng.columns) or None

    def _assign(self, rel: dict[str, Any], names: list[str], out: list[tuple[str, Lin]],
                col_names: list[Any] | None) -> list[tuple[Source, Lin]]:
        if col_names:
            names = [_only(c)[1].get("sval", "") for c in col_names]
        self._written.add(rel.get("relname", ""))
        return [(Source(rel.get("schemaname"), rel.get("relname", ""), n), lin)
                for n, (_, lin) in zip(names, out, strict=False)]

    # --- SELECT ----------------------------------------------------------------------------

    def _with(self, clause: dict[str, Any] | None, outer: Scope,
              ctes: dict[str, list[tuple[str, Lin]]]) -> dict[str, list[tuple[str, Lin]]]:
        if not clause:
            return ctes
        ctes = dict(ctes)
        w = _only(clause)[1] if "WithClause" in clause else clause
        recursive = bool(w.get("recursive"))
        for c in w.get("ctes", []):
            cte = _only(c)[1]
            name = cte.get("ctename", "")
            query = cte.get("ctequery", {})
            aliases = [_only(a)[1].get("sval", "") for a in cte.get("aliascolnames", [])]
            self._last_shape = _NONE
            if recursive:
                ctes[name] = self._fixed_point(name, query, aliases, outer, ctes)
                self._cte_shapes[name] = self._cte_shapes.get(name, _NONE) | self._last_shape
            else:
                out = self._cte_query(query, outer, ctes)
                self._cte_shapes[name] = self._cte_shapes.get(name, _NONE) | self._last_shape
                if aliases:
                    out = [(a, lin) for a, (_, lin) in
                           zip(aliases + [n for n, _ in out[len(aliases):]], out, strict=False)]
                ctes[name] = out
        return ctes

    def _fixed_point(self, name: str, query: dict[str, Any], aliases: list[str],
                     outer: Scope, ctes: dict[str, list[tuple[str, Lin]]],
                     ) -> list[tuple[str, Lin]]:
        """A recursive CTE's columns: its term sees the CTE itself, so a value may reach a
        column only after any number of steps (``select b, c, d, nid``: at the fourth). Each
        pass unions into the last (a column's sources only grow, and they are finitely
        many), so the walk reaches a fixed point; past the bound every column is unknown."""
        ctes[name] = []
        kind, inner = _only(query)
        if kind == "SelectStmt" and inner.get("op", "SETOP_NONE") != "SETOP_NONE":
            # Start from the non-recursive term: the first rows are its own.
            seed = self._select(_only(inner["larg"])[1], outer, ctes)
            ctes[name] = ([(a, lin) for a, (_, lin) in zip(aliases, seed, strict=False)]
                          if aliases else seed)
        for _ in range(_MAX_FIXED_POINT):
            out = self._cte_query(query, outer, ctes)
            if aliases:
                out = [(a, lin) for a, (_, lin) in zip(aliases, out, strict=False)]
            before = ctes[name]
            out = [(n, lin | (before[i][1] if i < len(before) else _NONE))
                   for i, (n, lin) in enumerate(out)]
            if out == ctes[name]:
                return out
            ctes[name] = out
        return [(n, lin | _UNKNOWN) for n, lin in ctes[name]] or [(_ANY, _UNKNOWN)]

    def _cte_query(self, query: dict[str, Any], outer: Scope,
                   ctes: dict[str, list[tuple[str, Lin]]]) -> list[tuple[str, Lin]]:
        kind, inner = _only(query)
        if kind == "SelectStmt":
            return self._select(inner, outer, ctes)
        if kind in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
            saved, self._ctes = self._ctes, ctes  # the WITH's earlier names
            try:
                cols = self._modify(kind, inner)
            finally:
                self._ctes = saved
            return [("?column?", lin) for lin in (cols or ())]
        return []

    def _select(self, node: dict[str, Any], outer: Scope,
                ctes: dict[str, list[tuple[str, Lin]]]) -> list[tuple[str, Lin]]:
        saved = self._ctes
        try:
            return self._select_in(node, outer, ctes)
        finally:
            self._ctes = saved

    def _select_in(self, node: dict[str, Any], outer: Scope,
                   ctes: dict[str, list[tuple[str, Lin]]]) -> list[tuple[str, Lin]]:
        ctes = self._with(node.get("withClause"), outer, ctes)
        self._ctes = ctes
        if node.get("lockingClause"):
            # Rows locked FOR UPDATE/SHARE: another session's SKIP LOCKED or NOWAIT finds
            # which (the rows a masked value picks, while the transaction lasts). In a body
            # what picks them may come through variables: the body's reads decide.
            if self._in_body:
                self._side.add("row locks (FOR UPDATE/SHARE)")
            else:
                self._locked = True
        op = node.get("op", "SETOP_NONE")
        if op != "SETOP_NONE":
            left = self._select(_only(node["larg"])[1], outer, ctes)
            shape = self._last_shape
            right = self._select(_only(node["rarg"])[1], outer, ctes)
            shape = shape | self._last_shape
            out = [(name, lin | (right[i][1] if i < len(right) else _UNKNOWN))
                   for i, (name, lin) in enumerate(left)]
            if not (op == "SETOP_UNION" and node.get("all")):
                # UNION, INTERSECT and EXCEPT compare whole rows: how many of each row
                # remain depends on every column (as a plain DISTINCT's do).
                shape = shape | frozenset().union(*(lin for _, lin in out))
            return self._own_order(node, outer, out, shape)
        self._last_shape = _NONE
        values = node.get("valuesLists")
        if values:
            width = max(len(_only(v)[1].get("items", [])) for v in values)
            cols: list[Lin] = [_NONE] * width
            for v in values:
                for i, item in enumerate(_only(v)[1].get("items", [])):
                    cols[i] = cols[i] | self._expr(item, outer)
            return self._own_order(node, outer,
                                   [(f"column{i + 1}", lin) for i, lin in enumerate(cols)], _NONE)
        shaped = self._shapes
        self._shapes = _NONE
        try:
            level = tuple(self._from(node.get("fromClause", []), outer, ctes))
            shape = self._shapes  # the arguments of functions in FROM: how many rows
        finally:
            self._shapes = shaped
        scope: Scope = (level, *outer)
        targets = self._targets(node.get("targetList", []), scope)
        # Every clause is read (its columns are what the statement reads); the target list
        # carries values to the client — and so does what decides how many rows there are,
        # which, and in what order (``_SHAPING``): a WHERE, an ORDER BY, a LIMIT or OFFSET,
        # the arguments of a set-returning function in FROM (``count(*) FROM
        # generate_series(1, ascii(substr(name, 1, 1)))`` or ``OFFSET ascii(…) LIMIT 1``
        # give a value in one query), a JOIN's condition; carried into every column.
        for key in ("whereClause", "havingClause", "groupClause", "sortClause",
                    "distinctClause", "windowClause", "limitCount", "limitOffset"):
            part = node.get(key)
            if part:
                lin = (self._by_output(part, scope, targets) if key in _BY_OUTPUT
                       else self._expr(part, scope))
                if key in _SHAPING:
                    shape = shape | lin
        if node.get("distinctClause") == [{}]:
            # A plain DISTINCT compares whole rows: how many rows of each value of a column
            # remain depends on every other column.
            shape = shape | frozenset().union(*(lin for _, lin in targets))
        # A set-returning function in the target list makes as many rows as its arguments
        # say (``generate_series(1, ascii(name))``, ``unnest``, ``regexp_split_to_table``):
        # its arguments decide how many rows there are.
        for t in node.get("targetList", []):
            for call in _set_returning(_only(t)[1].get("val", {})):
                shape = shape | self._expr(call.get("args"), scope)
        self._last_shape = self._shaped(shape)
        if not shape:
            return targets
        return [(name, lin | shape) for name, lin in targets]

    def _own_order(self, node: dict[str, Any], outer: Scope, out: list[tuple[str, Lin]],
                   shape: Lin) -> list[tuple[str, Lin]]:
        """A set operation's or VALUES list's own ORDER BY, LIMIT and OFFSET (over its output
        columns) order and pick its rows: carried into every column, with ``shape``."""
        own: Scope = ((_Range("", tuple(out)),), *outer)
        for key in ("sortClause", "limitCount", "limitOffset"):
            part = node.get(key)
            if part:
                shape = shape | (self._by_output(part, own, out) if key in _BY_OUTPUT
                                 else self._expr(part, own))
        self._last_shape = self._shaped(shape)
        return [(name, lin | shape) for name, lin in out] if shape else out

    def _by_output(self, part: Any, scope: Scope, targets: list[tuple[str, Lin]]) -> Lin:
        """An ORDER BY, GROUP BY or DISTINCT ON: a bare name may be an output column's
        (``select national_id n … order by n``) and a number is one (``order by 2``). A name
        that is both an output and an input column is taken as both (either way, fail
        closed)."""
        outputs = _Range("", tuple(targets))
        by: Scope = ((*scope[0], outputs), *scope[1:]) if scope else ((outputs,),)
        out = _NONE
        for item in part if isinstance(part, list) else [part]:
            kind, inner = _only(item)
            if kind == "GroupingSet":  # ROLLUP, CUBE, GROUPING SETS: numbers inside too
                out |= self._by_output(inner.get("content") or [], scope, targets)
                continue
            expr = inner.get("node") if kind == "SortBy" else item
            ekind, value = _only(expr)
            if ekind == "A_Const" and "ival" in value:
                number = (value.get("ival") or {}).get("ival", 0)
                if isinstance(number, int) and 0 < number <= len(targets):
                    out |= targets[number - 1][1]
                else:
                    out |= _UNKNOWN
                continue
            out |= self._expr(item, by)
        return out

    def _targets(self, targets: list[dict[str, Any]], scope: Scope) -> list[tuple[str, Lin]]:
        out: list[tuple[str, Lin]] = []
        for t in targets:
            res = _only(t)[1]
            val = res.get("val", {})
            if "ColumnRef" in val:
                fields = val["ColumnRef"].get("fields", [])
                if fields and "A_Star" in fields[-1]:
                    out += self._star([_only(f)[1].get("sval", "") for f in fields[:-1]],
                                      scope)
                    continue
            lin = self._expr(val, scope)
            out.append((res.get("name") or _figure_name(val), lin))
        return out

    def _star(self, qualifier: list[str], scope: Scope) -> list[tuple[str, Lin]]:
        level = scope[0] if scope else ()
        if not qualifier:
            cols = [c for rng in level if not rng.name.startswith("\0") for c in rng.columns]
        else:
            rng = _find_range(scope, qualifier[-1]) or _find_range((self._bound,),
                                                                   qualifier[-1])
            if rng is not None:
                cols = list(rng.columns)
            elif self._in_body:  # a record variable: what it holds the body read
                cols = [("?column?", _NONE)]
            else:
                cols = [("?column?", _UNKNOWN)]
        for _, lin in cols:
            self._reads |= lin
        return cols

    def _from(self, items: list[dict[str, Any]], outer: Scope,
              ctes: dict[str, list[tuple[str, Lin]]]) -> list[_Range]:
        level: list[_Range] = []
        for item in items:
            level += self._from_item(item, outer, tuple(level), ctes)
        return level

    def _from_item(self, item: dict[str, Any], outer: Scope, before: tuple[_Range, ...],
                   ctes: dict[str, list[tuple[str, Lin]]]) -> list[_Range]:
        kind, node = _only(item)
        alias = node.get("alias")
        alias_name = _only(alias)[1].get("aliasname") if alias and "Alias" in alias else (
            alias.get("aliasname") if alias else None)
        alias_cols = ([_only(c)[1].get("sval", "") for c in
                       (_only(alias)[1] if "Alias" in alias else alias).get("colnames", [])]
                      if alias else [])
        if kind == "RangeVar":
            name = node.get("relname", "")
            if not node.get("schemaname") and name in ctes:
                rng = _Range(name, tuple(ctes[name]))
                self._shapes = self._shapes | self._cte_shapes.get(name, _NONE)
            else:
                rng = self._range_var(node, ctes)
                # A view's rows are those its query picks (``count(*)`` of it too).
                self._shapes = self._shapes | self._view_shapes.get(name, _NONE)
        elif kind == "RangeSubselect":
            scope = ((before, *outer) if node.get("lateral") else outer)
            self._last_shape = _NONE
            sub = self._select_any_scoped(node.get("subquery", {}), scope, ctes)
            self._shapes = self._shapes | self._last_shape  # its rows are this level's
            rng = _Range("", tuple(sub))
        elif kind == "JoinExpr":
            left = self._from_item(node["larg"], outer, before, ctes)
            right = self._from_item(node["rarg"], outer, (*before, *left), ctes)
            ranges = left + right
            using = [_only(u)[1].get("sval", "") for u in node.get("usingClause", [])]
            if node.get("isNatural"):
                lnames = {n for r in left for n, _ in r.columns}
                using = [n for r in right for n, _ in r.columns if n in lnames]
            on: Scope = (tuple((*before, *ranges)), *outer)
            if node.get("quals"):
                # Its condition picks which rows of each side meet: carried into every column
                # of the level, as a WHERE's is (``_SHAPING``).
                self._shapes = self._shapes | self._expr(node["quals"], on)
            if using:
                merged = []
                for name in using:
                    lin = _NONE
                    for r in ranges:
                        for n, ln in r.columns:
                            if n == name:
                                lin |= ln
                    merged.append((name, lin))
                    self._shapes = self._shapes | lin  # compared: picks rows, as ON does
                # ``*`` shows the merged columns first, then each side's others; a qualified
                # reference (``a.id``, ``a.*``) still sees its side whole (the hidden copy).
                stripped = [_Range(r.name, tuple(c for c in r.columns if c[0] not in using),
                                   r.table) for r in ranges]
                hidden = [_Range("\0" + r.name, r.columns, r.table) for r in ranges if r.name]
                ranges = [_Range("", tuple(merged)), *stripped, *hidden]
            if node.get("alias"):
                joined = tuple(c for r in ranges if not r.name.startswith("\0")
                               for c in r.columns)
                return [_Range(alias_name or "", joined)]
            return ranges
        elif kind == "RangeFunction":
            # A function in FROM sees the items before it, LATERAL or not (PostgreSQL's rule).
            scope = (before, *outer)
            lin = _NONE
            for f in node.get("functions", []):
                for part in _only(f)[1].get("items", []) if "List" in f else [f]:
                    if isinstance(part, dict) and part:
                        lin |= self._expr(part, scope)
            self._shapes = self._shapes | lin  # its arguments decide how many rows
            # The columns a function returns are its own: any name resolves to its lineage.
            names = alias_cols or [_ANY]
            rng = _Range(alias_name or _figure_name(
                _only(node.get("functions", [{}])[0])[1].get("items", [{}])[0]
                if node.get("functions") else {}), tuple((n, lin) for n in names))
            return [rng]
        elif kind == "RangeTableFunc" or kind == "RangeTableFuncCol":
            lin = self._expr(node, (before, *outer))
            names = [_only(c)[1].get("colname", "") for c in node.get("columns", [])]
            return [_Range(alias_name or "", tuple((n, lin) for n in names or ["?"]))]
        elif kind == "RangeTableSample":
            # Its percentage and seed decide which rows, and how many.
            self._shapes = self._shapes | self._expr(node.get("args"), outer) | self._expr(
                node.get("repeatable"), outer)
            return self._from_item(node.get("relation", {}), outer, before, ctes)
        else:
            rng = _Range("", (("?column?", _UNKNOWN),))
        if alias_name is not None:
            cols = rng.columns
            if alias_cols:
                cols = tuple((alias_cols[i] if i < len(alias_cols) else n, lin)
                             for i, (n, lin) in enumerate(cols))
            rng = _Range(alias_name, cols, rng.table)
        return [rng]

    def _select_any_scoped(self, node: dict[str, Any], scope: Scope,
                           ctes: dict[str, list[tuple[str, Lin]]]) -> list[tuple[str, Lin]]:
        kind, inner = _only(node)
        if kind == "SelectStmt":
            return self._select(inner, scope, ctes)
        return self._select_any(node)

    def _range_var(self, node: dict[str, Any], ctes: dict[str, list[tuple[str, Lin]]],
                   ) -> _Range:
        name = node.get("relname", "")
        schema = node.get("schemaname")
        if not schema and name in ctes:
            return _Range(name, tuple(ctes[name]))
        cols = self.relation_columns(schema, name)
        return _Range(name, cols, name)

    def relation_columns(self, schema: str | None, name: str) -> tuple[tuple[str, Lin], ...]:
        """The columns of a relation with their lineage (a view's are its query's)."""
        if name in _STATISTICS and schema in (None, "pg_catalog"):
            found = self._relations(name)
            self._consulted_rel.add(name)
            if found is None:
                self._missing_rel.add(name)
            cols = found[0].columns if found else ()
            return tuple((c, _UNKNOWN if _STATISTIC_VALUE.search(c) else _NONE) for c in cols) \
                or (("?column?", _UNKNOWN),)
        runtime = _RUNTIME_NAMES.get(name)
        if runtime is not None and schema in (None, "pg_catalog"):
            found = self._relations(name)
            self._consulted_rel.add(name)
            if found is None:
                self._missing_rel.add(name)
            cols = found[0].columns if found else ()
            return tuple((c, _UNKNOWN if c in runtime else _NONE) for c in cols) \
                or (("?column?", _UNKNOWN),)
        found = self._relations(name)
        self._consulted_rel.add(name)
        if found is None:
            self._missing_rel.add(name)
            return ()
        if schema is not None:
            found = [r for r in found if r.schema == schema]
        elif any(r.schema == "pg_catalog" for r in found):
            found = [r for r in found if r.schema == "pg_catalog"]
        if not found:
            # Not in the catalog the gateway reads: a temporary table, or one created in a
            # transaction not committed yet, or since the lookup. Unknown, never empty.
            return ((_ANY, _UNKNOWN),)
        per: list[tuple[tuple[str, Lin], ...]] = [self._columns_of(r) for r in found]
        for rel, row in zip(found, per, strict=True):
            if rel.types:
                # Values of a user's type read from it may go through a user's cast out of
                # the type (an assignment cast into another column): its functions get them.
                whole: Lin = frozenset().union(*(lin for _, lin in row))
                for type_schema, type_name in rel.types:
                    self._calls.append((type_schema, f"type:{type_name}", whole))
        if len(per) == 1:
            return per[0]
        width = max(len(p) for p in per)
        merged: list[tuple[str, Lin]] = []
        for i in range(width):
            lin = _NONE
            name_i = "?column?"
            for p in per:
                if i < len(p):
                    name_i = p[i][0]
                    lin |= p[i][1]
                    # the same name elsewhere in another schema's relation
                    lin |= frozenset().union(*(ln for n, ln in p if n == name_i))
            if any(len(p) != width for p in per):
                lin |= _UNKNOWN
            merged.append((name_i, lin))
        return tuple(merged)

    def _columns_of(self, rel: Relation) -> tuple[tuple[str, Lin], ...]:
        if rel.kind in ("v", "m") and rel.definition:
            if self._depth >= _MAX_DEPTH:
                return tuple((c, _UNKNOWN) for c in rel.columns)
            stmts = parse(rel.definition)
            if not stmts:
                return tuple((c, _UNKNOWN) for c in rel.columns)
            self._depth += 1
            saved, self._ctes = self._ctes, {}  # a view's query sees no CTE of the statement
            last, self._last_shape = self._last_shape, _NONE
            try:
                out = self._select_any(stmts[0])
                self._view_shapes[rel.name] = (self._view_shapes.get(rel.name, _NONE)
                                               | self._last_shape)
            finally:
                self._depth -= 1
                self._ctes, self._last_shape = saved, last
            own = tuple((Source(rel.schema, rel.name, c),) for c in rel.columns)
            return tuple((c, (out[i][1] if i < len(out) else _UNKNOWN) | frozenset(own[i])
                          | self._derived(rel.name, c))
                         for i, c in enumerate(rel.columns))
        cols: tuple[tuple[str, Lin], ...] = tuple(
            (c, frozenset({Source(rel.schema, rel.name, c)}) | self._derived(rel.name, c))
            for c in rel.columns)
        if rel.generated:
            # A generated column is computed from the row's other columns: it carries them
            # all (``GENERATED ALWAYS AS (national_id) STORED`` under another name).
            row: Lin = frozenset().union(*(lin for _, lin in cols))
            cols = tuple((c, lin | row if c in rel.generated else lin) for c, lin in cols)
        return cols

    def _derived(self, table: str, column: str) -> Lin:
        """What earlier statements wrote into this table column (``Catalog.derived``)."""
        derived = getattr(self.catalog, "derived", None)
        if derived is None or self._no_derived:
            return _NONE
        found: Lin = derived(table, column)
        return found

    # --- expressions ----------------------------------------------------------------------

    def _expr(self, node: Any, scope: Scope) -> Lin:
        """Every source an expression's value depends on (also recorded in ``reads``)."""
        if isinstance(node, list):
            out = _NONE
            for item in node:
                out |= self._expr(item, scope)
            return out
        if not isinstance(node, dict) or not node:
            return _NONE
        if len(node) != 1:
            out = _NONE
            for key, value in node.items():
                if key != "location" and isinstance(value, dict | list):
                    out |= self._expr(value, scope)
            return out
        kind, inner = next(iter(node.items()))
        if not isinstance(inner, dict):
            return self._expr(inner, scope) if isinstance(inner, list) else _NONE
        if kind == "ColumnRef":
            lin = self._column_ref(inner, scope)
            self._reads |= lin
            return lin
        if kind == "A_Const" or kind == "ParamRef" or kind == "SQLValueFunction":
            return _NONE
        if kind == "SubLink":
            sub = self._select_any_scoped(inner.get("subselect", {}), scope, self._ctes)
            # What picks the subquery's rows decides its result even with no column
            # (``exists (select from customers where … national_id …)``).
            lin = self._last_shape | self._expr(inner.get("testexpr"), scope)
            if inner.get("subLinkType") in ("EXPR_SUBLINK", "ARRAY_SUBLINK"):
                return lin | (sub[0][1] if sub else _NONE)
            for _, s in sub:
                lin |= s
            if inner.get("testexpr") and _may_move_sequence(inner.get("subselect")):
                # ``x = ANY (select nextval(…) …)`` stops at the first row that matches x.
                self._shaped(lin)
            return lin
        if kind == "SelectStmt":
            out = _NONE
            for _, s in self._select(inner, scope, self._ctes):
                out |= s
            return out | self._last_shape  # (a query with no column still picks rows)
        if kind == "FuncCall":
            return self._func(inner, scope)
        if kind == "A_Indirection":
            return self._indirection(inner, scope)
        if kind == "A_Expr":
            return self._operator(inner, scope)
        if kind == "TypeCast":
            return self._cast(inner, scope)
        out = _NONE
        for key, value in inner.items():
            if key != "location" and isinstance(value, dict | list):
                out |= self._expr(value, scope)
        if kind in _CONDITIONAL and out and _may_move_sequence(inner):
            # Whether a CASE, COALESCE, AND or OR reaches its nextval is decided by the rest:
            # how many times the sequence moves (``_sequence_moves``).
            self._shaped(out)
        return out

    def _cast(self, node: dict[str, Any], scope: Scope) -> Lin:
        """A cast into a user's type runs its cast function, and a domain's CHECKs on the
        value (``national_id::leakdom``, whose CHECK copies VALUE): followed as a call."""
        out = self._expr(node.get("arg"), scope)
        names = [_only(n)[1].get("sval", "") for n in
                 (node.get("typeName") or {}).get("names", [])]
        if not names or (len(names) > 1 and names[-2] in _BUILTIN_SCHEMAS):
            return out
        schema = names[-2] if len(names) > 1 else None
        key = f"type:{names[-1]}"
        self._calls.append((schema, key, out))
        if not self.function_safe(schema, key):
            self._reads.add(UNKNOWN)
            return out | _UNKNOWN
        return out

    def _parameter_type(self, oid: int) -> None:
        """A parameter the Parse typed by OID with a user's type: its input at the Bind runs
        the type's code (a domain's CHECKs), as a cast into it does (``_cast``)."""
        key = f"type:#{oid}"
        self._calls.append((None, key, _NONE))
        if not self.function_safe(None, key):
            self._reads.add(UNKNOWN)

    def _operator(self, node: dict[str, Any], scope: Scope) -> Lin:
        """An operator runs a function: a user's (``create operator ### (function = f)``)
        is followed as a call of it, and one whose code reads a masked column is unknown."""
        out = _NONE
        for key in ("lexpr", "rexpr"):
            out |= self._expr(node.get(key), scope)
        if node.get("kind", "AEXPR_OP") != "AEXPR_OP" and out and _may_move_sequence(node):
            # IN and BETWEEN are ORs and ANDs of comparisons: whether a nextval in them runs
            # (and how often) is decided by the rest (``_sequence_moves``).
            self._shaped(out)
        names = [_only(n)[1].get("sval", "") for n in node.get("name", [])]
        op = names[-1] if names else ""
        if not _OPERATOR.fullmatch(op):
            return out  # BETWEEN, IN and the like: their operators are the built-in ones
        schema = names[-2] if len(names) > 1 else None
        key = f"operator:{op}"
        if schema not in _BUILTIN_SCHEMAS:
            self._calls.append((schema, key, out))
        if not self.function_safe(schema, key):
            self._reads.add(UNKNOWN)
            return out | _UNKNOWN
        return out

    def _func(self, node: dict[str, Any], scope: Scope) -> Lin:
        args = self._expr(node.get("args"), scope)
        # An aggregate's FILTER and ORDER BY and a window's PARTITION BY and ORDER BY decide
        # its result too (``mode() WITHIN GROUP (ORDER BY x)`` is x itself, ``row_number()
        # OVER (ORDER BY x)`` ranks by it, ``count(*) FILTER (WHERE x …)`` counts by it).
        around = self._expr(node.get("agg_filter"), scope) | self._expr(
            node.get("agg_order"), scope)
        over = node.get("over")
        if over:
            around = around | self._expr(over, scope)
        if node.get("agg_filter") and around and _may_move_sequence(node.get("args")):
            # An aggregate's arguments are computed only for the rows its FILTER keeps.
            self._shaped(around)
        result = self._func_result(node, args, self._counts_rows(node, scope))
        return result | around if around else result

    def _indirection(self, node: dict[str, Any], scope: Scope) -> Lin:
        """``(x).f``, ``(x)[1]``: what ``x`` carries (a field of it, an element). A name that
        may be a function's is the call ``f(x)`` (``attribute``), followed as calls are: its
        effects, and a user's function's body."""
        out = self._expr(node.get("arg"), scope) | self._expr(node.get("indirection"), scope)
        for function, _ in attribute.selections("A_Indirection", node):
            if self._may_call(function):
                out = self._func_result(attribute.call(function, None), out)
        return out

    def _may_call(self, name: str) -> bool:
        """Whether a name selected in attribute notation may be a function's: PostgreSQL's
        own, or one the catalog has (not looked up yet: asked for, and judged as one
        meanwhile)."""
        if attribute.may_be_builtin(name):
            return True
        found = self._functions(name)
        self._consulted_fn.add(name)
        if found is None:
            self._missing_fn.add(name)
            return True
        return bool(found)

    def _counts_rows(self, node: dict[str, Any], scope: Scope) -> bool:
        """Whether a call's arguments are ``*`` or one column read straight from a table
        (nothing written into it from elsewhere): what ``count`` of it gives is a number of
        rows, none of the values. Anything else, a column of a subquery or CTE included, may
        be null exactly when a masked value says so."""
        if node.get("agg_star"):
            return True
        args = node.get("args") or []
        kind, ref = _only(args[0]) if len(args) == 1 else ("", {})
        if kind != "ColumnRef":
            return False
        fields = ref.get("fields", [])
        parts = [_only(f)[1].get("sval") if "String" in f else None for f in fields]
        if not parts or None in parts or len(parts) > 2:
            return False
        column = str(parts[-1])
        rng: _Range | None = None
        if len(parts) == 2:
            rng = _find_range(scope, str(parts[0]))
        else:
            for level in scope:
                having = [r for r in level
                          if any(n in (column, _ANY) for n, _ in r.columns)]
                if having:
                    rng = having[0] if len(having) == 1 else None
                    break
        if rng is None or not rng.table:
            return False
        found = [lin for n, lin in rng.columns if n in (column, _ANY)]
        return len(found) == 1 and len(found[0]) == 1 and all(
            s.table == rng.table and s.column == column for s in found[0])

    def _func_result(self, node: dict[str, Any], args: Lin, counts_rows: bool = False) -> Lin:
        names = [_only(n)[1].get("sval", "") for n in node.get("funcname", [])]
        name = names[-1] if names else ""
        schema = names[-2] if len(names) > 1 else None
        runs_text = name in querytext.NAMES and schema in (None, "pg_catalog") and not (
            name == "ts_rewrite" and len(node.get("args") or ()) != 2)  # (tsquery, text): SQL
        if _OPAQUE_FUNCTIONS.fullmatch(name) or runs_text:
            self._reads.add(UNKNOWN)
            if (name.startswith(("dblink", "lo_import")) or name.endswith("_to_xml")
                    or runs_text):
                # SQL given as text (it may write), a file read into a large object
                self._opaque = self._opaque or f"{name}() runs what the gateway cannot read"
            return args | _UNKNOWN
        if schema not in _BUILTIN_SCHEMAS:
            self._calls.append((schema, name, args))
        if (schema in (None, "pg_catalog") and _EFFECT_FUNCTIONS.fullmatch(name)
                and not _followed_setting(node)):
            self._side.add(f"{name}()")
        if not self.function_safe(schema, name):
            self._reads.add(UNKNOWN)
            return args | _UNKNOWN
        if name in _VALUE_FREE and counts_rows and (schema == "pg_catalog" or (
                schema is None and not self._user_named(name))):
            return _NONE
        if name in _SETTINGS_WRITE and schema in (None, "pg_catalog") and args:
            # A value kept in a setting is read back with SHOW, current_setting(),
            # pg_settings, or pg_stat_activity (application_name) by any session.
            for where in _SETTINGS:
                self._writes.append((where, args))
        if name in _SETTINGS_READ and schema in (None, "pg_catalog"):
            # (a read: an error quoting what the setting holds is masked too)
            found = self._derived(_SETTINGS[0].table, _SETTINGS[0].column)
            self._reads |= found
            return args | found
        if schema in (None, "pg_catalog"):
            return self._builtin_state(name, args)
        return args

    def _reads_kept(self, word: str) -> bool:
        """Whether a built-in a body names reads back a value kept from a masked column (or
        one of unknown origin): a setting set_config() set, a sequence setval() set, the seed
        setseed() set. Called from a body, its result is the body's."""
        if word in _SETTINGS_READ or word == "pg_show_all_settings":
            kept: Source | None = _SETTINGS[0]
        else:
            kept = _KEPT_READ.get(word)
        if kept is None:
            return False
        return any(s is UNKNOWN or self.masked(s) for s in self._derived(kept.table, kept.column))

    def _user_named(self, name: str) -> bool:
        """Whether a function of that name is a user's (or may be: not looked up): called
        without its schema, a user's ``public.count(text)`` matches a text argument better
        than PostgreSQL's ``count("any")``, and is the one that runs."""
        found = self._functions(name)
        return found is None or any(f.schema not in _BUILTIN_SCHEMAS for f in found)

    def _builtin_state(self, name: str, args: Lin) -> Lin:
        """A built-in that keeps its argument (a write into where it is read back) or reads
        back what one kept (a read of it: an error quoting it is masked too)."""
        if name in _SEQUENCE_MOVES:
            # Which sequence it moves (a name a masked value spells) is kept there too; in a
            # body, the write carries all the body reads (a loop's bound).
            self._sequenced = True
            if args:
                self._keeps = True
                self._writes.append((_SEQUENCE, args))
        if name in _KEEPS and args:
            self._keeps = True
            for where in _KEEPS[name]:
                self._writes.append((where, args))
        elif _KEEPS_UNFOLLOWED.fullmatch(name) and any(
                s is UNKNOWN or self.masked(s) for s in args):
            self._keeps = True
            self._opaque = self._opaque or f"{name}() keeps a masked value out of sight"
        kept = _KEPT_READ.get(name)
        if kept is None:
            return args
        found = self._derived(kept.table, kept.column)
        self._reads |= found
        return args | found

    def function_safe(self, schema: str | None, name: str) -> bool:
        """Whether a function's result depends on its arguments only, as far as masked
        columns go: PostgreSQL's own, or one whose body reads no masked column."""
        if schema in _BUILTIN_SCHEMAS:
            return True
        if schema is not None and (schema == "pg_temp" or schema.startswith("pg_temp_")):
            # The session's own temporary schema: the catalog lists it under another name
            # (pg_temp_3), and no other connection sees what is in it.
            return False
        key = f"{schema}.{name}"
        known = self._fn_safety.get(key)
        if known is not None:
            return known
        self._fn_safety[key] = True  # a recursive function: its other calls are judged here
        found = self._functions(name)
        self._consulted_fn.add(name)
        if found is None:
            self._missing_fn.add(name)
            return True  # provisional: asked again once looked up
        if schema is not None:
            found = [f for f in found if f.schema == schema]
        safe = all(f.schema in _BUILTIN_SCHEMAS or self._body_safe(f) for f in found)
        self._fn_safety[key] = safe
        return safe

    def _body_safe(self, fn: Function) -> bool:
        if fn.language in _RUNS_FUNCTIONS:
            return all(self.function_safe(*_qualified(support)) for support in fn.source.split())
        if fn.language not in _TRUSTED_BODIES:
            return False
        if not fn.source.strip():
            # A body the catalog did not show (a SQL-standard body lives in prosqlbody, not
            # prosrc): what it reads is unknown (ARCHITECTURE.md invariant 9).
            return False
        if _ESCAPED_NAME.search(fn.source):
            # A name spelled with Unicode escapes (U&"\0063ustomers") is no word a scan
            # finds: what the body reads is unknown.
            return False
        words = {w.lower() for w in _WORD.findall(fn.source)}
        if fn.language == "plpgsql" and "execute" in words:
            return False  # dynamic SQL: what it reads is a string
        for word in words:
            if self.names(word) or _OPAQUE_FUNCTIONS.fullmatch(word) or (
                    word in querytext.NAMES) or self._reads_kept(word):
                return False
        if self._depth >= _MAX_DEPTH:
            return False
        self._depth += 1
        try:
            for word in sorted(words):
                rels = self._relations(word)
                self._consulted_rel.add(word)
                self._consulted_fn.add(word)
                if rels is None:
                    self._missing_rel.add(word)
                    continue
                for rel in rels:
                    for _, lin in self._columns_of(rel):
                        if UNKNOWN in lin or any(self.masked(s) for s in lin):
                            return False
                fns = self._functions(word)
                if fns is None:
                    self._missing_fn.add(word)
                    continue
                if word != fn.name and not self.function_safe(None, word):
                    return False
        finally:
            self._depth -= 1
        return True

    def _column_ref(self, node: dict[str, Any], scope: Scope) -> Lin:
        fields = node.get("fields", [])
        parts = [_only(f)[1].get("sval", "*") if "String" in f else "*" for f in fields]
        if not parts:
            return _NONE
        if parts[-1] == "*":
            rng = _find_range(scope, parts[-2]) if len(parts) > 1 else None
            if rng is not None:
                return rng.whole()
            out = _NONE
            for level in scope[:1]:
                for r in level:
                    out |= r.whole()
            return out
        column = parts[-1]
        if len(parts) == 1:
            # A function's result answers to any name, but may not have it: look further out
            # too (``national_id`` in ``(select ... from generate_series(1, 3) i)``).
            anys = _NONE
            for level in scope:
                found = [lin for r in level for n, lin in r.columns if n == column]
                anys = anys.union(*(lin for r in level for n, lin in r.columns if n == _ANY))
                if found:
                    return anys.union(*found)
                rng = _find_range((level,), column)
                if rng is not None:  # a whole-row reference: ``select c from customers c``
                    return anys | rng.whole()
            bound = _find_range((self._bound,), column)
            if bound is not None:  # NEW or OLD in a trigger
                return anys | bound.whole()
            if self._in_body:
                # A body's variable or parameter: what it holds is what the body reads
                # (``_body``), or an argument.
                return anys
            # A name no range has (a column renamed or added since the catalog was read, a
            # system column): what the server reads there is unknown.
            return anys or _UNKNOWN
        rng = _find_range(scope, parts[-2]) or _find_range((self._bound,), parts[-2])
        if rng is None:
            # ``(c).national_id``-like or a composite column: depend on the whole qualifier
            out = self._column_ref({"fields": [{"String": {"sval": parts[-2]}}]}, scope)
        elif any(n == column for n, _ in rng.columns):
            return frozenset().union(*(lin for n, lin in rng.columns if n in (column, _ANY)))
        else:
            found = [lin for n, lin in rng.columns if n == _ANY]
            out = frozenset().union(*found) if found else rng.whole()
        # No column of that name is known: ``t.f`` is the call ``f(t)`` when a function f
        # exists (``attribute``), with the whole row as its argument.
        if self._may_call(column):
            return self._func_result(attribute.call(column, None), out | (
                rng.whole() if rng is not None else _NONE))
        return out


def _followed_setting(call: dict[str, Any]) -> bool:
    """Whether a call is ``set_config`` of a setting whose value changes nothing but what it
    reads back (a custom ``x.y``), or is shown only where the gateway masks it
    (``application_name``): what it keeps is followed (``_SETTINGS``), it shows nowhere
    else. Any other setting (TimeZone, DateStyle …) changes how later values print."""
    names = [_only(n)[1].get("sval", "") for n in call.get("funcname", [])]
    args = call.get("args") or []
    if not names or names[-1] != "set_config" or not args:
        return False
    kind, const = _only(args[0])
    value = const.get("sval", {}).get("sval") if kind == "A_Const" else None
    return isinstance(value, str) and ("." in value or value.lower() == "application_name")


def _find_range(scope: Scope, name: str) -> _Range | None:
    """The range a qualifier names, innermost level first (a join's whole side first)."""
    for level in scope:
        hidden = next((r for r in level if r.name == "\0" + name), None)
        if hidden is not None:
            return hidden
        found = next((r for r in level if r.name == name), None)
        if found is not None:
            return found
    return None


def _json_list(text: str) -> list[str]:
    try:
        found = orjson.loads(text or "[]")
    except orjson.JSONDecodeError:
        return ["("]  # unreadable: parses as nothing, so the CHECK is unknown (opaque)
    return [str(x) for x in found] if isinstance(found, list) else ["("]


def _qualified(name: str) -> tuple[str | None, str]:
    schema, _, bare = name.rpartition(".")
    return schema or None, bare


def _only(node: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(node, dict) and len(node) == 1:
        key, value = next(iter(node.items()))
        if isinstance(value, dict):
            return key, value
    return "", node if isinstance(node, dict) else {}


def _figure_name(val: dict[str, Any]) -> str:
    kind, node = _only(val)
    if kind == "ColumnRef":
        fields = node.get("fields", [])
        last = _only(fields[-1])[1] if fields else {}
        return str(last.get("sval", "?column?"))
    if kind == "FuncCall":
        names = node.get("funcname", [])
        return str(_only(names[-1])[1].get("sval", "?column?")) if names else "?column?"
    if kind == "TypeCast":
        inner = _figure_name(node.get("arg", {}))
        return inner
    return "?column?"


def sources(lins: Iterable[Lin]) -> Iterator[Source]:
    for lin in lins:
        yield from lin
