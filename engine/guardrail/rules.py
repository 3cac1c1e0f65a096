"""Guardrail rules as the policies file states them, and how one rule judges one statement.

Precedence: rules are tried in the order of the file; the first rule that applies to the
session (connection, identity, groups) and matches the statement decides. No match: allow.
Within one rule every criterion given must hold (AND); within a list any entry may (OR).
For a multi-statement query the strictest verdict of its statements wins
(block > review > allow), so that if any statement is blocked none runs.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Protocol

import pglast
from pglast import ast
from pglast.enums import OnConflictAction

from engine.guardrail import undone
from engine.guardrail.classify import Facts
from engine.guardrail.commands import READS_INPUT, CommandFacts

ACTIONS = ("allow", "review", "block")
COUNTED_KINDS = frozenset({"UPDATE", "DELETE", "MERGE"})  # what ``rows_over`` counts
# What a ``rows_over`` rule looks at: the counted kinds (an INSERT … ON CONFLICT DO UPDATE is
# an UPDATE too), and TRUNCATE, which empties tables and has no count (so it meets the rule).
ROW_WRITES = COUNTED_KINDS | {"TRUNCATE"}
SEVERITY = {"allow": 0, "review": 1, "block": 2}


@dataclass(frozen=True)
class Match:
    statements: frozenset[str] = frozenset()
    functions: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    schemas: frozenset[str] = frozenset()
    access: str = "any"  # read | write | any (for tables and schemas)
    regex: re.Pattern[str] | None = None
    # Shell commands (SSH exec and interactive command lines)
    commands: frozenset[str] = frozenset()  # kinds: RM RECURSIVE, MKFS, ...
    programs: tuple[str, ...] = ()  # program names after normalisation, glob patterns
    paths: tuple[str, ...] = ()  # path operands of those commands, glob patterns
    opaque: bool = False  # the line runs something the gateway cannot see (a script, $CMD…)
    # An UPDATE, DELETE or MERGE matches only when it writes more rows than this: the gateway
    # counts them by running it (``engine/pg/rowcount.py``); see ``judge_statement``.
    rows_over: int | None = None

    def empty(self) -> bool:
        return not (self.statements or self.functions or self.tables or self.schemas
                    or self.regex or self.commands or self.programs or self.opaque
                    or self.rows_over is not None)

    def for_sql(self) -> bool:
        return not (self.commands or self.programs or self.paths or self.opaque)

    def for_commands(self) -> bool:
        return not (self.statements or self.functions or self.tables or self.schemas
                    or self.rows_over is not None)

    def test_command(self, facts: CommandFacts) -> str | None:
        """Why a shell command line matches, in the operator's words, or None. A rule that
        names SQL criteria never matches a command (and the reverse)."""
        if not self.for_commands():
            return None
        reasons: list[str] = []
        if self.commands:
            hit = sorted(facts.kinds & self.commands)
            if not hit:
                return None
            reasons.append(" and ".join(hit))
        if self.programs:
            ran = sorted(p for p in facts.programs
                         if any(fnmatch.fnmatchcase(p, pat) for pat in self.programs))
            if not ran:
                return None
            reasons.append("runs " + ", ".join(ran))
        if self.paths:
            touched = sorted(p for p in facts.paths
                             if any(fnmatch.fnmatchcase(p, pat) for pat in self.paths))
            if not touched:
                return None
            reasons.append("on " + ", ".join(touched))
        if self.opaque:
            if not facts.opaque:
                return None
            reasons.append("not seen: " + ", ".join(facts.opaque))
        if self.regex is not None:
            if not self.regex.search(facts.text):
                return None
            reasons.append(f"text matches /{self.regex.pattern}/")
        return "; ".join(reasons)

    def could_match_command(self, facts: CommandFacts) -> str | None:
        """Why a command line may match once what the gateway cannot read is what it could
        be (a program or path only known at run time, a glob), or None: ARCHITECTURE.md
        invariant 9, the strictest rule that could apply."""
        if not self.for_commands() or not facts.unseen:
            return None
        reasons: list[str] = []
        if self.commands:
            hit = sorted(facts.kinds & self.commands)
            maybe = sorted(facts.maybe_kinds & self.commands)
            if facts.unknown_program and not hit:
                maybe = sorted(self.commands)
            if not hit and not maybe:
                return None
            reasons.append(" and ".join(hit) if hit else "could be " + " or ".join(maybe))
        if self.programs:
            ran = sorted(p for p in facts.programs
                         if any(fnmatch.fnmatchcase(p, pat) for pat in self.programs))
            named = sorted(g for g in facts.program_patterns if any(
                fnmatch.fnmatchcase(pat, g) or fnmatch.fnmatchcase(g, pat)
                for pat in self.programs))
            if ran:
                reasons.append("runs " + ", ".join(ran))
            elif named:
                reasons.append("may run " + ", ".join(self.programs) + " (" +
                               ", ".join(named) + ")")
            elif facts.unknown_program:
                reasons.append("may run " + ", ".join(self.programs))
            else:
                return None
        if self.paths:
            touched = sorted(p for p in facts.paths
                             if any(fnmatch.fnmatchcase(p, pat) for pat in self.paths))
            globbed = sorted(g for g in facts.path_patterns
                             if any(_patterns_meet(g, pat) for pat in self.paths))
            if touched or globbed:
                reasons.append("on " + ", ".join(touched + globbed))
            elif facts.unknown_paths or facts.unknown_program:
                reasons.append("on a path only known at run time")
            else:
                return None
        if self.opaque:
            if not facts.opaque:
                return None
            reasons.append("not seen: " + ", ".join(facts.opaque))
        if self.regex is not None:
            if not self.regex.search(facts.text):
                return None
            reasons.append(f"text matches /{self.regex.pattern}/")
        return "; ".join(reasons)

    def test(self, facts: Facts) -> str | None:
        """Why ``facts`` match, in the operator's words, or None."""
        if not self.for_sql():
            return None
        reasons: list[str] = []
        if self.rows_over is not None and (
                facts.own or not (facts.kinds & ROW_WRITES or facts.reaches)):
            return None  # own: rows the session itself put in tables it created
        if self.statements:
            hit = sorted(facts.kinds & self.statements)
            if not hit:
                return None
            shown = dict.fromkeys(_specific(facts, kind) for kind in hit)  # once each
            reasons.append(" and ".join(shown))
        if self.functions:
            # A name selected in attribute notation may be a call (``Facts.attributes``).
            called = sorted(f for f in facts.functions | facts.attributes
                            if any(fnmatch.fnmatchcase(f, p) for p in self.functions))
            if not called:
                return None
            reasons.append("calls " + ", ".join(called))
        relations = self._relations(facts)
        if self.tables:
            hit = sorted(t for t in relations if any(_table_matches(t, p) for p in self.tables))
            if not hit:
                return None
            reasons.append(f"{self._verb()} " + ", ".join(hit))
        if self.schemas:
            hit = sorted(t for t in relations if t.partition(".")[0] in self.schemas
                         and "." in t)
            if not hit:
                return None
            reasons.append(f"{self._verb()} " + ", ".join(hit))
        if self.regex is not None:
            if not self.regex.search(facts.text):
                return None
            reasons.append(f"text matches /{self.regex.pattern}/")
        return "; ".join(reasons)

    def _relations(self, facts: Facts) -> set[str]:
        if self.access == "read":
            return facts.reads
        if self.access == "write":
            return facts.writes
        return facts.reads | facts.writes

    def _verb(self) -> str:
        return {"read": "reads", "write": "writes"}.get(self.access, "uses")


def _specific(facts: Facts, kind: str) -> str:
    """The most specific kind the statement has within the one a rule names (DROP → DROP
    TABLE), with the tables it writes: what the user reads in the error."""
    best = max((k for k in facts.kinds if k.startswith(kind)), key=len, default=kind)
    if facts.writes:
        best += " " + ", ".join(sorted(facts.writes))
    return best


def _patterns_meet(glob: str, pattern: str) -> bool:
    """Whether a path glob from a command line (``/s*``) may name a path a rule's pattern
    matches (``/srv/*``): one's literal beginning starts the other's. Errs towards yes."""
    def literal(text: str) -> str:
        return re.split(r"[*?\[]", text, maxsplit=1)[0]

    a, b = literal(glob), literal(pattern)
    if b == pattern:  # the rule names one path: the glob must match it
        return fnmatch.fnmatchcase(pattern, glob)
    return a.startswith(b) or b.startswith(a)


def _table_matches(table: str, pattern: str) -> bool:
    """``public.customers`` matches itself and an unqualified ``customers`` (it may resolve
    there through search_path); ``customers`` matches that table in any schema."""
    if fnmatch.fnmatchcase(table, pattern):
        return True
    _, dot, name = table.rpartition(".")
    if dot and "." not in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    if not dot and "." in pattern:
        return fnmatch.fnmatchcase(table, pattern.rpartition(".")[2])
    return False


@dataclass(frozen=True)
class Rule:
    name: str
    action: str
    match: Match
    connections: frozenset[str] | None = None
    groups: frozenset[str] | None = None
    identities: frozenset[str] | None = None
    message: str | None = None

    def applies(self, connection: str, identity: str, groups: frozenset[str]) -> bool:
        return in_scope(self, connection, identity, groups)


class Scoped(Protocol):
    @property
    def connections(self) -> frozenset[str] | None: ...
    @property
    def groups(self) -> frozenset[str] | None: ...
    @property
    def identities(self) -> frozenset[str] | None: ...


def in_scope(rule: Scoped, connection: str, identity: str, groups: frozenset[str]) -> bool:
    """Whether a rule scoped by connections, groups and identities applies to a session: the
    connection must be listed (when any are); then a listed identity, or a listed group, or
    no list of either."""
    if rule.connections is not None and connection not in rule.connections:
        return False
    if rule.identities is not None and identity in rule.identities:
        return True
    if rule.groups is not None:
        return bool(groups & rule.groups)
    return rule.identities is None


@dataclass(frozen=True)
class GuardrailSettings:
    fallback: str = "block"
    review_timeout: float = 300.0
    approver_groups: frozenset[str] = frozenset({"operators"})
    approver_identities: frozenset[str] = frozenset()
    min_approvals: int = 1
    cache_size: int = 10_000
    webhook: str | None = None


@dataclass(frozen=True)
class Verdict:
    action: str
    rule: str | None
    reason: str
    statement: str
    hint: str | None = None
    # A ``rows_over`` rule's verdict: it stands only when the statement writes more than
    # this many rows; otherwise ``under`` does. The gateway counts by running the statement
    # and rolling it back when over. Anything that does not count treats it as ``action``.
    rows_over: int | None = None
    under: Verdict | None = None
    # Whether the statement's own tag counts toward ``rows_over`` (an UPDATE's does); when not,
    # only what the code it calls writes does (``SELECT f()``, an INSERT … VALUES (f())).
    tag_counts: bool = True
    # It calls code of the target's (``Facts.reaches``): in the extended protocol that code
    # may already run when the statement is planned, at its Bind, before any count begins.
    calls_code: bool = False

    @property
    def severity(self) -> int:
        return SEVERITY[self.action]


ALLOW = "allow"


def judge_command(rules: tuple[Rule, ...], facts: CommandFacts,
                  fallback: str = "block") -> Verdict:
    """The first rule that matches what the line is seen to do; and where part of it cannot
    be read, the strictest rule that could match what that part may be, if stricter
    (invariant 9); code nothing could be matched against is never allowed by default."""
    return judge_command_readings(rules, facts, fallback)[0]


def judge_command_readings(rules: tuple[Rule, ...], facts: CommandFacts,
                           fallback: str = "block"
                           ) -> tuple[Verdict, Verdict, Verdict | None]:
    """(the decision, the verdict on what is seen, the strictest verdict on what the unseen
    part could be, or None): ``gatewatch policy explain --command`` shows all three."""
    seen = Verdict(ALLOW, None, facts.describe(), facts.text)
    for rule in rules:
        why = rule.match.test_command(facts)
        if why is not None:
            seen = Verdict(rule.action, rule.name, why, facts.text, rule.message)
            break
    unseen: Verdict | None = None
    if facts.unseen:
        for rule in rules:
            why = rule.match.could_match_command(facts)
            if why is not None and (unseen is None or SEVERITY[rule.action] > unseen.severity):
                unseen = Verdict(rule.action, rule.name, why + " (not seen whole: "
                                 + ", ".join(facts.opaque) + ")", facts.text, rule.message)
    # What the gateway cannot read, where no rule named what the line is seen to do and
    # nothing it could be matched a rule: it could be anything, so it meets the strictest
    # command rule of the session, or the fallback when none could stop it — as DYNAMIC SQL
    # and OPAQUE BODY do on the SQL side. A shell reading the terminal or the channel's
    # input (``bash``, ``sh -s``) is not hidden: the gate judges each line it reads.
    hidden = [o for o in facts.opaque if o != READS_INPUT]
    if seen.rule is None and hidden and (unseen is None or unseen.action == ALLOW):
        could = [r for r in rules if r.match.for_commands() and r.action != ALLOW]
        what = ", ".join(hidden)
        if could:
            strictest = max(could, key=lambda r: SEVERITY[r.action])
            unseen = Verdict(strictest.action, strictest.name,
                             f"not seen: {what}: the gateway cannot read it, so it meets the "
                             "strictest rule that could apply", facts.text, strictest.message)
        else:
            unseen = Verdict(fallback, "fallback", f"not seen: {what}: the gateway cannot "
                             "read it and no rule names it, so the fallback applies",
                             facts.text)
    decided = unseen if unseen is not None and unseen.severity > seen.severity else seen
    return decided, seen, unseen


def judge_statement(rules: tuple[Rule, ...], facts: Facts) -> Verdict:
    """The first rule that matches decides. A ``rows_over`` rule matches only over its count,
    which is not known yet: the rules after it are tried too, and the verdict is the rule's
    action counted (``Verdict.rows_over``) only where it is stricter than theirs, so that no
    other review or block is hidden behind a count that turns out small."""
    counted: list[tuple[Rule, str]] = []
    verdict = Verdict(ALLOW, None, facts.describe(), facts.text)
    for rule in rules:
        why = rule.match.test(facts)
        if why is None:
            continue
        if rule.match.rows_over is not None:
            counted.append((rule, why))
            continue
        verdict = Verdict(rule.action, rule.name, why, facts.text, rule.message)
        break
    if not counted:
        return verdict
    # Several rows_over rules: the strictest action over the smallest count (errs strict).
    rule, why = max(counted, key=lambda c: SEVERITY[c[0].action])
    if SEVERITY[rule.action] <= verdict.severity:
        return verdict
    limit = min(r.match.rows_over or 0 for r, _ in counted)
    # What is counted, in the operator's words: the rule's own criteria when it has others
    # ("UPDATE orders; "), else the statement's writing kinds and tables.
    what = f"{why}; " if why else _writes(facts) + " "
    counted_by_run = countable(facts) or reaches_only(facts)
    kept = undone.why_not_run(facts) if counted_by_run else None
    if kept is not None:
        # Counting runs it (rolled back over the limit): what a rollback does not undo would
        # have happened before anybody approved it, and again once approved (round 18).
        return Verdict(rule.action, rule.name, f"{what}may write more than {limit} rows, and "
                       f"the gateway does not count them by running it: {kept}",
                       facts.text, rule.message)
    if not countable(facts) and reaches_only(facts):
        return Verdict(rule.action, rule.name, f"{what}writes more than {limit} rows",
                       facts.text, rule.message, rows_over=limit, under=verdict,
                       tag_counts=False, calls_code=True)
    if not countable(facts):
        # The tag would not say how many rows it writes: it meets the rule (invariant 9).
        return Verdict(rule.action, rule.name, f"{what}may write more than {limit} rows, and "
                       "the gateway cannot count them (a data-modifying WITH, code that runs "
                       "inside it or later, or not one UPDATE, DELETE, MERGE or INSERT … ON "
                       "CONFLICT DO UPDATE)", facts.text, rule.message)
    return Verdict(rule.action, rule.name, f"{what}writes more than {limit} rows",
                   facts.text, rule.message, rows_over=limit, under=verdict,
                   calls_code=facts.reaches)


def _writes(facts: Facts) -> str:
    """``UPDATE orders``, ``DELETE and UPDATE t``: what a rows_over rule saw write rows."""
    kinds = " and ".join(sorted(facts.kinds & ROW_WRITES))
    if not kinds:
        return "the code it calls (functions, procedures, operators not PostgreSQL's own)"
    return f"{kinds} {', '.join(sorted(facts.writes))}" if facts.writes else kinds


def reaches_only(facts: Facts) -> bool:
    """Whether ``facts`` writes rows only through code it calls (``Facts.reaches``): one
    statement that is not an UPDATE, DELETE, MERGE or TRUNCATE itself (an INSERT's own rows
    are no ``rows_over`` matter), nor transaction control (the gateway's block would change
    what it does) nor COPY (data flows while the gateway counts), nor DECLARE or PREPARE
    (the code runs at a later FETCH, COMMIT or EXECUTE), nor what cannot run inside a
    transaction block (VACUUM, CLUSTER or REINDEX of many tables), with no data-modifying WITH. What
    the code writes is read from the target's counts (``engine.pg.rowcount``)."""
    if not facts.reaches or facts.kinds & ROW_WRITES:
        return False
    stmt = _one_statement(facts.text)
    if stmt is None or isinstance(stmt, ast.TransactionStmt | ast.CopyStmt | ast.DeclareCursorStmt
                  | ast.PrepareStmt):
        return False  # (a cursor's or a prepared statement's code runs later, uncounted)
    if isinstance(stmt, ast.IndexStmt | ast.ReindexStmt) and _concurrently(stmt):
        return False  # cannot run inside the gateway's transaction block
    if not _in_transaction_block(stmt):
        return False
    return _reads_only_in_with(stmt)


def _one_statement(text: str) -> ast.Node | None:
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return None
    return statements[0].stmt if len(statements) == 1 else None


def _reads_only_in_with(stmt: ast.Node) -> bool:
    """No data-modifying WITH (PostgreSQL allows one only at the top)."""
    with_clause = getattr(stmt, "withClause", None)
    ctes = with_clause.ctes if with_clause is not None and with_clause.ctes else ()
    return all(isinstance(cte.ctequery, ast.SelectStmt) for cte in ctes)


# REINDEX of these runs one transaction per table, outside any transaction block.
_REINDEX_MANY = frozenset({"REINDEX_OBJECT_SCHEMA", "REINDEX_OBJECT_SYSTEM",
                           "REINDEX_OBJECT_DATABASE"})


def _in_transaction_block(stmt: ast.Node) -> bool:
    """Whether PostgreSQL lets ``stmt`` run inside the gateway's transaction block: VACUUM
    never does, nor CLUSTER of every table, nor REINDEX of a schema, database or system."""
    if isinstance(stmt, ast.VacuumStmt):
        return not stmt.is_vacuumcmd  # ANALYZE does
    if isinstance(stmt, ast.ClusterStmt):
        return stmt.relation is not None
    if isinstance(stmt, ast.ReindexStmt):
        return str(getattr(stmt.kind, "name", stmt.kind)) not in _REINDEX_MANY
    return True


def _concurrently(stmt: ast.IndexStmt | ast.ReindexStmt) -> bool:
    if isinstance(stmt, ast.IndexStmt):
        return bool(stmt.concurrent)
    return any(isinstance(o, ast.DefElem) and o.defname == "concurrently"
               for o in stmt.params or ())


def countable(facts: Facts) -> bool:
    """Whether the server's CommandComplete counts every row ``facts`` writes: one UPDATE,
    DELETE or MERGE, or INSERT … ON CONFLICT DO UPDATE (its ``INSERT 0 n`` counts the rows
    inserted and updated), with no data-modifying WITH (PostgreSQL allows one only at the
    top) and nothing run inside it that the gateway reads as code of its own
    (``facts.parts``). Triggers, rules and cascades on the table are not seen here: what they
    write is counted at run time (``engine.pg.rowcount``)."""
    if facts.parts or len(facts.writes) != 1:
        return False
    stmt = _one_statement(facts.text)
    if stmt is None:
        return False
    if isinstance(stmt, ast.InsertStmt):
        clause = stmt.onConflictClause
        if clause is None or clause.action != OnConflictAction.ONCONFLICT_UPDATE:
            return False
    elif not isinstance(stmt, (ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)):
        return False
    return _reads_only_in_with(stmt)
