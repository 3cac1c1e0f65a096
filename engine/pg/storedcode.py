"""Whether a relation carries code of the target's that a statement naming it runs.

A statement can run code without calling it: an INSERT fires its table's triggers and rules and
evaluates its columns' defaults, CHECK constraints (of the table and of its columns' domains),
generated columns and index expressions; a SELECT from a view runs the functions of the view's
query, and a read or a write runs those of the table's row-security policies. Code created
through the gateway was judged when it was created (``engine.guardrail.classify``); code
installed another way (by a DBA, before the gateway) was not, and what it writes shows only in
the target's counts. A ``rows_over`` rule therefore counts a statement that reaches such a
relation as it counts ``SELECT f()`` (``SessionGuard.stored_code``).

The answer comes from what the connection's catalog cache (``engine.pg.catalog``) knows of the
relation: ``True`` it carries code, ``False`` it does not, ``None`` not known (never read, or
a relation it leads to never was: ``missing`` names them, and the relay has a statement wait
while they are read, ``PgRelay.lookup``). Where the connection masks columns, the cache is the
one lineage keeps, checked against the target after every statement that names a relation;
elsewhere an entry older than the cache's ``ttl`` (60 s) is read again in the background
(``ask``) for the statements after. Meanwhile, and after DDL empties the cache, the relation as
last read answers (``last_known``).

Code is anything but PostgreSQL's own (``engine.guardrail.builtin_names``): a trigger function
outside pg_catalog, any rule, a default, CHECK, index expression, row-security policy or view
query that calls a function or operator that is not PostgreSQL's; a generated column counts as
code whatever its expression (the cache keeps its name only).

Reads and writes differ: reading a table runs none of its triggers, so for a read only a view's
query (and the views it reads) matter; a write into a view lands in its base tables, and a write
into a partitioned table or an inheritance parent in its family. A statement that evaluates a
table's stored expressions over the rows it holds (``rows``: ANALYZE, VALIDATE CONSTRAINT, a
rewrite, CLUSTER, REINDEX) runs its CHECKs, index expressions, generated columns, extended
statistics and partition key, in its family too, but no trigger, rule or default.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

from engine.guardrail.classify import ParseFailure, classify
from engine.masking.lineage import Relation

DEPTH = 8  # views over views, partitions of partitions: deeper is not known (None)


class Relations(Protocol):
    def relations(self, name: str) -> list[Relation] | None: ...

    def last_known(self, name: str) -> list[Relation] | None: ...


class StoredCode:
    """``(name, writes) -> bool | None`` over a catalog cache (see the module's docstring)."""

    def __init__(self, catalog: Relations, ask: Callable[[str], None] | None = None) -> None:
        self.catalog = catalog
        # Told of each name whose entry expired, where nothing else checks names (no
        # masking): the catalog reads it again in the background, for the statements after.
        self.ask = ask
        self._missing: set[str] | None = None  # collecting, for ``missing``

    def __call__(self, name: str, writes: bool, rows: bool = False) -> bool | None:
        """``name``: pg_class's relname, case kept (``Facts.read_names``). Worked out anew at
        each question (each relation looked at once): an answer kept would skip the look that
        has an expired entry read again (``ask``)."""
        self._missing = None
        return self._named(name, (writes, rows), 0, set())

    def missing(self, name: str, writes: bool, rows: bool = False) -> set[str]:
        """The relations the answer for ``name`` needs that the catalog never read."""
        found: set[str] = set()
        self._missing = found
        try:
            self._named(name, (writes, rows), 0, set())
        finally:
            self._missing = None
        return found

    def _named(self, name: str, mode: tuple[bool, bool], depth: int,
               seen: set[tuple[str, tuple[bool, bool]]]) -> bool | None:
        # Each relation is looked at once per question: a partition's family leads back to
        # its parent, and a parent to every partition (the outside attack froze a worker
        # for 78 s on an INSERT into a table of 40 partitions, walked again at every step).
        if (name, mode) in seen:
            return False  # (its answer is the one being worked out, or known False)
        seen.add((name, mode))
        found = self.catalog.relations(name)
        if found is None:
            # Expired, or dropped by DDL: as last read, while it is read again.
            found = self.catalog.last_known(name)
            if found is None:
                if self._missing is not None:
                    self._missing.add(name)
                return None
            if self.ask is not None:
                self.ask(name)
        answer: bool | None = False
        for relation in found:
            runs = self._relation(relation, mode, depth, seen)
            if runs:
                return True
            if runs is None:
                answer = None
        return answer

    def _relation(self, relation: Relation, mode: tuple[bool, bool], depth: int,
                  seen: set[tuple[str, tuple[bool, bool]]]) -> bool | None:
        writes, rows = mode
        if rows:
            if runs_over_rows(relation):
                return True
            return self._further(relation.family, mode, depth, seen)
        if writes and runs_on_write(relation):
            return True
        if any(calls_code(e) for e in relation.policies):
            return True
        if relation.definition is not None:
            query = view_query(relation.definition)
            if query is None or query[0]:
                return True
            inner = query[1]
        else:
            inner = frozenset()
        answer = self._further(inner, (False, False), depth, seen)
        if answer or not writes:
            return answer
        # A write through a view lands in its base tables; into a parent, in its family.
        further = self._further(relation.family + tuple(inner), mode, depth, seen)
        return further if further or answer is False else answer

    def _further(self, names: tuple[str, ...] | frozenset[str], mode: tuple[bool, bool],
                 depth: int, seen: set[tuple[str, tuple[bool, bool]]]) -> bool | None:
        """Whether any of the relations ``names`` carries such code (None: not known)."""
        if not names:
            return False
        if depth >= DEPTH:
            return None
        answer: bool | None = False
        for name in sorted(names):
            runs = self._named(name, mode, depth + 1, seen)
            if runs:
                return True
            if runs is None:
                answer = None
        return answer


@lru_cache(maxsize=4096)
def runs_on_write(relation: Relation) -> bool:
    """Whether a write into ``relation`` runs code that is not PostgreSQL's own."""
    if relation.rules or relation.generated:
        return True
    if any(not t.startswith("pg_catalog.") for t in relation.triggers):
        return True
    plain = frozenset(relation.plain_types)
    return any(calls_code(e, plain) for e in relation.defaults + relation.checks
               + relation.indexes + relation.evaluated)


@lru_cache(maxsize=4096)
def runs_over_rows(relation: Relation) -> bool:
    """Whether evaluating ``relation``'s stored expressions over its rows (ANALYZE, VALIDATE
    CONSTRAINT, a rewrite) runs code that is not PostgreSQL's own: its CHECKs (its columns'
    domains' too), index expressions and predicates, generated columns, extended statistics
    and partition key."""
    if relation.generated:
        return True
    plain = frozenset(relation.plain_types)
    return any(calls_code(e, plain) for e in relation.checks + relation.indexes
               + relation.evaluated)


@lru_cache(maxsize=4096)
def calls_code(expression: str, plain_types: frozenset[tuple[str, str]] = frozenset()) -> bool:
    """Whether an expression (a default's, a CHECK's) calls code that is not PostgreSQL's own,
    or changes a setting (set_config: the search_path may then shadow PostgreSQL's names);
    one the parser cannot read does (fail closed). ``VALUE`` (a domain's CHECK) reads as a
    column. A cast into one of ``plain_types`` (``Relation.plain_types``) runs none."""
    try:
        return any(f.reaches or f.settings
                   for f in classify(f"SELECT {expression}", plain_types=plain_types))
    except ParseFailure:
        return True


@lru_cache(maxsize=4096)
def view_query(definition: str) -> tuple[bool, frozenset[str]] | None:
    """(whether a view's query calls code that is not PostgreSQL's own or changes a setting,
    the relations it reads by bare name); None when it cannot be read."""
    try:
        statements = classify(definition)
    except ParseFailure:
        return None
    return (any(f.reaches or f.settings for f in statements),
            frozenset(n for f in statements for n in f.read_names | f.written_names))
