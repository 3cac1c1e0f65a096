"""Statements refused before they run: effects others observe, computed from a masked value.

Masking rewrites what a statement returns and follows what it writes (``lineage``). Some of
what a statement does is neither: a setting it changes (``set_config('TimeZone', '<x>+' ||
ascii(…))`` shifts every timestamptz the session prints later, and the server reports
DateStyle to the client), rows it locks (``FOR UPDATE`` of the rows a masked value picks: a
SKIP LOCKED in another session skips exactly those), advisory locks (another session's
``pg_try_advisory_lock`` finds them), a notification (delivered or not), subtransactions (each
takes a transaction id that any session's ``txid_current()`` counts). Their arguments, and
how many times they run, are whatever the statement computed them from.

The rule (one, for every such effect): a statement whose lineage reads a masked column —
in any clause, through a view, or in the code it runs (function bodies, triggers, DO blocks),
or a column whose lineage the gateway cannot follow — and that has, itself or in that code,
an effect outside its own result (``Lineage.effects``; code the gateway cannot read counts
as one) is refused before it reaches the target. The same effects in a statement that reads
no masked column run as before, and so do reads and writes of masked columns (writes taint
what they write).

``EffectCheck`` answers for a query string (the guard's ``masked_effects``, which refuses it
under the rule ``gateway-masking-effects``), from the connection's catalog as cached: a name it
has not looked up yet is asked for (the relay has it read first, then asks again); one whose
read fails (or that no catalog shows) counts as not known: a function not known may do
anything, a relation not known reads what its lineage cannot follow. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from engine.guardrail import builtin_names
from engine.masking.flow import CATALOG_KEEPING, StatementFlow
from engine.masking.lineage import UNKNOWN, Lineage, Source


class Outcome(NamedTuple):
    """Why the text is refused (None: it is not), and catalog names to read before an
    answer is final (relations by name, functions as ``fn:name``)."""

    refused: str | None
    missing: frozenset[str]


_FINE = Outcome(None, frozenset())
# DDL that makes or replaces code a write runs (a trigger, a rule, a policy, a function a
# trigger may call, a domain's CHECK, a cast, an operator; or may: DO, CALL): after it in
# its transaction a write is judged as running code the cache does not show. (ALTER TABLE,
# a migration's, is left out: a default or CHECK it adds runs at once, over what it names.)
_BINDS_CODE = frozenset({"CreateTrigStmt", "RuleStmt", "CreateFunctionStmt", "CreatePolicyStmt",
                         "AlterPolicyStmt", "CreateDomainStmt", "AlterDomainStmt",
                         "CreateCastStmt", "DefineStmt", "DoStmt", "CallStmt",
                         "AlterFunctionStmt", "CreateEventTrigStmt"})
_TRIES = 8  # times a text has its names read before those still missing count as unknown
_KEPT = 256


class EffectCheck:
    """The check for one session: ``flow`` is its statement flow (the names of its
    prepared statements and cursors, the catalog, the lineages it caches), ``masked`` says
    whether a source is a masked column (``UNKNOWN`` is)."""

    def __init__(self, flow: StatementFlow, masked: Callable[[Source], bool]) -> None:
        self._flow = flow
        self._masked = masked
        self._tries: dict[str, int] = {}  # texts that asked for names, how many times
        # ``flow.idle`` when DDL was last judged: until the next idle ReadyForQuery the
        # catalog cache may show a function or view as it was before it.
        self._ddl_at: tuple[int, str] = (-1, "")  # (and the text: it does not mark itself)
        self._code_ddl_at = -1  # ``flow.idle`` when DDL that binds code to writes was judged

    def __call__(self, text: str, *, final: bool) -> Outcome:
        """``final``: names not looked up count as read and not found (the relay had them
        read when it could); else they are asked for, a few times per text at most (a read
        that fails, or a name no catalog shows, must not make the statement wait forever)."""
        trees = self._flow.trees(text)
        if not trees:
            return _FINE  # the guard refuses what does not parse
        missing: set[str] = set()
        asking = not final and self._tries.get(text, 0) < _TRIES
        changed = self._flow.catalog_changed or (
            self._ddl_at[0] == self._flow.idle and self._ddl_at[1] != text)
        ddl = False  # the tree before may have changed the catalog
        binds = False  # a tree before binds code to writes (``_BINDS_CODE``)
        for tree in trees:
            if ddl:
                self._ddl_at, changed = (self._flow.idle, text), True
            kind = next(iter(tree), "")
            ddl = kind not in CATALOG_KEEPING or bool(
                kind == "SelectStmt" and tree[kind].get("intoClause"))
            lineage = self._flow.analyze(tree)
            if kind in _BINDS_CODE:
                binds, self._code_ddl_at = True, self._flow.idle
            if asking and (lineage.missing.relations or lineage.missing.functions):
                # What it runs is not known yet: asked again once the names are read.
                missing |= {*lineage.missing.relations}
                missing |= {f"fn:{n}" for n in lineage.missing.functions}
                continue
            if "ExecuteStmt" in tree:
                effects, reads = self._executed(tree, lineage)
            else:
                effects, reads = _effects(lineage), lineage.reads
            if lineage.missing.functions:  # not known after all: its code may do anything
                effects |= {"code the catalog could not be read for"}
            if changed and any(n not in builtin_names.FUNCTIONS and ":" not in n
                               for n in lineage.consulted.functions):
                # DDL before it in its transaction (or its text) may have replaced what a
                # user's function does: the cache does not show it until the transaction ends.
                effects |= {"code replaced by DDL in its transaction"}
            if lineage.written and (binds or self._code_ddl_at == self._flow.idle) and (
                    kind not in _BINDS_CODE):
                # A trigger, rule or function made there runs with what the write writes.
                effects |= {"code bound to its tables by DDL in its transaction"}
            locks = lineage.locks
            if locks is not None and any(self._masked(s) for s in locks):
                effects, reads = effects | {"row locks (FOR UPDATE/SHARE)"}, reads | locks
            if not effects:
                continue
            masked = sorted({_shown(s) for s in reads if self._masked(s)})
            if masked:
                return Outcome(
                    f"it reads {', '.join(masked[:4])}{' …' if len(masked) > 4 else ''} "
                    f"and has effects other sessions can observe "
                    f"({', '.join(sorted(effects)[:4])}): masking cannot hide them, so a "
                    "statement may not do both", frozenset())
        if ddl:
            self._ddl_at = (self._flow.idle, text)
        if missing:
            if len(self._tries) >= _KEPT:
                self._tries.clear()
            self._tries[text] = self._tries.get(text, 0) + 1
        else:
            self._tries.pop(text, None)
        return Outcome(None, frozenset(missing))

    def _executed(self, tree: dict[str, Any], lineage: Lineage
                  ) -> tuple[frozenset[str], frozenset[Source]]:
        """The effects and reads of ``EXECUTE x(…)``: its prepared query's and its
        arguments'. (Its own lineage also reads ``UNKNOWN`` for the errors it may quote.) A
        statement the flow does not know yet (prepared earlier in the same pipeline) is
        judged as itself when the relay resolves the name (``engine.pg.prepared``): here
        only arguments read from a masked column count, as given to unknown code."""
        arguments = lineage.reads - {UNKNOWN}
        query = self._flow.analyzer.prepared_queries.get(str(tree["ExecuteStmt"].get("name", "")))
        if query is None:
            if any(self._masked(s) for s in arguments):
                return frozenset({"a prepared statement not known yet"}), arguments
            return frozenset(), arguments
        inner = self._flow.analyze(query)
        effects = _effects(inner) | lineage.effects
        if inner.locks is not None and any(self._masked(s) for s in inner.locks | arguments):
            effects |= {"row locks (FOR UPDATE/SHARE)"}  # (its parameters may pick them)
        return effects, inner.reads | arguments


def _effects(lineage: Lineage) -> frozenset[str]:
    if lineage.opaque is not None:
        return lineage.effects | {f"code the gateway cannot read: {lineage.opaque}"}
    return lineage.effects


def _shown(source: Source) -> str:
    if source is UNKNOWN:
        return "a value whose lineage the gateway cannot follow"
    return f"{source.table}.{source.column}"
