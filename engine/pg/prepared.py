"""The session's prepared statements, as the gateway read them, and what EXECUTE runs.

SQL-level PREPARE and the protocol's Parse fill one namespace on the target (``sqlnames``), so
``Prepared`` keeps both in one ``Names`` table, keyed as the target holds them
(``SessionEncoding``). For a statement that uses names it resolves each ``EXECUTE x`` to the
statement ``x`` names at that point of the stream (``plan``), makes the statement's judgement as
strict as what those run (``strictest``: EXECUTE x is judged as x, every time; a name the gateway
does not know is opaque and meets the policy's fallback), and turns PREPARE / DEALLOCATE /
DISCARD ALL / DECLARE / CLOSE into the pending name changes their command tags confirm
(``changes``). When a name is not known until an earlier segment is answered, ``NotYet`` says
which: the relay then waits.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from engine.guardrail import Judgement, Verdict
from engine.guardrail.guard import SessionGuard
from engine.pg.encoding import SessionEncoding
from engine.pg.names import ALL, Change, Names
from engine.pg.sqlnames import NameUse

_DEPTH = 4  # EXECUTE of a statement that is itself EXECUTE …: followed this deep

Judged = tuple[str, str | None, str | None]  # how a record is judged: verdict, rule, approval
ALLOWED: Judged = ("allow", None, None)


class NotYet(Exception):  # not an error: the caller waits
    """What a name means is not known until the segment ``mark`` is answered."""

    def __init__(self, mark: int) -> None:
        super().__init__(mark)
        self.mark = mark


class Statement:
    """A prepared statement as the gateway read it: what its name runs."""

    __slots__ = ("allowed", "judgement", "parsed", "ran", "text", "typed", "types", "uses")

    def __init__(self, text: str, judgement: Judgement | None,
                 uses: tuple[NameUse, ...] = (), *, typed: bool = False,
                 types: tuple[int, ...] = (), ran: int = 0) -> None:
        self.text = text
        # How many statements the session had sent to run when it was parsed: a literal's
        # meaning (a date under DateStyle) is fixed then, whatever is in force at its Bind,
        # so a held Bind after other statements ran cannot be shown as it reads (``relay``).
        self.ran = ran
        # The settings in force read right after its Parse (or at its PREPARE's approval),
        # where it was one to hold: what its literals mean at any later Bind.
        self.parsed: dict[str, str] | None = None
        self.typed = typed  # its Parse typed a parameter with a type not PostgreSQL's own
        self.types = types  # its parameters' types as its Parse gave them (0: unspecified)
        self.judgement = judgement  # None without a guard
        self.uses = uses  # what it does with names when it runs (EXECUTE x, PREPARE y …)
        # How each Bind is recorded when that needs no judging again: allowed on its own,
        # naming no other statement, and judged without the session's memory (which may have
        # forgotten since: ``SessionGuard.memory``).
        self.allowed: Judged | None = None
        if not uses and (judgement is None or (judgement.action == "allow"
                                               and not judgement.remembered)):
            self.allowed = ALLOWED if judgement is None else ("allow", judgement.rule, None)

    def described(self, types: tuple[int, ...] | None) -> None:
        """The server's ParameterDescription of it: the type of every parameter as the server
        reads it, those its Parse left unspecified (0) included (a driver such as asyncpg
        gives none, then sends binary parameters of the types the server described)."""
        if types is not None and len(types) >= len(self.types) and all(
                given in (0, got) for given, got in zip(self.types, types, strict=False)):
            self.types = types


class Use(NamedTuple):
    """One statement's use of names, resolved."""

    use: NameUse
    key: bytes | None  # the name it prepares, deallocates, declares or closes
    executed: list[tuple[str, Statement | None]]  # what each EXECUTE in it runs
    prepared: Statement | None  # what PREPARE gives the name


def executed(plan: list[Use]) -> list[Statement | None]:
    return [statement for step in plan for _, statement in step.executed]


def notes(plan: list[Use] | None) -> tuple[str, ...]:
    """For the approver: what each EXECUTE runs (this goes with the text, masked like it)."""
    return tuple(f"EXECUTE {name} runs: {statement.text}" for step in plan or ()
                 for name, statement in step.executed if statement is not None)


class Prepared:
    __slots__ = ("encoding", "names")

    def __init__(self, encoding: SessionEncoding) -> None:
        self.encoding = encoding
        self.names: Names[Statement] = Names()

    def plan(self, uses: tuple[NameUse, ...], mark: int,
             guard: SessionGuard | None) -> list[Use]:
        """For each statement that uses names: the name it changes, as the target holds it,
        and what each EXECUTE in it runs, given the statements before it in the same text (all
        one segment: if one fails, the rest does not run). ``NotYet`` when a name is not known
        until an earlier segment is answered."""
        local: dict[bytes, Statement | None] = {}
        cleared = False  # DEALLOCATE ALL earlier in the text
        plan = []
        for use in uses:
            ran: list[tuple[str, Statement | None]] = []
            for name in use.executes:
                key = self.encoding.sql_name(name)
                statement = None
                if key is not None:
                    if key in local or cleared:
                        statement = local.get(key)
                    else:
                        statement, pending = self.names.lookup(key, mark)
                        if pending:
                            raise NotYet(pending)
                ran.append((name, statement))
            changed = use.prepare or use.deallocate or use.cursor
            key = self.encoding.sql_name(changed) if changed is not None else None
            prepared = None
            if use.prepare is not None:
                prepared = Statement(use.body, guard.judge(use.body) if guard else None)
                if key is not None:
                    local[key] = prepared
            elif use.deallocate is not None or use.deallocate_all:
                if key is None:
                    cleared = True
                    local.clear()
                else:
                    local[key] = None
            plan.append(Use(use, key, ran, prepared))
        return plan

    def strictest(self, judgement: Judgement, plan: list[Use], mark: int,
                  guard: SessionGuard, depth: int = 0) -> Judgement:
        """``judgement`` made as strict as what the EXECUTEs in ``plan`` run. The reasons
        name what decided, never the statements' text (they are stored as they are)."""
        decisive = judgement.verdict
        verdicts = list(judgement.statements)
        fallback = guard.settings.fallback
        for step in plan:
            for name, statement in step.executed:
                if statement is None or statement.judgement is None:
                    verdict = Verdict(fallback, "fallback", f"EXECUTE {name}: the gateway does "
                                      "not know this prepared statement, so it cannot judge "
                                      "what it runs", f"EXECUTE {name}")
                elif depth >= _DEPTH or any(u.tag for u in statement.uses):
                    verdict = Verdict(fallback, "fallback", f"EXECUTE {name} runs a statement "
                                      "that executes or prepares others this deep, which the "
                                      "gateway does not follow", statement.text)
                else:
                    inner = statement.judgement
                    if statement.uses:
                        inner = self.strictest(inner, self.plan(statement.uses, mark, guard),
                                               mark, guard, depth + 1)
                    v = inner.verdict
                    verdict = Verdict(v.action, v.rule, f"EXECUTE {name} runs {v.reason}",
                                      statement.text, v.hint)
                verdicts.append(verdict)
                if verdict.severity > decisive.severity:
                    decisive = verdict
        if decisive is judgement.verdict and len(verdicts) == len(judgement.statements):
            return judgement
        return Judgement(decisive.action, decisive, tuple(verdicts), parse_error=(
            judgement.parse_error if decisive is judgement.verdict else None))

    def changes(self, plan: list[Use], mark: int, portals: Names[Any],
                ) -> list[tuple[Names[Any], Change[Any]]] | None:
        """The pending name changes of a statement's SQL, for their command tags to confirm
        in the order the statements run."""
        ops: list[tuple[Names[Any], Change[Any]]] = []
        for use, key, _, prepared in plan:
            tag = use.tag
            if not tag or (use.prepare is not None and key is None):
                continue  # a name not followed: an EXECUTE of it is unknown, a Bind refused
            names: Names[Any] = portals if use.cursor is not None or use.close else self.names
            if key is None or use.deallocate_all or (use.close and use.cursor is None):
                key = ALL
            ops.append((names, names.change(key, prepared, mark, tag)))
        return ops or None
