"""SQL → facts, through PostgreSQL's parser (pglast's JSON parse tree: ~2 µs to parse here).

The walk is generic: every node of the tree is visited, so a DELETE inside a CTE, a function
called in a subquery of a VALUES list, or a table read in a lateral join is found wherever it
hides. Handlers per node type add what the operator's vocabulary needs.

Code that runs later is judged when it is created, by the same rules: SQL and PL/pgSQL
function bodies (``procedural``), DO blocks, rule actions, the function a trigger binds, and
query strings handed to functions that run them (``querytext``). What runs inside a statement
becomes its ``parts`` (each with its own facts, for ``policy explain`` and for the strictest
verdict), and the statement's own facts carry their kinds, functions, reads and writes, so a
rule on DELETE matches the CREATE FUNCTION whose body deletes. What cannot be read is opaque:
``DYNAMIC SQL`` (SQL text built at run time) or ``OPAQUE BODY`` (code in a language the gateway
does not parse, or that does not parse). Binding a function is calling it: operators, casts,
aggregates, types, triggers and the like put the function they bind in ``functions``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pglast import ast
from pglast.parser import ParseError, parse_sql_json

from engine.guardrail import attribute, builtin_names, procedural, protection, querytext
from engine.guardrail.bounds import (
    Target,
    constants_blind,
    merge_unbounded,
    unbounded,
    upsert_unbounded,
    where_reach,
)
from engine.guardrail.kinds import ALTER_TABLE_WORDS, OBJECT_WORDS, STATEMENT_KINDS, words
from engine.guardrail.literals import (
    constant,
    name,
    option_truth,
    reads_differently_without_scs,
)
from engine.guardrail.memory import EMPTY, Effects, Known

__all__ = ["STATEMENT_KINDS", "TRUSTED_LANGUAGES", "Facts", "ParseFailure", "classify"]

# Procedural languages that can reach the operating system; CREATE FUNCTION in one of them is
# "CREATE FUNCTION UNTRUSTED".
TRUSTED_LANGUAGES = frozenset({"sql", "plpgsql", "plperl", "pltcl", "plv8"})
# Built-in trigger functions whose effect is known: they touch only the row being written.
_KNOWN_TRIGGER_FUNCTIONS = frozenset({"suppress_redundant_updates_trigger",
                                      "tsvector_update_trigger",
                                      "tsvector_update_trigger_column"})
# pg_catalog's trigger functions (PostgreSQL 15: these and the RI_FKey_* of foreign keys): an
# unqualified name among them is pg_catalog's, whatever the session created.
_CATALOG_TRIGGERS = _KNOWN_TRIGGER_FUNCTIONS | {"unique_key_recheck"}
# SQL in SQL in SQL …: past this depth a body is opaque (each level is judged once).
_MAX_DEPTH = 8
# Options that name a function the object will call (CREATE OPERATOR, AGGREGATE — "sfunc1"
# is the old syntax's —, TYPE, RANGE, TEXT SEARCH PARSER/TEMPLATE, FOREIGN DATA WRAPPER, ALTER
# OPERATOR/TYPE … SET, ALTER FUNCTION … SUPPORT), as PostgreSQL 15's DefineAggregate,
# DefineOperator, DefineType, DefineRange, DefineTSParser/Template and the FDW code read them.
_FUNCTION_OPTIONS = frozenset({
    "function", "procedure", "restrict", "join", "sfunc", "sfunc1", "finalfunc",
    "combinefunc", "serialfunc", "deserialfunc", "msfunc", "minvfunc", "mfinalfunc", "input",
    "output", "receive", "send", "typmod_in", "typmod_out", "analyze", "subscript",
    "canonical", "subtype_diff", "start", "gettoken", "end", "lextypes", "headline", "init",
    "lexize", "handler", "validator", "support",
})
# Options of those statements known to name no function (types, operators, constants,
# flags). Matching is case-insensitive; any other option whose value is a name counts as
# binding a function of that name (fail closed: an option this list does not know, or one a
# later PostgreSQL adds, is read as a function).
_OTHER_OPTIONS = frozenset({
    # CREATE AGGREGATE, both syntaxes
    "basetype", "stype", "stype1", "sspace", "initcond", "initcond1", "mstype", "msspace",
    "minitcond", "finalfunc_extra", "finalfunc_modify", "mfinalfunc_extra",
    "mfinalfunc_modify", "sortop", "parallel", "hypothetical",
    # CREATE OPERATOR (COMMUTATOR and NEGATOR name operators, created as shells if new)
    "leftarg", "rightarg", "commutator", "negator", "hashes", "merges",
    # CREATE TYPE, CREATE TYPE … AS RANGE, ALTER TYPE … SET
    "internallength", "passedbyvalue", "alignment", "storage", "like", "category",
    "preferred", "default", "element", "delimiter", "collatable", "subtype",
    "subtype_opclass", "collation", "multirange_type_name",
    # CREATE COLLATION, TEXT SEARCH DICTIONARY / CONFIGURATION
    "locale", "lc_collate", "lc_ctype", "provider", "deterministic", "version", "rules",
    "from", "template", "parser", "copy",
    # ALTER FUNCTION's actions
    "volatility", "strict", "security", "leakproof", "cost", "rows", "set", "window",
    "language", "as", "transform",
})
# A function that runs with its owner's privileges for any caller (``_security_definer``).
SECURITY_DEFINER = "SECURITY DEFINER FUNCTION"
# Statement node → the fields that bind functions (option lists, object names, name lists).
_BINDINGS = {
    "DefineStmt": ("definition",), "AlterOperatorStmt": ("options",),
    "AlterTypeStmt": ("options",), "CreateRangeStmt": ("params",),
    "AlterFunctionStmt": ("actions",), "CreateFdwStmt": ("func_options",),
    "AlterFdwStmt": ("func_options",), "CreateCastStmt": ("func",),
    "CreateTransformStmt": ("fromsql", "tosql"), "CreateOpClassStmt": ("items",),
    "AlterOpFamilyStmt": ("items",), "CreatePLangStmt": ("plhandler", "plinline", "plvalidator"),
    "CreateAmStmt": ("handler_name",), "CreateConversionStmt": ("func_name",),
}


# Types whose input is a catalog object's name: a literal cast to one names a function,
# table, role… (so do the to_reg* functions given a string).
_CATALOG_NAME_TYPES = frozenset({
    "regclass", "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper",
    "regoperator", "regproc", "regprocedure", "regrole", "regtype",
})
_NAMES_FROM_TEXT = frozenset(f"to_{t}" for t in _CATALOG_NAME_TYPES)


def _generic_kinds(node_type: str) -> frozenset[str]:
    """The kinds a statement node type stands for in words (AlterSystemStmt → ALTER SYSTEM,
    with ALTER; role statements also ROLE)."""
    kind = words(node_type)
    kinds = {kind}
    first = kind.split(" ", 1)[0]
    if first in ("CREATE", "ALTER", "DROP"):
        kinds.add(first)
    if "ROLE" in kind.split() or kind in ("CREATE USER", "ALTER USER", "DROP USER"):
        kinds.add("ROLE")
    return frozenset(kinds)


# Built once: every statement node type's kinds (a regular expression per statement cost
# more than the rest of a simple statement's walk).
_GENERIC_KINDS = {n: _generic_kinds(n) for n in dir(ast) if n.endswith("Stmt") and n[:1].isupper()}


class ParseFailure(Exception):
    """PostgreSQL's parser rejects the text (the target would too)."""

    def __init__(self, message: str, cursor: int | None) -> None:
        super().__init__(message)
        self.cursor = cursor


@dataclass
class Facts:
    """What one statement does, including what runs inside it."""

    text: str
    kinds: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    # Settings the statement changes: name → new value (None: reset or not a constant;
    # name "*": set_config with a name that is not a constant).
    settings: dict[str, str | None] = field(default_factory=dict)
    # What runs inside: body statements, rule actions, EXECUTE'd strings, query arguments.
    parts: list[Facts] = field(default_factory=list)
    origin: str = ""  # where this part sits in the statement that holds it
    deferred: bool = False  # runs later (a body, a rule), not when the statement runs
    # Functions this statement creates, by identity (``s.f(int4)``), with what their bodies
    # do: a trigger later in the same text that binds one is judged by it.
    defines: dict[str, Facts] = field(default_factory=dict)
    # These facts hold for every text that differs from this one only in the values of its
    # constants (what ``pglast.parser.normalize`` replaces with $n): nothing here was read
    # from a literal, a setting's value or a body written as a string. False wherever a
    # handler read one (SET, set_config, functions that run SQL text, DO and function
    # bodies, a WHERE whose bounds were decided from constants, casts of a literal to a
    # catalog name). The guard keys verdicts by the normalized text only when this holds.
    by_shape: bool = True
    # Every table it writes later (a body, a foreign key's action) is one the session created
    # (``memory``), under a name that means that table when it runs: no ``rows_over`` rule
    # counts it. A write that runs now is counted whatever its table.
    own: bool = False
    cased: bool = False  # it writes a relation whose quoted name has upper-case letters
    # It runs code of the target's that the gateway has not read, now (not in a body for
    # later): a function or operator that is not PostgreSQL's own, a procedure, SQL text
    # built at run time. What that code writes shows only in the target's counts: a
    # ``rows_over`` rule counts the statement (``engine.pg.rowcount``).
    reaches: bool = False
    # The relations it writes and reads by their names as PostgreSQL stores them (pg_class's
    # relname: case kept, quotes undone, no schema), for the catalog (``engine.pg.storedcode``).
    written_names: set[str] = field(default_factory=set)
    read_names: set[str] = field(default_factory=set)
    # Relations whose stored expressions (CHECKs, index expressions and predicates, generated
    # columns, extended statistics, a partition key) it evaluates over the rows they hold,
    # by the same names: ANALYZE, VALIDATE CONSTRAINT, a table rewrite, CLUSTER, REINDEX.
    # Where it cannot name them (ANALYZE of the whole database, REINDEX INDEX), it reaches.
    evaluated_names: set[str] = field(default_factory=set)
    # PostgreSQL's own names it calls, as the catalog is asked for them (``lower``,
    # ``operator:=``, ``type:int4`` for a cast's functions): a user's function or operator
    # of the same name in another schema (``public.lower(int)``, an ``=`` for a user's
    # type) or a user's cast into the type may be what runs. The target's catalog says
    # (``SessionGuard.overloads``).
    builtins: set[str] = field(default_factory=set)
    # Those names it gives a user's function, aggregate, operator or cast (``*``: an
    # extension's, any of them): the session's later statements using one count it
    # (``SessionGuard.started``), whatever the catalog last read.
    overloads: set[str] = field(default_factory=set)
    # Names selected in attribute notation (``t.f``, ``(x).f``) that no function of
    # PostgreSQL's has: a column, or a call of a user's function of that name with the
    # selected value (``engine.guardrail.attribute``). They are in ``builtins`` too (the
    # catalog says whether the target has such a function), and a rule's ``functions``
    # pattern matches them (fail closed: the gateway cannot tell a column from a call).
    attributes: set[str] = field(default_factory=set)
    # It stores code for later (a view, a default, a function's body …: ``_STORES_CODE``):
    # a user's function its ``attributes`` call makes it opaque (``SessionGuard``).
    stores: bool = False
    # Functions a CREATE OR REPLACE FUNCTION may replace, by name as stored (proname): one that
    # exists on the target may be what a policy, CHECK or default calls (``SessionGuard``).
    replaced: set[str] = field(default_factory=set)
    # Of that code, some the gateway never read (not a function it remembers the session
    # created, whose body was judged then): stored for later, it is opaque (``_STORES_CODE``).
    unread: bool = False
    # Where ``text`` sits in the query string (characters), for a statement of one.
    span: tuple[int, int] = (0, 0)

    def describe(self) -> str:
        parts = [", ".join(sorted(self.kinds)) or "unknown statement"]
        if self.functions:
            parts.append("calls " + ", ".join(sorted(self.functions)))
        if self.writes:
            parts.append("writes " + ", ".join(sorted(self.writes)))
        if self.reads:
            parts.append("reads " + ", ".join(sorted(self.reads)))
        return "; ".join(parts)


# A user's type known to run no code of a user's when a value is cast into it (an enum no
# user's cast leads into), by schema and name.
PlainTypes = frozenset[tuple[str, str]]


def classify(sql: str, depth: int = 0, *, plain_types: PlainTypes = frozenset()
             ) -> list[Facts]:
    """Facts for each statement of ``sql`` (a multi-statement string gives several), judged
    with no memory of the session (``classify_text``). ``plain_types``: types the caller
    knows from the target's catalog to run no user's code (``_Walker._user_type``)."""
    return classify_text(sql, depth, plain_types=plain_types)[0]


def classify_text(sql: str, depth: int = 0, known: Known = EMPTY, *,
                  qualified_only: bool = False, shadowed: bool = False,
                  plain_types: PlainTypes = frozenset(),
                  ) -> tuple[list[Facts], Effects]:
    """Facts for each statement of ``sql``, against what the session is known to have
    created (``memory``), and what running the text does to that memory. ``qualified_only``:
    the session chose its own search_path at login, so a function named without its schema
    is never taken for one created earlier (see ``_Walker._bind_body``). ``shadowed``: the
    session may have put a schema ahead of pg_catalog in its search_path (``shadows``), so a
    function or operator named without its schema may be a user's, not PostgreSQL's own.

    A trigger is judged by the body of the function it binds only when that function is
    created earlier in the same text, under the same schema-qualified name, with no statement
    between that could run code or change what the name means (see ``_KEEPS_FUNCTIONS``): the
    server stops a query string at its first error, so if the CREATE FUNCTION fails ("already
    exists"), the trigger is never created. Anything else binds a body the gateway has not
    seen, which is opaque. Across texts, ``known`` plays the same part: functions and tables
    the session created in earlier texts with nothing since that keeps nothing (``_keeps``).
    A write whose tables are all the session's own (``Facts.own``) meets no ``rows_over``
    rule."""
    try:
        raw = sql.encode()
        tree = orjson.loads(parse_sql_json(sql))
    except ParseError as exc:
        cursor = exc.args[1] if len(exc.args) > 1 else None
        raise ParseFailure(str(exc.args[0]) if exc.args else str(exc), cursor) from exc
    except UnicodeEncodeError as exc:
        raise ParseFailure("the statement is not valid UTF-8 text", None) from exc
    except (ValueError, RecursionError) as exc:  # orjson's depth limit, and the like
        raise ParseFailure("the statement is too deeply nested for the gateway to classify",
                           None) from exc
    out: list[Facts] = []
    functions: dict[str, Facts] = dict(known.functions)
    own: set[str] = set(known.tables)
    added_functions: dict[str, Facts] = {}
    added_tables: set[str] = set()
    forgets = False
    for entry in tree.get("stmts", []):
        start = entry.get("stmt_location", 0)
        length = entry.get("stmt_len", 0) or len(raw) - start
        piece = raw[start : start + length].decode(errors="replace")
        text = piece.strip()
        facts = Facts(text)
        if depth == 0:
            head = len(raw[:start].decode(errors="replace")) + len(piece) - len(piece.lstrip())
            facts.span = (head, head + len(text))
        try:
            _Walker(facts, functions, depth, qualified_only, shadowed, plain_types).visit(
                entry.get("stmt", {}))
        except RecursionError as exc:
            raise ParseFailure("the statement is too deeply nested to classify", None) from exc
        if facts.settings and protection.settings_off(facts.settings):
            facts.kinds.add(protection.OFF)  # session_replication_role: triggers stop firing
        stmt = entry.get("stmt", {})
        if facts.unread and "CreateFunctionStmt" in stmt:
            # A parameter's DEFAULT calls unread code: every call that leaves it out runs it.
            for body in facts.defines.values():
                body.reaches = body.unread = True
        facts.stores = _stores(stmt)
        if _stores_user_code(stmt, facts):
            _opaque(facts, text, "an expression it stores", "calls code the gateway has not "
                    "read, which will run later in statements that are not counted (a view, "
                    "a default, a check, an index, a rule, a cast, an operator …)", True)
        defers = _DEFERS_WRITES.get(next(iter(stmt), ""), False)
        paths = _sets_search_path(facts)
        if paths:
            qualified_only = True
        if shadows(facts.settings):
            shadowed = True
        table = _new_table(stmt)
        if _keeps(stmt, facts, own):
            functions.update(facts.defines)
            added_functions.update(facts.defines)
            if table is not None:
                own.add(table)  # its own foreign keys' actions write it: before the marks
                added_tables.add(table)
        else:
            functions.clear()
            own.clear()
            added_functions.clear()
            added_tables.clear()
            forgets = True
        if _overrides(stmt, own):
            facts.kinds.add(protection.OFF)
        if shadows(facts.settings):
            # Every name PostgreSQL's own code and the DBA's is written with (an operator, a
            # function, a text search configuration) may then be a user's object.
            facts.kinds.add(protection.OFF)
        if _builtin_type_named(stmt):
            facts.kinds.add(protection.OFF)
        made = _temporaries(stmt)
        if depth > 0 and made:
            # Code that makes a temporary object when it runs: which names exist then is not
            # the catalog's to say now (fail closed).
            facts.kinds.add(protection.OFF)
        elif any(what != "relation" or n.startswith("pg_") for n, what in made):
            # A sequence (the catalog's relations list has none), a type or domain, or a
            # name like the system views' (pg_temp is searched before pg_catalog).
            facts.kinds.add(protection.OFF)
        elif depth == 0:
            # Asked of the target's catalog (``SessionGuard.judge``): a name it has. A
            # temporary table or view is a type too (its rows'), found ahead of a domain or
            # type of its name in a declaration or a cast (``v order_amount``).
            facts.replaced |= {f"{k}:{n}" for n, _ in made for k in ("rel", "type")}
        _mark_own(facts, own, defers)
        out.append(facts)
    return out, Effects(forgets, added_functions, frozenset(added_tables), qualified_only,
                        shadowed)


def shadows(settings: dict[str, str | None]) -> bool:
    """Whether settings a statement makes may put a schema ahead of pg_catalog in the
    search_path (PostgreSQL looks in pg_catalog first only when the path does not name it):
    a value the gateway cannot read, or one that names pg_catalog after another schema."""
    if "*" in settings:
        return True
    if "search_path" not in settings:
        return False
    return catalog_later(settings["search_path"])


def catalog_later(value: str | None) -> bool:
    """Whether a search_path value (None: not known) may look in another schema before
    pg_catalog."""
    if value is None:
        return True
    schemas = [part.strip().strip('"').lower() for part in value.split(",")]
    return "pg_catalog" in schemas and schemas.index("pg_catalog") > 0


def _sets_search_path(facts: Facts) -> bool:
    """Whether ``facts`` (or code stored in it) may change the search_path: with pg_temp
    first, an unqualified CREATE FUNCTION goes where no function is ever looked up."""
    settings, kinds = facts.settings, facts.kinds
    return ("search_path" in settings or "*" in settings or "DISCARD" in kinds
            or "SET ROLE" in kinds  # a role's own default search_path
            or "CREATE SCHEMA" in kinds  # "$user", first in the default search_path
            or ("SET" in kinds and not settings))  # RESET ALL


# Statements that store expressions (or bind functions) for statements to come to run: code
# of the target's they call runs there, where nothing counts it (``Facts.reaches``).
_STORES_CODE = frozenset({
    "ViewStmt", "CreateStmt", "AlterTableStmt", "IndexStmt", "CreateDomainStmt",
    "AlterDomainStmt", "RuleStmt", "CreatePolicyStmt", "AlterPolicyStmt", "CreateStatsStmt",
    *_BINDINGS})


def _stores_user_code(stmt: dict[str, Any], facts: Facts) -> bool:
    kind = next(iter(stmt), "")
    node = stmt.get(kind)
    matview = (kind == "CreateTableAsStmt" and isinstance(node, dict)
               and node.get("objtype") == "OBJECT_MATVIEW")
    if kind not in _STORES_CODE and not matview:
        return False
    return facts.unread or any(p.unread for p in facts.parts if p.deferred)


def _stores(stmt: dict[str, Any]) -> bool:
    """Whether a statement stores code that runs later: an expression (``_STORES_CODE``),
    a materialized view's query, a function's body, a trigger's or rule's action."""
    kind = next(iter(stmt), "")
    node = stmt.get(kind)
    return (kind in _STORES_CODE or kind in _DEFERS_WRITES
            or (kind == "CreateTableAsStmt" and isinstance(node, dict)
                and node.get("objtype") == "OBJECT_MATVIEW"))


# Statements whose writes all run later (bodies, rule actions, foreign keys' actions): the
# statement itself may be ``own``; any other statement writes now, and is counted.
_DEFERS_WRITES = {"CreateFunctionStmt": True, "CreateTrigStmt": True, "CreateStmt": True,
                  "RuleStmt": True, "CreateEventTrigStmt": True}


def _mark_own(facts: Facts, own: set[str], top: bool) -> None:
    """``Facts.own`` for the parts of ``facts`` that run later, and for ``facts`` itself when
    all its writes do (``top``). Only names with their schema, created with the same: a name
    without one is resolved when the code runs, with the search_path of whoever runs it then
    (another session's, this one's after a SET, a function's own SET clause), and may mean
    another table."""
    def mark(f: Facts) -> None:
        names = f.writes
        f.own = (bool(names) and names <= own and not f.cased
                 and all("." in n for n in names))
        for part in f.parts:
            mark(part)
    for part in facts.parts:
        if part.deferred:
            mark(part)
    if top:  # its row writes are all its parts' (the table it names is not written to)
        writing = [p for p in facts.parts if p.writes]
        facts.own = bool(writing) and all(p.own for p in writing)


def _relation(node: dict[str, Any] | None) -> str | None:
    if not isinstance(node, dict):
        return None
    rel = node.get("RangeVar", node)
    relname = rel.get("relname")
    if not relname:
        return None
    schema = rel.get("schemaname")
    return f"{schema}.{relname}".lower() if schema else str(relname).lower()


def _stored_name(node: dict[str, Any]) -> str:
    """A relation's name as pg_class stores it (the parser has folded it or kept its case)."""
    return str(node.get("RangeVar", node).get("relname") or "")


def _cased(node: Any) -> bool:
    """Whether a relation's name, as the parser left it, has an upper-case letter or a dot
    (it was quoted): ``writes`` holds it lower-cased and joined by dots, the same as another
    table's (``"Orders"``, ``"public.orders"``)."""
    if not isinstance(node, dict):
        return False
    rel = node.get("RangeVar", node)
    words = [str(rel.get(k) or "") for k in ("relname", "schemaname")]
    return any(w != w.lower() or "." in w for w in words)


def _trivial(facts: Facts) -> bool:
    """An expression that only computes (SELECT n > 1): not worth listing as a part."""
    return (facts.kinds <= {"SELECT"} and not (facts.functions or facts.reads or facts.writes
                                               or facts.settings or facts.parts
                                               or facts.attributes))


class _Walker:
    def __init__(self, facts: Facts, bodies: dict[str, Facts], depth: int,
                 qualified_only: bool = False, shadowed: bool = False,
                 plain_types: PlainTypes = frozenset()) -> None:
        self.facts = facts
        self.bodies = bodies
        self.qualified_only = qualified_only
        self.shadowed = shadowed
        self.plain_types = plain_types
        self.depth = depth
        self.table: str | None = None  # the table a CREATE or ALTER TABLE defines

    def visit(self, node: Any) -> None:
        """Visit every dict and list below ``node``; scalars (most values) cost no call."""
        handlers = _HANDLERS
        if isinstance(node, list):
            for item in node:
                if isinstance(item, dict | list):
                    self.visit(item)
            return
        for key, value in node.items():
            if isinstance(value, dict):
                if key[:1].isupper():
                    handler = handlers.get(key)
                    if handler is None:
                        if key.endswith("Stmt"):
                            self._generic(key)
                    elif not handler(self, value):
                        continue  # the handler decided not to look inside
                self.visit(value)
            elif isinstance(value, list):
                self.visit(value)

    # --- what runs inside a statement ---------------------------------------------------
    def _inner(self, sql: str, origin: str, deferred: bool, sink: Facts,
               reread: bool = True) -> None:
        """Classify SQL that runs inside this statement; its facts go into ``sink``.
        ``reread``: the server parses this text again when it runs (a body, a query string),
        not a tree it stored (rule actions, BEGIN ATOMIC)."""
        if reread:
            self._scs_check(sql, origin, deferred, sink)
        if self.depth >= _MAX_DEPTH:
            _opaque(sink, sql, origin, "nested too deeply for the gateway to read", deferred)
            return
        try:
            statements = classify(sql, self.depth + 1)
        except ParseFailure as exc:
            _opaque(sink, sql, origin, f"does not parse ({exc})", deferred)
            return
        for inner in statements:
            if _trivial(inner):
                continue  # RETURN 1, IF n > 0: computes, runs nothing
            inner.origin, inner.deferred = origin, deferred
            _combine(sink, inner, deferred)
            sink.parts.append(inner)

    def _dynamic(self, shown: str, origin: str, deferred: bool, sink: Facts,
                 builder: str | None = None) -> None:
        """SQL text only known at run time: opaque; what builds it is judged for its calls."""
        part = Facts(shown, {"DYNAMIC SQL"}, origin=origin, deferred=deferred)
        sink.kinds.add("DYNAMIC SQL")
        sink.reaches |= not deferred
        sink.unread |= not deferred
        if builder is not None:
            holder = Facts(shown)
            self._inner(builder, origin, deferred, holder, reread=False)  # the body's text
            part.functions |= holder.functions
            part.reads |= holder.reads
            part.writes |= holder.writes
            part.kinds |= holder.kinds - {"SELECT"}
            part.settings.update(holder.settings)
            _combine(sink, part, deferred)
        sink.parts.append(part)

    def _scs_check(self, sql: str, origin: str, deferred: bool, sink: Facts) -> None:
        """Text the server reads when it runs, under the standard_conforming_strings of that
        moment (which code the gateway never saw may have turned off): if it could read
        differently, the gateway's one reading is not enough, and the text is opaque."""
        if reads_differently_without_scs(sql):
            _opaque(sink, sql, origin, "could be read differently with "
                    "standard_conforming_strings off (a '…' string holds a backslash; write "
                    "E'…' or $$…$$)", deferred)

    def _plpgsql(self, body: str | None, what: str, deferred: bool, sink: Facts) -> None:
        if body is not None:
            self._scs_check(body, what, deferred, sink)
        try:
            pieces = procedural.read(self.facts.text, body)
        except procedural.Unreadable as exc:
            _opaque(sink, body or self.facts.text, what, f"cannot be read ({exc})", deferred)
            return
        for piece in pieces:
            origin = f"{what}, {piece.origin}"
            if piece.dynamic:
                self._dynamic(piece.shown, origin, deferred, sink, piece.sql)
            else:
                self._inner(piece.sql, origin, deferred, sink)

    def _deparsed(self, field_name: str) -> list[str] | None:
        """The statements of an inline body (rule actions, BEGIN ATOMIC) as SQL text, through
        pglast's deparser; None if it cannot (the inline walk has judged them anyway)."""
        try:
            from pglast import parse_sql
            from pglast.stream import RawStream

            statement = parse_sql(self.facts.text)[0].stmt
            body = getattr(statement, field_name, None) or ()
            if field_name == "sql_body" and body and isinstance(body[0], tuple):
                body = body[0]  # BEGIN ATOMIC … END: a list of statements in a list
            elif not isinstance(body, tuple):
                body = (body,)
            return [str(RawStream()(node)) for node in body if node is not None]
        except Exception:  # display only: whatever fails, the text is just not shown
            return None

    def _inline_parts(self, field_name: str, what: str, sink: Facts) -> None:
        """``what`` is a format with ``{n}``, the statement's number in the body."""
        for n, text in enumerate(self._deparsed(field_name) or [], 1):
            self._inner(text, what.format(n=n), True, sink, reread=False)

    # --- statements ---------------------------------------------------------------------
    def _generic(self, node_type: str) -> None:
        kinds = _GENERIC_KINDS.get(node_type)
        self.facts.kinds.update(kinds if kinds is not None else _generic_kinds(node_type))

    def _execute(self, node: dict[str, Any]) -> bool:
        """``EXECUTE name``: at the top level the relay judges it as what the name holds in
        the session, every time. Inside stored code (a function or procedure body, DO, a
        rule) the name means whatever was prepared when the code runs: opaque."""
        self.facts.kinds.add("EXECUTE")
        if self.depth > 0:
            self.facts.kinds.add("OPAQUE BODY")
        return True

    def _created(self, node: dict[str, Any], what: str, target: str | None) -> bool:
        self.facts.kinds.update({"CREATE", f"CREATE {what}"})
        if target is not None:
            self._write(node.get(target))
        return True

    def _binding(self, node: dict[str, Any], node_type: str) -> bool:
        """Statements that bind functions: the object will call them, so they count as
        called (a rule on pg_terminate_backend stops CREATE OPERATOR … FUNCTION = it)."""
        self._generic(node_type)
        self.facts.by_shape = False  # option values may be string constants (SFUNC = 'f')
        if node_type == "DefineStmt":
            what = OBJECT_WORDS.get(str(node.get("kind")))
            if what:
                self.facts.kinds.update({"CREATE", f"CREATE {what}"})
            defined = name(node.get("defnames", []))[-1:]
            if _shadows_catalog(str(node.get("kind")), defined):
                self.facts.kinds.add(protection.OFF)
            if node.get("kind") == "OBJECT_OPERATOR" and defined and (
                    defined[0] in builtin_names.OPERATORS):
                self.facts.overloads.add(f"operator:{defined[0]}")
            elif node.get("kind") == "OBJECT_AGGREGATE" and defined and (
                    defined[0] in builtin_names.FUNCTIONS):
                self.facts.overloads.add(defined[0])
                # A schema ahead of pg_catalog: a DBA's sum(x) is the user's (a new function
                # of a name the target has is asked of the catalog: ``replaced``).
                self.facts.kinds.add(protection.OFF)
        if node_type == "AlterFunctionStmt" and _security_definer(node.get("actions")):
            self.facts.kinds.add(SECURITY_DEFINER)
        if node_type == "CreateCastStmt":
            target = name((node.get("targettype") or {}).get("names", []))
            if target and not self._user_type(target):
                self.facts.overloads.add(f"type:{target[-1]}")
        if protection.statement_off(node_type, node) or node_type == "CreateConversionStmt":
            # A conversion's name (and DEFAULT for an encoding pair) is found along the
            # search_path like PostgreSQL's own: the gateway has no list of theirs, so any.
            self.facts.kinds.add(protection.OFF)
        for field_name in _BINDINGS[node_type]:
            bound = _bound(node.get(field_name))
            self.facts.functions.update(bound)
            if bound & querytext.NAMES:
                # Bound, a function that runs SQL given as text gets that text when the
                # operator, aggregate or cast is used, as an argument the gateway never sees
                # as a call's: it runs SQL built at run time.
                self.facts.kinds.add("DYNAMIC SQL")
            if "set_config" in bound:  # changes settings through an operator or aggregate
                self.facts.settings["*"] = None
            if any(f not in builtin_names.FUNCTIONS for f in bound):
                self.facts.reaches = True  # (stored: ``_STORES_CODE``)
                self.facts.unread |= any(not self._remembered(f) for f in bound
                                         if f not in builtin_names.FUNCTIONS)
        return True

    def _refresh(self, node: dict[str, Any]) -> bool:
        """REFRESH MATERIALIZED VIEW runs the view's query: the code a DBA stored in it runs
        (``engine.pg.storedcode``), so the view is a relation it reads."""
        self._generic("RefreshMatViewStmt")
        if node.get("skipData"):  # WITH NO DATA: empties it; its readers get an error
            self.facts.kinds.add(protection.OFF)
        self._range_var(node.get("relation") or {})
        self._evaluates([node.get("relation")])  # and rebuilds its indexes
        return True

    def _create_view(self, node: dict[str, Any]) -> bool:
        if protection.statement_off("ViewStmt", node):
            self.facts.kinds.add(protection.OFF)
        return self._created(node, "VIEW", "view")

    def _create_table_as(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.update({"CREATE", "CREATE TABLE AS"})
        into = node.get("into", {})
        into = into.get("IntoClause", into) if isinstance(into, dict) else {}
        self._write(into.get("rel"))
        return True

    def _rename(self, node: dict[str, Any]) -> bool:
        kinds = self.facts.kinds
        kinds.update({"ALTER", "RENAME"})
        what = str(node.get("renameType", ""))
        if what in OBJECT_WORDS:
            kinds.add(f"RENAME {OBJECT_WORDS[what]}")
        if what in _ROUTINES and str(node.get("newname")) in builtin_names.FUNCTIONS:
            self.facts.overloads.add(str(node.get("newname")))
        if what == "OBJECT_ROLE":
            kinds.update({"ALTER ROLE", "ROLE"})
        elif what == "OBJECT_DATABASE":
            kinds.add("ALTER DATABASE")
        elif what in _RELATIONS:  # ALTER INDEX v3 RENAME renames v3, a table or not
            kinds.update({"ALTER TABLE", "ALTER TABLE RENAME", "RENAME TABLE"})
        elif what == "OBJECT_COLUMN" and node.get("relationType") in _RELATIONS:
            kinds.update({"ALTER TABLE", "ALTER TABLE RENAME COLUMN"})
        elif what == "OBJECT_ATTRIBUTE":  # a composite type's: CASCADE renames typed tables'
            kinds.update({"ALTER TABLE RENAME COLUMN", "RENAME COLUMN"})
        elif what == "OBJECT_TABCONSTRAINT":  # only tables have these (domains: DOMCONSTRAINT)
            kinds.update({"ALTER TABLE", "ALTER TABLE RENAME CONSTRAINT"})
        if protection.rename_off(node):
            kinds.add(protection.OFF)
        if node.get("relation"):
            self._write(node.get("relation"))
        return True

    def _set_schema(self, node: dict[str, Any]) -> bool:
        """ALTER TABLE t SET SCHEMA s: the table leaves the name applications use (spelled
        with any relation's keyword: the gateway cannot see what t is). Any other object
        moved to another schema leaves the name code calls it by, as a rename does."""
        self._generic("AlterObjectSchemaStmt")
        self.facts.kinds.add(protection.OFF)
        if node.get("objectType") in _RELATIONS:
            self.facts.kinds.update({"ALTER", "ALTER TABLE", "ALTER TABLE SET SCHEMA"})
            self._write(node.get("relation"))
        return True

    def _alter_enum(self, node: dict[str, Any]) -> bool:
        """ALTER TYPE … RENAME VALUE changes what every row holding the value reads, with no
        row written (nothing counts it)."""
        self._generic("AlterEnumStmt")
        if node.get("oldVal"):
            self.facts.kinds.add("ALTER TYPE RENAME VALUE")
        return True

    def _call(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("CALL")
        call = node.get("funccall")
        if isinstance(call, dict):
            self._func_call(call.get("FuncCall", call))
        return True

    def _grant_role(self, node: dict[str, Any]) -> bool:
        granted = node.get("is_grant", False)
        self.facts.kinds.update({"GRANT" if granted else "REVOKE",
                                 "GRANT ROLE" if granted else "REVOKE ROLE", "ROLE"})
        return True

    def _create_table(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.update({"CREATE", "CREATE TABLE"})
        self._write(node.get("relation"))
        self.table = _relation(node.get("relation"))
        return True

    def _constraint(self, node: dict[str, Any]) -> bool:
        """A foreign key whose actions write (ON DELETE CASCADE, SET NULL, SET DEFAULT) is a
        built-in trigger on the referenced table that deletes or updates this one's rows,
        uncounted, whenever the referenced rows go or change: code that writes later, judged
        as its write (a part, like a function body's)."""
        writes = protection.fk_writes(node)
        if not writes:
            return True
        referenced = _relation(node.get("pktable"))
        self.facts.kinds.add(protection.CASCADING_FK)
        for kind, action in writes:
            verb = "deletes from" if kind == "DELETE" else "updates in"
            event = "deleted" if action.startswith("ON DELETE") else "whose key changes"
            part = Facts(f"{action}: {verb} {self.table or 'the table'} the rows that "
                         f"reference a {referenced or 'referenced'} row {event}",
                         {kind}, origin=f"foreign key {action}", deferred=True)
            if referenced:
                part.reads.add(referenced)
            if self.table:
                part.writes.add(self.table)
            _combine(self.facts, part, deferred=True)
            self.facts.parts.append(part)
        return True

    def _alter_table(self, node: dict[str, Any]) -> bool:
        """ALTER TABLE and its subcommands in their own words (ALTER TABLE DROP COLUMN, …)."""
        kinds = self.facts.kinds
        kinds.update({"ALTER", "ALTER TABLE"})
        self._write(node.get("relation"))
        self.table = _relation(node.get("relation"))
        for item in node.get("cmds", []):
            cmd = item.get("AlterTableCmd", {}) if isinstance(item, dict) else {}
            subtype = str(cmd.get("subtype", ""))
            sub = ALTER_TABLE_WORDS.get(subtype)
            if subtype == "AT_ColumnDefault" and cmd.get("def") is None:
                sub = "DROP DEFAULT"
            if sub:
                kinds.add(f"ALTER TABLE {sub}")
            off = protection.alter_table_off(cmd)
            if off is not None:
                kinds.update(off)
            if subtype in protection.ENABLES_CODE:
                what = f"{(sub or subtype).lower()} {cmd.get('name') or 'all'}"
                _opaque(self.facts, what, what, "runs stored code whose creation the gateway "
                        "may not have judged", True)
            if subtype in protection.REWRITES_ROWS:
                kinds.add("UPDATE")  # every row's value of the column is rewritten
            if subtype in _EVALUATES_ROWS:
                self._evaluates([node.get("relation")])
            if subtype == "AT_AttachPartition":  # the partition's rows meet its new bounds
                partition = cmd.get("def", {}).get("PartitionCmd", {})
                self._evaluates([partition.get("name")])
            if subtype == "AT_AddColumn" and _rewrites(cmd.get("def")):
                kinds.add(REWRITE)
            if subtype in _CONVERTS_ROWS:  # each row's value becomes one of the column's type
                column = cmd.get("def")
                if isinstance(column, dict):
                    self._converts(column.get("ColumnDef", {}).get("typeName"))
        return True

    def _protection(self, node: dict[str, Any], node_type: str) -> bool:
        """Statements besides ALTER TABLE that may turn protection off (``protection``)."""
        if node_type == "DropStmt":
            keep_going = self._drop(node)
        else:
            self._generic(node_type)
            keep_going = True
        if protection.statement_off(node_type, node):
            self.facts.kinds.add(protection.OFF)
        if node_type == "AlterDomainStmt" and node.get("subtype") == "V":
            # VALIDATE CONSTRAINT runs a user's type's CHECK over every value of it stored.
            self.facts.reaches = True
        if node_type == "AlterEventTrigStmt" and node.get("tgenabled") in ("O", "A"):
            what = f"event trigger {node.get('trigname', '')} enabled"
            _opaque(self.facts, what, what, "runs stored code whose creation the gateway may "
                    "not have judged", True)
        return keep_going

    def _dropdb(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.update({"DROP", "DROP DATABASE"})
        return False

    def _select(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("SELECT")
        into = node.get("intoClause")
        if isinstance(into, dict):
            target = _relation(into.get("rel"))
            if target:
                self.facts.writes.add(target)
                self.facts.written_names.add(_stored_name(into.get("rel") or {}))
                self.facts.kinds.add("SELECT INTO")
        return True

    def _insert(self, node: dict[str, Any]) -> bool:
        """INSERT … ON CONFLICT … DO UPDATE rewrites the existing rows its rows collide with:
        an UPDATE too, of every row when fed by a query and unconditioned (``bounds``)."""
        self.facts.kinds.add("INSERT")
        self._write(node.get("relation"))
        clause = node.get("onConflictClause")
        if isinstance(clause, dict) and clause.get("action") == "ONCONFLICT_UPDATE":
            self.facts.kinds.add("UPDATE")
            if upsert_unbounded(node):
                self.facts.kinds.add("UPDATE WITHOUT WHERE")
            self.facts.by_shape &= constants_blind(clause.get("whereClause"))
        return True

    def _update(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("UPDATE")
        self._write(node.get("relation"))
        target = Target.of(node.get("relation"), node.get("fromClause"))
        where = node.get("whereClause")
        if unbounded(where_reach(where, target)):
            self.facts.kinds.add("UPDATE WITHOUT WHERE")
        self.facts.by_shape &= constants_blind(where)
        return True

    def _delete(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("DELETE")
        self._write(node.get("relation"))
        target = Target.of(node.get("relation"), node.get("usingClause"))
        where = node.get("whereClause")
        if unbounded(where_reach(where, target)):
            self.facts.kinds.add("DELETE WITHOUT WHERE")
        self.facts.by_shape &= constants_blind(where)
        return True

    def _merge(self, node: dict[str, Any]) -> bool:
        kinds = self.facts.kinds
        kinds.add("MERGE")
        self.facts.by_shape = False  # merge_unbounded reads constant rows and conditions
        self._write(node.get("relation"))
        for item in node.get("mergeWhenClauses", []):
            clause = item.get("MergeWhenClause", {}) if isinstance(item, dict) else {}
            command = str(clause.get("commandType", ""))
            if command in ("CMD_UPDATE", "CMD_DELETE", "CMD_INSERT"):
                kinds.add(command.removeprefix("CMD_"))
        kinds.update(merge_unbounded(node))
        return True

    def _write(self, relation: Any) -> None:
        relname = _relation(relation)
        if relname:
            self.facts.writes.add(relname)
            self.facts.written_names.add(_stored_name(relation))
            if _cased(relation):
                self.facts.cased = True
            if relname.startswith(("pg_", "pg_catalog.", "information_schema.")):
                self.facts.kinds.add("CATALOG WRITE")  # unqualified: pg_catalog comes first

    def _drop(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("DROP")
        what = OBJECT_WORDS.get(str(node.get("removeType")))
        if what:
            self.facts.kinds.add(f"DROP {what}")
        if node.get("removeType") == "OBJECT_TABLE":
            for obj in node.get("objects", []):
                parts = name(obj.get("List", {}).get("items", [])) if isinstance(obj, dict) else []
                if parts:
                    self.facts.writes.add(".".join(parts).lower())
        return True

    def _truncate(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("TRUNCATE")
        for rel in node.get("relations", []):
            self._write(rel)
        return False

    def _grant(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("GRANT" if node.get("is_grant") else "REVOKE")
        return True

    def _copy(self, node: dict[str, Any]) -> bool:
        kinds = self.facts.kinds
        kinds.add("COPY")
        if node.get("is_program"):
            kinds.add("COPY PROGRAM")
        elif node.get("filename"):
            kinds.add("COPY FILE")
        rel = _relation(node.get("relation"))
        if rel:
            (self.facts.writes if node.get("is_from") else self.facts.reads).add(rel)
            (self.facts.written_names if node.get("is_from") else self.facts.read_names).add(
                _stored_name(node.get("relation") or {}))
        if node.get("is_from"):
            kinds.add("INSERT")  # COPY … FROM adds rows (and fires INSERT triggers)
        return True

    def _do(self, node: dict[str, Any]) -> bool:
        """A DO block runs its body now: PL/pgSQL is read like a function body."""
        self.facts.kinds.add("DO")
        self.facts.by_shape = False  # the body is a string constant
        language, body = "plpgsql", None
        for option in node.get("args", []):
            elem = option.get("DefElem", {}) if isinstance(option, dict) else {}
            arg = elem.get("arg", {})
            value = arg.get("String", {}).get("sval") if isinstance(arg, dict) else None
            if elem.get("defname") == "language" and value:
                language = value.lower()
            elif elem.get("defname") == "as" and value is not None:
                body = value
        sink = Facts(self.facts.text)
        if language == "plpgsql":
            self._plpgsql(body, "DO block", False, sink)
        else:
            _opaque(sink, body or "", "DO block", f"is in language {language}, which the "
                    "gateway cannot read", False)
        self._take(sink, deferred=False)
        return False

    def _create_function(self, node: dict[str, Any]) -> bool:
        kinds = self.facts.kinds
        kinds.update({"CREATE", "CREATE FUNCTION"})
        if protection.statement_off("CreateFunctionStmt", node):
            kinds.add(protection.OFF)
        elif self.depth == 0:
            # OR REPLACE of a function the target has, or a new one of its name: an overload
            # that matches a caller's arguments better is the one PostgreSQL calls
            # (``refund_allowed(int)`` ahead of the DBA's ``refund_allowed(bigint)``).
            replaced = name(node.get("funcname", []))
            if replaced:
                self.facts.replaced.add(replaced[-1])
        self.facts.by_shape = False  # the body is a string constant
        language, strings = "sql", []
        for option in node.get("options", []):
            elem = option.get("DefElem", {}) if isinstance(option, dict) else {}
            arg = elem.get("arg", {})
            if elem.get("defname") == "language" and isinstance(arg, dict):
                language = arg.get("String", {}).get("sval", language).lower()
            elif elem.get("defname") == "as" and isinstance(arg, dict):
                strings = name(arg.get("List", {}).get("items", []))
            elif elem.get("defname") == "support":
                self.facts.functions.update(_bound(arg))
        if language not in TRUSTED_LANGUAGES:
            kinds.add("CREATE FUNCTION UNTRUSTED")
        if _security_definer(node.get("options")):
            kinds.add(SECURITY_DEFINER)
        parts = name(node.get("funcname", []))
        function = parts[-1].lower() if parts else "?"
        if parts and parts[-1] in builtin_names.FUNCTIONS:
            self.facts.overloads.add(parts[-1])
        what = f"body of {function}"
        sink = Facts(f"{function}(…)")
        if language == "sql" and node.get("sql_body") is not None:  # BEGIN ATOMIC, RETURN
            _Walker(sink, {}, self.depth + 1).visit({"body": node["sql_body"]})
            escaped = what.replace("{", "{{").replace("}", "}}")  # a quoted name may hold {
            self._inline_parts("sql_body", escaped + ", statement {n}", sink)
        elif language == "sql" and strings:
            before = len(sink.parts)
            self._inner(strings[0], what, True, sink)
            if any("OPAQUE BODY" in p.kinds for p in sink.parts[before:]):
                kinds.add("CREATE FUNCTION UNPARSED BODY")
        elif language == "plpgsql":
            self._plpgsql(strings[0] if strings else None, what, True, sink)
            if "OPAQUE BODY" in sink.kinds:
                kinds.add("CREATE FUNCTION UNPARSED BODY")
        elif language == "internal" and strings:
            sink.functions.add(strings[0].lower())  # an alias of a built-in C function
        else:
            _opaque(sink, " ".join(strings), what, f"is in language {language}, which the "
                    "gateway cannot read", True)
        self._take(sink, deferred=True)
        self.facts.defines[_identity(parts, node.get("parameters", []))] = sink
        return True

    def _take(self, sink: Facts, deferred: bool) -> None:
        """What ran into ``sink`` is this statement's too, and its parts are listed."""
        _combine(self.facts, sink, deferred)
        self.facts.parts.extend(sink.parts)

    def _rule(self, node: dict[str, Any]) -> bool:
        """CREATE RULE: its actions run with every matching write; judged now (the walk goes
        into them), and listed as parts."""
        self.facts.kinds.update({"CREATE", "CREATE RULE"})
        self.facts.by_shape = False  # its actions are read back through the deparser
        self._write(node.get("relation"))
        if protection.statement_off("RuleStmt", node):  # DO INSTEAD: the write never happens
            self.facts.kinds.add(protection.OFF)
        sink = Facts(self.facts.text)
        self._inline_parts("actions", "rule action {n}", sink)
        self.facts.parts.extend(sink.parts)
        return True

    def _create_trigger(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.update({"CREATE", "CREATE TRIG", "CREATE TRIGGER"})
        if protection.statement_off("CreateTrigStmt", node):
            self.facts.kinds.add(protection.OFF)
        self._write(node.get("relation"))
        self._bind_body(node.get("funcname", []), "trigger function")
        return True

    def _create_event_trigger(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.update({"CREATE", "CREATE EVENT TRIG", "CREATE EVENT TRIGGER"})
        self._bind_body(node.get("funcname", []), "event trigger function")
        return True

    def _bind_body(self, funcname: list[Any], what: str) -> None:
        """A trigger runs its function (looked up with no arguments) on others' writes: judge
        the body if this text, or the session's memory, created it under the same name (see
        ``classify_text``), else it is opaque.

        An unqualified name is looked up along the search_path, pg_catalog first: it matches
        a body created unqualified, under the same search_path (a SET forgets the memory),
        unless pg_catalog has a trigger function of that name or the session set its own
        search_path at login (``qualified_only``). What the gateway cannot see: a search_path
        from a role's or database's defaults that names pg_temp first, where an unqualified
        CREATE FUNCTION would go and where no function is ever looked up."""
        parts = name(funcname)
        if not parts:
            return
        function = parts[-1].lower()
        self.facts.functions.add(function)
        unqualified = len(parts) == 1 and not (self.qualified_only or function in _CATALOG_TRIGGERS
                                               or function.startswith("ri_fkey_"))
        body = (self.bodies.get(_identity(parts, [])) if len(parts) > 1 or unqualified
                else None)
        origin = f"{what} {'.'.join(parts)}"
        if body is not None:
            bound = dataclasses.replace(body, origin=origin, deferred=True)
            _combine(self.facts, bound, deferred=True)
            self.facts.parts.append(bound)
        elif not (len(parts) == 2 and parts[0] == "pg_catalog"
                  and function in _KNOWN_TRIGGER_FUNCTIONS):
            sink = Facts(self.facts.text)
            why = ("is named without its schema, so which function it is depends on the "
                   "session's search_path" if len(parts) == 1 else
                   "is not created earlier in the same query text, so its body was not seen")
            _opaque(sink, f"{'.'.join(parts)}()", origin, why, True)
            self._take(sink, deferred=True)

    def _vacuum(self, node: dict[str, Any]) -> bool:
        """ANALYZE evaluates index expressions and extended statistics over sampled rows,
        VACUUM FULL rebuilds every index: stored code runs (``_evaluates``). A plain VACUUM
        evaluates none."""
        is_vacuum = node.get("is_vacuumcmd", False)  # pglast leaves a false flag out
        self.facts.kinds.add("VACUUM" if is_vacuum else "ANALYZE")
        evaluates = not is_vacuum
        for option in node.get("options", []):
            elem = option.get("DefElem", {}) if isinstance(option, dict) else {}
            if elem.get("defname") == "full":
                self.facts.kinds.add("VACUUM FULL")
            if elem.get("defname") in ("full", "analyze"):
                evaluates |= option_truth(elem.get("arg")) is not False
        if evaluates:
            self._evaluates([r.get("VacuumRelation", r).get("relation") for r in
                             node.get("rels") or [] if isinstance(r, dict)])
        return True

    def _cluster(self, node: dict[str, Any]) -> bool:
        """CLUSTER rewrites the table and rebuilds its indexes (``_evaluates``)."""
        self._generic("ClusterStmt")
        self._evaluates([node.get("relation")])
        return True

    def _reindex(self, node: dict[str, Any]) -> bool:
        """REINDEX TABLE evaluates the table's index expressions over its rows; REINDEX INDEX
        names an index, whose table the gateway cannot tell: it reaches, as does REINDEX of a
        schema, a database or the system catalogs."""
        self._generic("ReindexStmt")
        table = node.get("kind") == "REINDEX_OBJECT_TABLE"
        self._evaluates([node.get("relation") if table else None])
        return True

    def _evaluates(self, relations: list[Any]) -> None:
        """The statement evaluates the stored expressions of ``relations`` (RangeVars) over
        the rows they hold: whether one calls code of the target's is the catalog's to say
        (``Facts.evaluated_names``, ``SessionGuard.stored_code``). None named, or one that
        is not a relation by name (the whole database, an index): it reaches, fail closed."""
        named = [r for r in relations if isinstance(r, dict) and _relation(r)]
        if not named or len(named) < len(relations):
            self.facts.reaches = True
        for relation in named:
            self.facts.evaluated_names.add(_stored_name(relation))

    def _explain(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("EXPLAIN")
        analyze = False
        for option in node.get("options", []):
            elem = option.get("DefElem", {}) if isinstance(option, dict) else {}
            if elem.get("defname") == "analyze":
                # EXPLAIN (ANALYZE false) does not run the statement; no argument means true.
                analyze = option_truth(elem.get("arg")) is not False
                self.facts.by_shape &= elem.get("arg") is None
        if analyze:
            self.facts.kinds.add("EXPLAIN ANALYZE")
        else:
            # Not run, but planned: planning runs IMMUTABLE functions of constants and STABLE
            # ones for estimates, so code it calls reaches the target all the same.
            planned = Facts(self.facts.text)
            _Walker(planned, self.bodies, self.depth, self.qualified_only,
                    self.shadowed).visit(node.get("query", {}))
            self.facts.reaches |= planned.reaches
            self.facts.unread |= planned.unread
        return analyze  # only EXPLAIN ANALYZE runs the statement inside

    def _set(self, node: dict[str, Any]) -> bool:
        setting = str(node.get("name", "")).lower()
        self.facts.kinds.add("SET")
        self.facts.by_shape = False  # the value is a constant the settings check reads
        if setting in ("role", "session_authorization"):
            self.facts.kinds.add("SET ROLE")
        value: str | None = None
        args = node.get("args", [])
        if node.get("kind") == "VAR_SET_VALUE" and args:
            values = [constant(arg) for arg in args]
            if all(known and literal is not None for known, literal in values) and (
                    len(args) == 1 or setting == "search_path"):  # a list: schema, schema
                value = ", ".join(str(literal) for _, literal in values)
        if setting:
            self.facts.settings[setting] = value
        return True

    def _stored_setting(self, node: dict[str, Any], node_type: str) -> bool:
        """ALTER ROLE / DATABASE / SYSTEM … SET: a setting for sessions and calls to come,
        noted like SET's for the reading check (it is not a SET of this session)."""
        self._generic(node_type)
        stmt = node.get("setstmt")
        if isinstance(stmt, dict):
            kinds = set(self.facts.kinds)
            self._set(stmt)
            self.facts.kinds &= kinds
        return True

    # --- expressions --------------------------------------------------------------------
    def _func_call(self, node: dict[str, Any]) -> bool:
        parts = name(node.get("funcname", []))
        if parts:
            function = parts[-1].lower()
            self.facts.functions.add(function)
            if self._user_code(parts, builtin_names.FUNCTIONS):
                self.facts.reaches = True
                self.facts.unread |= not self._remembered(parts[-1])
            elif len(parts) == 1:
                self.facts.builtins.add(parts[0])
            if function == "set_config":
                self.facts.by_shape = False
                self._set_config(node.get("args", []))
            elif function in querytext.NAMES:
                self.facts.by_shape = False  # runs, or reads, what its string arguments say
                self._query_text(function, node.get("args", []))
            elif function in _NAMES_FROM_TEXT:
                self.facts.by_shape = False
        return True

    def _attribute(self, node: dict[str, Any], node_type: str) -> bool:
        """``(x).f``, ``t.f``: PostgreSQL calls ``f(x)`` when ``f`` is no column of ``x``
        (``attribute``). A name a function of PostgreSQL's or of the session's has is judged
        as that call (which one it is cannot be told here: fail closed); any other name is a
        column unless the target's catalog has a user's function of it (``attributes``)."""
        for function, argument in attribute.selections(node_type, node):
            if attribute.may_be_builtin(function) or self._session_function(function):
                self._func_call(attribute.call(function, argument))
            else:
                self.facts.attributes.add(function)
                self.facts.builtins.add(function)
        return True

    def _session_function(self, function: str) -> bool:
        """Whether the session created a function of that name (``memory``)."""
        return any(identity.split("(", 1)[0].rsplit(".", 1)[-1].strip('"') == function
                   for identity in self.bodies)

    def _syntax_call(self, function: str) -> bool:
        """SQL/JSON and MERGE syntax of newer PostgreSQL (the parser's grammar is 18's):
        ``json_scalar(x)``, ``json(x)``, ``json_value(…)``, ``merge_action()`` … are calls of
        functions by those names on a server that lacks the syntax (15 has none of them but
        ``json_object``): a user's function there, when it is not PostgreSQL 15's own."""
        self.facts.functions.add(function)
        if self._user_code([function], builtin_names.FUNCTIONS):
            self.facts.reaches = True
            self.facts.unread |= not self._remembered(function)
        else:
            self.facts.builtins.add(function)
        return True

    def _json_function(self, node: dict[str, Any]) -> bool:
        op = str(node.get("op", ""))
        named = {"0": "json_exists", "1": "json_query", "2": "json_value", "3": "json_table"}
        for key, function in named.items():
            if op == key or op.upper().startswith(function.upper() + "_"):
                return self._syntax_call(function)
        return self._syntax_call("json_value")  # an op not known: some function all the same

    def _operator(self, node: dict[str, Any]) -> bool:
        kind = node.get("kind")
        if kind in _OPERATOR_EXPRESSIONS and not self.facts.unread:
            self._operator_named(name(node.get("name", [])))
        elif kind in _RANGE_EXPRESSIONS:  # x BETWEEN a AND b: x >= a AND x <= b, by name
            self._operator_named([">="])
            self._operator_named(["<="])
        return True

    def _operator_named(self, parts: list[str]) -> None:
        """An operator looked up by its name (written, or implied: ``IN (SELECT …)``'s ``=``)
        along the search_path."""
        if not parts or self.facts.unread:
            return
        if self._user_code(parts, builtin_names.OPERATORS):
            self.facts.reaches = self.facts.unread = True
        elif len(parts) == 1:
            self.facts.builtins.add(f"operator:{parts[0]}")

    def _sublink(self, node: dict[str, Any]) -> bool:
        """``x IN (SELECT …)``, ``x op ANY (SELECT …)``: the operator is looked up by name
        (``=`` when none is written)."""
        if node.get("subLinkType") in ("ANY_SUBLINK", "ALL_SUBLINK", "ROWCOMPARE_SUBLINK"):
            self._operator_named(name(node.get("operName") or []) or ["="])
        return True

    def _implied_equality(self, node: dict[str, Any]) -> bool:
        """``CASE x WHEN v``, ``JOIN … USING (c)`` and NATURAL JOIN compare with ``=`` by
        name."""
        if node.get("arg") is not None or node.get("usingClause") or node.get("isNatural"):
            self._operator_named(["="])
        return True

    def _sort_by(self, node: dict[str, Any]) -> bool:
        """``ORDER BY x USING <``: an operator by name."""
        if node.get("useOp"):
            self._operator_named(name(node.get("useOp") or []))
        return True

    def _remembered(self, function: str) -> bool:
        """Whether the session created a function of that name, remembered with a body that
        calls no code the gateway never read (nor does a parameter's DEFAULT)."""
        found = [body for identity, body in self.bodies.items()
                 if identity.split("(", 1)[0].rsplit(".", 1)[-1].strip('"') == function]
        return bool(found) and not any(_calls_unread(body) for body in found)

    def _user_code(self, parts: list[str], builtin: frozenset[str]) -> bool:
        """Whether a call of ``parts`` (a function's or operator's name as written) may run
        code a user created that writes rows. PostgreSQL's own (``builtin_names``, case
        as written: ``"Lower"`` is not lower) do not; a function the session created and the
        gateway remembers (``memory``) may, as may any other function of that name; and after
        the session put a schema ahead of pg_catalog in its search_path (``shadowed``), any
        name written without its schema may be a user's function.
        """
        schema = parts[0].lower() if len(parts) > 1 else None
        if schema in ("pg_catalog", "information_schema") and len(parts) == 2:
            return parts[1] not in builtin
        shown = [f'"{p.replace(chr(34), chr(34) * 2)}"' if "." in p or '"' in p else p
                 for p in parts]
        prefix = ".".join(shown) + "("
        # A function the session created may be called, or another of the same name
        # (another signature: the gateway cannot tell which the arguments pick).
        if any(_may_write(body) for identity, body in self.bodies.items()
               if identity.startswith(prefix)):
            return True
        return schema is not None or self.shadowed or parts[-1] not in builtin

    def _query_text(self, function: str, args: list[Any]) -> None:
        """A function that runs SQL given as text: a constant is judged as the SQL it is, as
        part of this statement; anything else is dynamic SQL."""
        runs = querytext.runs(function, args)
        if runs is None:
            return
        sink = Facts(self.facts.text)
        for label, sql in runs.queries:
            if sql is None:
                self._dynamic(f"{label} (not a constant)", label, False, sink)
            else:
                self._inner(sql, label, False, sink)
        sink.reads.update(runs.reads)
        for why in runs.hidden:
            self._dynamic(why, function, False, sink)
        self._take(sink, deferred=False)

    def _set_config(self, args: list[Any]) -> None:
        """set_config(name, value, is_local) is SET by another name."""
        known, setting = constant(args[0]) if args else (False, None)
        setting = str(setting).lower() if known and setting is not None else "*"
        known, value = constant(args[1]) if len(args) > 1 else (False, None)
        self.facts.settings[setting] = str(value) if known and value is not None else None
        self.facts.kinds.add("SET")
        if setting in ("role", "session_authorization", "*"):
            self.facts.kinds.add("SET ROLE")

    def _type_cast(self, node: dict[str, Any]) -> bool:
        """A cast into a user's type (``x::t``, ``CAST(x AS t)``, ``t 'x'``, ``x::t[]``) runs
        code without a call: a domain's CHECKs, a cast's function (``_converts``).

        'pg_terminate_backend'::regproc names a function (or table, role…) in a literal.
        The rules do not read such names today; keyed by exact text they never will be
        wrong to."""
        self._converts(node.get("typeName"))
        arg = node.get("arg")
        if isinstance(arg, dict) and "A_Const" in arg:
            names = name(node.get("typeName", {}).get("names", []))
            if names and names[-1].lower() in _CATALOG_NAME_TYPES:
                self.facts.by_shape = False
        return True

    def _extension(self, node_type: str) -> bool:
        """An extension's script may define functions and operators under any of
        PostgreSQL's names (citext's lower, =): every such name may be a user's after it."""
        self._generic(node_type)
        self.facts.overloads.add("*")
        return True

    def _prepare(self, node: dict[str, Any]) -> bool:
        """PREPARE p (t) AS …: each EXECUTE converts its arguments into the parameters' types
        (judged as the body alone, which never names them): a user's type is code reached."""
        self._generic("PrepareStmt")
        for type_name in node.get("argtypes") or []:
            self._converts(type_name)
        return True

    def _converts(self, type_name: Any) -> None:
        """Values are converted into the type ``type_name`` (a TypeName) as the statement
        runs: into a user's type, that runs code the target holds (a domain's CHECK calling
        a function, a ``CREATE CAST … WITH FUNCTION``), as ``SELECT f()`` does
        (``Facts.reaches``). Not ``unread``: stored in a view, a default or an index, the
        expression is read again from the catalog where it runs (``engine.pg.storedcode``)."""
        if isinstance(type_name, dict):
            type_name = type_name.get("TypeName", type_name)
            parts = name(type_name.get("names", []))
            if parts and self._user_type(parts):
                self.facts.reaches = True
            elif parts:  # a user's CREATE CAST into PostgreSQL's own type may run
                self.facts.builtins.add(f"type:{parts[-1]}")

    def _user_type(self, parts: list[str]) -> bool:
        """Whether a type named ``parts`` (as written) may be a user's, fail closed: a name
        not PostgreSQL's own (``builtin_names.TYPES``; the parser spells ``int``,
        ``varchar(9)``, ``double precision`` … as pg_catalog's), one in another schema, or
        any name without its schema once the session put a schema ahead of pg_catalog."""
        if len(parts) > 1:
            if (parts[-2], parts[-1]) in self.plain_types:
                return False
            if parts[-2] == "pg_catalog":
                return parts[-1] not in builtin_names.TYPES
            if parts[-2] == "information_schema":
                return parts[-1] not in builtin_names.INFORMATION_SCHEMA_TYPES
            return True
        return self.shadowed or parts[0] not in builtin_names.TYPES

    def _range_var(self, node: dict[str, Any]) -> bool:
        relname = _relation(node)
        if relname:
            self.facts.reads.add(relname)
            self.facts.read_names.add(_stored_name(node))
        return True


def _combine(sink: Facts, inner: Facts, deferred: bool) -> None:
    """``inner`` runs as part of ``sink``: its facts are ``sink``'s too, settings included when
    it is code stored for later (a body that turns standard_conforming_strings off changes how
    the next body it calls is read, inside one statement the gateway judged once)."""
    sink.kinds |= inner.kinds
    sink.functions |= inner.functions
    sink.reads |= inner.reads
    sink.writes |= inner.writes
    sink.read_names |= inner.read_names
    sink.written_names |= inner.written_names
    sink.by_shape &= inner.by_shape
    sink.settings.update(inner.settings)
    if not deferred:
        sink.reaches |= inner.reaches
        sink.unread |= inner.unread
        sink.evaluated_names |= inner.evaluated_names
        sink.builtins |= inner.builtins
        sink.overloads |= inner.overloads
    sink.attributes |= inner.attributes


# Object types of ALTER … RENAME that name a function.
_ROUTINES = frozenset({"OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_ROUTINE",
                       "OBJECT_AGGREGATE"})


# Object types of ALTER … RENAME / SET SCHEMA that name a relation. PostgreSQL lets ALTER
# TABLE act on any relation and ALTER INDEX rename any relation, and the gateway cannot see
# which kind of relation a name is: each of them may be a table's rename or move.
_RELATIONS = frozenset({"OBJECT_TABLE", "OBJECT_FOREIGN_TABLE", "OBJECT_INDEX", "OBJECT_VIEW",
                        "OBJECT_SEQUENCE", "OBJECT_MATVIEW"})


# Statements after which a function created earlier in the same text is still the one its
# name means when a later trigger binds it: they run no code (no call, no write that fires a
# trigger, no COMMIT that fires deferred ones) and rename, move or drop nothing.
_KEEPS_FUNCTIONS = frozenset({"CreateFunctionStmt", "CreateTrigStmt", "CreateEventTrigStmt",
                              "CommentStmt"})


# COMMIT is not among them: it fires deferred triggers of what ran before.
_KEEPS_TRANSACTION = frozenset({"TRANS_STMT_BEGIN", "TRANS_STMT_START", "TRANS_STMT_SAVEPOINT",
                                "TRANS_STMT_RELEASE"})
_OWN_WRITES = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt"})


def _keeps(stmt: dict[str, Any], facts: Facts, own: set[str]) -> bool:
    """Whether what the session created before ``stmt`` still means the same after it: it
    runs no code the gateway has not read and renames, moves, drops or shadows nothing.
    A ROLLBACK keeps names too, but not what was created: ``SessionMemory.rolled_back``."""
    node_type = next(iter(stmt), "")
    node = stmt.get(node_type)
    if not isinstance(node, dict):
        return False
    if node_type == "CreateStmt":  # a new table (a partition's bounds are checked: not one)
        return not node.get("partbound")
    if node_type in _KEEPS_FUNCTIONS:
        return True
    if node_type == "IndexStmt":  # on columns: no expression runs code
        return all(isinstance(p, dict) and not p.get("IndexElem", {}).get("expr")
                   for p in node.get("indexParams", []))
    if node_type == "TransactionStmt":
        return node.get("kind") in _KEEPS_TRANSACTION
    if node_type in _OWN_WRITES:  # the session's own rows: triggers only it created fire
        return (bool(facts.writes) and facts.writes <= own and facts.reads <= own
                and not (facts.functions or facts.parts or facts.settings))
    return False


def _temporary(stmt: dict[str, Any]) -> set[str]:
    """The names of temporary relations a statement creates (``_temporaries``)."""
    return {n for n, what in _temporaries(stmt) if what != "type"}


def _temporaries(stmt: dict[str, Any]) -> set[tuple[str, str]]:
    """The temporary objects a statement creates, as (name, what): ``relation``,
    ``sequence`` or ``type``. PostgreSQL looks in the session's temporary schema first for a
    table, view, sequence or type named without its schema: in a function body, a trigger, a
    row security policy's function or a PL/pgSQL declaration made by someone else
    (``delete_permits``, ``managers``, ``order_amount``), a temporary object of an existing
    one's name stands in for it — protection off, when the target has one of that name.
    Found in any statement shape that makes one: CREATE TABLE / VIEW / SEQUENCE, CREATE
    TABLE AS, SELECT INTO, inside EXPLAIN, and types or domains created in ``pg_temp``."""
    out: set[tuple[str, str]] = set()
    node_type = next(iter(stmt), "")
    node = stmt.get(node_type)
    while node_type == "ExplainStmt" and isinstance(node, dict):
        stmt = node.get("query") or {}
        node_type = next(iter(stmt), "")
        node = stmt.get(node_type)
    if node_type in _MAKE_NO_TEMPORARIES:
        return out
    if node_type == "SelectStmt":
        # Only the statement's own INTO (the leftmost arm's, of a UNION): a query's
        # subqueries make nothing, and walking them all would cost every SELECT.
        while isinstance(node, dict):
            _find_temporaries({"intoClause": node.get("intoClause")}, out)
            node = (node.get("larg") or {}).get("SelectStmt", node.get("larg"))
        return out
    _find_temporaries(stmt, out)
    return out


# Statements that cannot make a temporary object (nothing in them is walked for one).
_MAKE_NO_TEMPORARIES = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt",
                                  "CopyStmt", "VariableSetStmt", "TransactionStmt"})


# Statement node → (the field naming what it creates, what it is).
_CREATES_RELATION = {"CreateStmt": ("relation", "relation"), "ViewStmt": ("view", "relation"),
                     "CreateSeqStmt": ("sequence", "sequence"),
                     "CompositeTypeStmt": ("typevar", "type"),
                     # SELECT … INTO's and CREATE TABLE AS's target (inside EXPLAIN too)
                     "intoClause": ("rel", "relation"), "into": ("rel", "relation")}
# Statement node → the field naming the type it creates (a list of names).
_CREATES_TYPE = {"CreateDomainStmt": "domainname", "CreateEnumStmt": "typeName",
                 "CreateRangeStmt": "typeName"}


def _shadows_catalog(kind: str, defined: list[str]) -> bool:
    """Whether CREATE OPERATOR, TEXT SEARCH CONFIGURATION / DICTIONARY or COLLATION makes an
    object of a name pg_catalog has, in a user's schema: any session (a DBA's trigger
    included) whose search_path puts that schema ahead of pg_catalog uses it for the name
    written without a schema (``o <= 1000`` runs a user's ``public.<=``). Collations' names
    come from the operating system's locales, which the gateway cannot list: any."""
    if kind == "OBJECT_COLLATION":
        return True
    known = {"OBJECT_OPERATOR": builtin_names.OPERATORS,
             "OBJECT_TSCONFIGURATION": builtin_names.TEXT_SEARCH_CONFIGURATIONS,
             "OBJECT_TSDICTIONARY": builtin_names.TEXT_SEARCH_DICTIONARIES}.get(kind)
    return known is not None and bool(defined) and defined[-1] in known


def _builtin_type_named(stmt: dict[str, Any]) -> bool:
    """Whether a statement makes a type or domain named like one of pg_catalog's (``text``,
    ``int4``, ``date``): any session whose search_path puts its schema ahead of pg_catalog
    (or pg_temp's, always searched first for types) reads ``x::text`` in a DBA's code as
    the user's type, its input function and CHECKs."""
    node_type = next(iter(stmt), "")
    node = stmt.get(node_type)
    if not isinstance(node, dict):
        return False
    if node_type == "CompositeTypeStmt":
        typevar = node.get("typevar")
        typevar = typevar.get("RangeVar", typevar) if isinstance(typevar, dict) else {}
        parts = [str(typevar.get("relname") or "")]
    elif node_type in _CREATES_TYPE or (node_type == "DefineStmt"
                                        and node.get("kind") == "OBJECT_TYPE"):
        parts = name(node.get(_CREATES_TYPE.get(node_type, "defnames")) or [])
    else:
        return False
    return bool(parts) and parts[-1] in builtin_names.TYPES


def _find_temporaries(node: Any, out: set[tuple[str, str]]) -> None:
    if isinstance(node, list):
        for item in node:
            _find_temporaries(item, out)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if not isinstance(value, dict | list):
            continue
        if isinstance(value, dict) and key in _CREATES_RELATION:
            field_name, what = _CREATES_RELATION[key]
            rel = value.get(field_name)
            rel = rel.get("RangeVar", rel) if isinstance(rel, dict) else None
            if isinstance(rel, dict) and rel.get("relname") and (
                    rel.get("relpersistence") == "t" or _temp_schema(rel.get("schemaname"))):
                out.add((str(rel["relname"]), what))
        elif isinstance(value, dict) and (key in _CREATES_TYPE or (
                key == "DefineStmt" and value.get("kind") == "OBJECT_TYPE")):
            parts = name(value.get(_CREATES_TYPE.get(key, "defnames")) or [])
            if len(parts) > 1 and _temp_schema(parts[-2]):
                out.add((parts[-1], "type"))
        _find_temporaries(value, out)


def _temp_schema(schema: Any) -> bool:
    """``pg_temp``, or the session's temporary schema by its own name (``pg_temp_3``)."""
    return str(schema or "").lower().startswith("pg_temp")


def _overrides(stmt: dict[str, Any], own: set[str]) -> bool:
    """Whether a statement puts code or rows in front of an existing table's own protection:
    a row trigger firing BEFORE or INSTEAD OF its writes (``protection.trigger_vetoes``), or
    a new table that inherits from it or is a partition of it (its rows then show in the
    parent unchecked by the parent's keys and triggers, as ``ALTER TABLE … INHERIT`` and
    ``ATTACH PARTITION`` would). Not over the session's own tables."""
    trigger = stmt.get("CreateTrigStmt")
    if isinstance(trigger, dict):
        return protection.trigger_vetoes(trigger) and _relation(
            trigger.get("relation")) not in own
    table = stmt.get("CreateStmt")
    if isinstance(table, dict):
        parents = [_relation(p) for p in table.get("inhRelations") or []]
        return any(p is None or p not in own for p in parents)
    return False


def _new_table(stmt: dict[str, Any]) -> str | None:
    """The table a CREATE TABLE makes, as written; None for a temporary one (a function
    body's name may later reach the permanent table it shadowed) or IF NOT EXISTS (it may
    already be someone else's)."""
    node = stmt.get("CreateStmt")
    if not isinstance(node, dict) or node.get("if_not_exists") or node.get("partbound"):
        return None
    relation = node.get("relation", {})
    if (not isinstance(relation, dict) or relation.get("relpersistence") == "t"
            or _cased(relation) or node.get("inhRelations")):
        return None  # temporary, quoted with capitals, or holding a parent's columns
    return _relation(relation)


def _identity(parts: list[str], parameters: list[Any]) -> str:
    """A function as the catalog identifies it: its name as written (schema-qualified or
    not) and the types of its input parameters (OUT and TABLE columns left out)."""
    types = []
    for item in parameters:
        param = item.get("FunctionParameter", {}) if isinstance(item, dict) else {}
        if param.get("mode") in ("FUNC_PARAM_OUT", "FUNC_PARAM_TABLE"):
            continue
        arg = param.get("argType", {})
        names = name(arg.get("names", [])) if isinstance(arg, dict) else []
        bounds = "[]" * len(arg.get("arrayBounds", [])) if isinstance(arg, dict) else ""
        types.append(".".join(names) + bounds if names else "?")
    # A part holding a dot or a quote is quoted: "public.f" is not public.f.
    shown = [f'"{p.replace(chr(34), chr(34) * 2)}"' if "." in p or '"' in p else p
             for p in parts]
    return f"{'.'.join(shown)}({','.join(types)})"


# ALTER TABLE subcommands that convert every row's value of a column into the column's type
# (ADD COLUMN: its DEFAULT, or NULL, goes through a domain's CHECKs; ALTER COLUMN TYPE).
_CONVERTS_ROWS = frozenset({"AT_AddColumn", "AT_AlterColumnType"})
# ALTER TABLE subcommands that evaluate the table's stored expressions over the rows it holds:
# a rewrite (ADD COLUMN with a volatile DEFAULT or a domain, ALTER COLUMN TYPE, SET LOGGED or
# UNLOGGED, SET ACCESS METHOD, SET EXPRESSION) rebuilds its indexes and checks again what
# depends on the column; VALIDATE CONSTRAINT runs a CHECK over every row; ATTACH PARTITION
# checks the table's partition key and bounds over the partition's rows.
_EVALUATES_ROWS = frozenset({"AT_AddColumn", "AT_AlterColumnType", "AT_SetLogged",
                             "AT_SetUnLogged", "AT_SetAccessMethod", "AT_SetExpression",
                             "AT_ValidateConstraint", "AT_AttachPartition"})


# Expressions that use >= and <= by name under a keyword of their own.
_RANGE_EXPRESSIONS = frozenset({"AEXPR_BETWEEN", "AEXPR_NOT_BETWEEN", "AEXPR_BETWEEN_SYM",
                                "AEXPR_NOT_BETWEEN_SYM"})
# Expressions that name an operator (BETWEEN and the like name a keyword instead).
_OPERATOR_EXPRESSIONS = frozenset({
    "AEXPR_OP", "AEXPR_OP_ANY", "AEXPR_OP_ALL", "AEXPR_DISTINCT", "AEXPR_NOT_DISTINCT",
    "AEXPR_NULLIF", "AEXPR_IN", "AEXPR_LIKE", "AEXPR_ILIKE", "AEXPR_SIMILAR"})


# ADD COLUMN that writes a value into every row under an exclusive lock (``_rewrites``).
REWRITE = "ALTER TABLE REWRITE"
# PostgreSQL's own functions whose value differs from row to row (volatile): as a new column's
# DEFAULT, each row gets its own, so the table is rewritten. Any other function is taken as
# stable, as now() is (stored once: no rewrite); a user's function counts as volatile.
_VOLATILE = frozenset({
    "random", "random_normal", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc",
    "uuid_generate_v4", "clock_timestamp", "timeofday", "nextval", "setval", "setseed",
    "txid_current", "pg_current_xact_id", "currval", "lastval", "statement_timestamp",
})
_SERIAL_TYPES = frozenset({"serial", "serial2", "serial4", "serial8", "smallserial",
                           "bigserial"})


def _rewrites(column: Any) -> bool:
    """Whether ADD COLUMN of ``column`` (a ColumnDef) writes a value into every existing row:
    a volatile DEFAULT (or one calling a function that is not PostgreSQL's own), a serial
    type, an identity or a stored generated column. A constant or stable DEFAULT is kept in
    the catalog instead (PostgreSQL 11+)."""
    definition = column.get("ColumnDef", {}) if isinstance(column, dict) else {}
    names = name((definition.get("typeName") or {}).get("names", []))
    if names and names[-1].lower() in _SERIAL_TYPES:
        return True
    for constraint in definition.get("constraints", []) or []:
        c = constraint.get("Constraint", {}) if isinstance(constraint, dict) else {}
        kind = c.get("contype")
        if kind in ("CONSTR_IDENTITY", "CONSTR_GENERATED"):
            return True
        if kind == "CONSTR_DEFAULT" and _volatile(c.get("raw_expr")):
            return True
    return False


def _volatile(expr: Any) -> bool:
    """Whether an expression calls a volatile function of PostgreSQL's, or any other's."""
    if isinstance(expr, list):
        return any(_volatile(e) for e in expr)
    if not isinstance(expr, dict):
        return False
    call = expr.get("FuncCall")
    if isinstance(call, dict):
        parts = name(call.get("funcname", []))
        function = parts[-1].lower() if parts else ""
        if function in _VOLATILE or function not in builtin_names.FUNCTIONS or (
                len(parts) > 1 and parts[0].lower() != "pg_catalog"):
            return True
    for kind in ("A_Indirection", "ColumnRef"):  # (x).f: f(x) (``attribute``)
        inner = expr.get(kind)
        if isinstance(inner, dict) and any(
                f in _VOLATILE or f not in builtin_names.FUNCTIONS
                for f, _ in attribute.selections(kind, inner)):
            return True
    return any(_volatile(v) for v in expr.values())


def _security_definer(options: Any) -> bool:
    """Whether a function's options (or ALTER FUNCTION's actions) make it SECURITY DEFINER:
    it runs with its owner's privileges for whoever may call it, PUBLIC by default — a grant
    of what the owner may do, by another name."""
    for option in options or []:
        elem = option.get("DefElem", {}) if isinstance(option, dict) else {}
        if elem.get("defname") == "security":
            arg = elem.get("arg") or {}
            value = arg.get("Boolean", {}).get("boolval") if isinstance(arg, dict) else None
            if value is not False:  # not known: taken as definer
                return True
    return False


def _calls_unread(body: Facts) -> bool:
    return (body.unread or bool(body.kinds & {"DYNAMIC SQL", "OPAQUE BODY"})
            or any(_calls_unread(part) for part in body.parts))


def _may_write(body: Facts) -> bool:
    """Whether a remembered function's body, run now, may write rows the session does not
    own, or run code the gateway has not read."""
    if body.reaches or body.kinds & {"DYNAMIC SQL", "OPAQUE BODY"}:
        return True
    return any(_may_write(part) or (part.writes and not part.own) for part in body.parts)


def _opaque(sink: Facts, text: str, origin: str, why: str, deferred: bool) -> None:
    """Code the gateway cannot read: an OPAQUE BODY part, never allowed by default."""
    sink.kinds.add("OPAQUE BODY")
    sink.reaches |= not deferred
    sink.unread |= not deferred
    shown = " ".join(text.split())
    sink.parts.append(Facts(shown[:200] or origin, {"OPAQUE BODY"},
                            origin=f"{origin} {why}", deferred=deferred))


def _bound(value: Any) -> set[str]:
    """Function names bound by a field: DefElem option lists (FUNCTION = f, SFUNC = f, …),
    ObjectWithArgs (WITH FUNCTION f(int)), operator class items, plain name lists."""
    out: set[str] = set()
    if isinstance(value, list):
        strings = name(value)
        if strings and len(strings) == len(value):  # a qualified name: [schema, name]
            return {strings[-1].lower()}
        for item in value:
            if not isinstance(item, dict):
                continue
            elem = item.get("DefElem")
            if isinstance(elem, dict):
                option = str(elem.get("defname", "")).lower()
                if option in _FUNCTION_OPTIONS or option not in _OTHER_OPTIONS:
                    out |= _bound(elem.get("arg"))
                continue
            member = item.get("CreateOpClassItem")
            if isinstance(member, dict) and member.get("itemtype") == 2:  # FUNCTION n f(…)
                out |= _bound(member.get("name"))
        return out
    if isinstance(value, dict):
        if "TypeName" in value:
            return _bound(value["TypeName"].get("names", []))
        if "List" in value:
            return _bound(value["List"].get("items", []))
        if "objname" in value:
            return _bound(value.get("objname", []))
        if "String" in value:
            return {str(value["String"].get("sval", "")).lower()}
    return out


_Handler = Callable[[_Walker, dict[str, Any]], bool]
_HANDLERS: dict[str, _Handler] = {
    "ExecuteStmt": _Walker._execute,
    "SelectStmt": _Walker._select,
    "InsertStmt": _Walker._insert,
    "UpdateStmt": _Walker._update,
    "DeleteStmt": _Walker._delete,
    "MergeStmt": _Walker._merge,
    "RefreshMatViewStmt": _Walker._refresh,
    "DropStmt": lambda w, n: w._protection(n, "DropStmt"),
    "AlterEventTrigStmt": lambda w, n: w._protection(n, "AlterEventTrigStmt"),
    "CreatePolicyStmt": lambda w, n: w._protection(n, "CreatePolicyStmt"),
    "AlterPolicyStmt": lambda w, n: w._protection(n, "AlterPolicyStmt"),
    "AlterDomainStmt": lambda w, n: w._protection(n, "AlterDomainStmt"),
    "AlterOwnerStmt": lambda w, n: w._protection(n, "AlterOwnerStmt"),
    "AlterObjectDependsStmt": lambda w, n: w._protection(n, "AlterObjectDependsStmt"),
    "Constraint": _Walker._constraint,
    "TruncateStmt": _Walker._truncate,
    "GrantStmt": _Walker._grant,
    "GrantRoleStmt": _Walker._grant_role,
    "CopyStmt": _Walker._copy,
    "DoStmt": _Walker._do,
    "CreateFunctionStmt": _Walker._create_function,
    "VacuumStmt": _Walker._vacuum,
    "ClusterStmt": _Walker._cluster,
    "ReindexStmt": _Walker._reindex,
    "ExplainStmt": _Walker._explain,
    "VariableSetStmt": _Walker._set,
    "AlterRoleSetStmt": lambda w, n: w._stored_setting(n, "AlterRoleSetStmt"),
    "AlterDatabaseSetStmt": lambda w, n: w._stored_setting(n, "AlterDatabaseSetStmt"),
    "AlterSystemStmt": lambda w, n: w._stored_setting(n, "AlterSystemStmt"),
    "CreateStmt": _Walker._create_table,
    "CreateTableAsStmt": _Walker._create_table_as,
    "ViewStmt": _Walker._create_view,
    "IndexStmt": lambda w, n: w._created(n, "INDEX", None),
    "CreatedbStmt": lambda w, n: w._created(n, "DATABASE", None),
    "RuleStmt": _Walker._rule,
    "RenameStmt": _Walker._rename,
    "AlterObjectSchemaStmt": _Walker._set_schema,
    "CallStmt": _Walker._call,
    "AlterEnumStmt": _Walker._alter_enum,
    "AlterTableStmt": _Walker._alter_table,
    "DropdbStmt": _Walker._dropdb,
    "CreateTrigStmt": _Walker._create_trigger,
    "CreateEventTrigStmt": _Walker._create_event_trigger,
    "FuncCall": _Walker._func_call,
    "A_Indirection": lambda w, n: w._attribute(n, "A_Indirection"),
    "ColumnRef": lambda w, n: w._attribute(n, "ColumnRef"),
    "A_Expr": _Walker._operator,
    "SubLink": _Walker._sublink,
    "CaseExpr": _Walker._implied_equality,
    "JoinExpr": _Walker._implied_equality,
    "SortBy": _Walker._sort_by,
    "RangeVar": _Walker._range_var,
    "TypeCast": _Walker._type_cast,
    "PrepareStmt": _Walker._prepare,
    "CreateExtensionStmt": lambda w, n: w._extension("CreateExtensionStmt"),
    "AlterExtensionStmt": lambda w, n: w._extension("AlterExtensionStmt"),
    "AlterExtensionContentsStmt": lambda w, n: w._extension("AlterExtensionContentsStmt"),
    "JsonFuncExpr": _Walker._json_function,
}
_SYNTAX_CALLS = {
    "JsonScalarExpr": "json_scalar", "JsonParseExpr": "json", "JsonSerializeExpr":
    "json_serialize", "JsonArrayAgg": "json_arrayagg", "JsonObjectAgg": "json_objectagg",
    "JsonArrayConstructor": "json_array", "JsonArrayQueryConstructor": "json_array",
    "JsonObjectConstructor": "json_object", "JsonTable": "json_table",
    "MergeSupportFunc": "merge_action",
}


def _binder(node_type: str) -> _Handler:
    return lambda walker, node: walker._binding(node, node_type)


_HANDLERS.update({node_type: _binder(node_type) for node_type in _BINDINGS})


def _syntax_caller(function: str) -> _Handler:
    return lambda walker, node: walker._syntax_call(function)


_HANDLERS.update({node_type: _syntax_caller(f) for node_type, f in _SYNTAX_CALLS.items()})
