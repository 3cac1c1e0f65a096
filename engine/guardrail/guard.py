"""Judge whole query strings for one session, with verdict caches by text and by shape.

A statement gets the strictest verdict of itself and of everything that runs inside it (its
``parts``: body statements, rule actions, query strings handed to functions), each judged by
the same rules. What the session created and the target confirmed (its own functions and
tables, ``memory``) is remembered from one text to the next until a statement that could change
what their names mean: a trigger binding one of its functions is judged by that body, and its
writes to its own tables meet no ``rows_over`` rule. Verdicts judged against one memory are not
taken from the caches under another.

Verdicts are cached by exact text, and also by *shape*: the text with its constants replaced
by ``$1, $2…`` (``pglast.parser.normalize``, ~4 µs), so that ``WHERE aid = 1`` and ``WHERE aid
= 2`` are classified once. Two texts of one shape are the same text outside their constants,
so their parse trees differ only in the constants' values. A verdict is kept by shape only
when it provably did not read one: the classifier says so (``Facts.by_shape``: no SET or
set_config, no SQL or names in strings, no bodies, no WHERE decided from its constants), no
rule of the session reads anything but the kinds, names and tables of a statement and its text
(a regular expression, which is tried on each text: the verdicts of one shape are kept by which
expressions match), the text is one statement, and it holds no ``$`` (a parameter or a dollar
quote would make the normalized form ambiguous). Everything else is cached by exact text. Why not
``pglast.parser.fingerprint``: it also forgets what is not a constant (a DO block's body, a
SET's value, ``EXECUTE x`` versus ``EXECUTE y``, ``1::int`` versus ``'f'::regproc``), so equal
fingerprints do not mean equal trees.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pglast.parser import ParseError, normalize

from engine.guardrail import protection, reading
from engine.guardrail.classify import Facts, ParseFailure, catalog_later, classify_text
from engine.guardrail.commands import CommandFacts, Cwd, classify_command
from engine.guardrail.memory import FORGETS, NOTHING, Effects, SessionMemory
from engine.guardrail.rules import (
    SEVERITY,
    GuardrailSettings,
    Match,
    Rule,
    Verdict,
    judge_command,
    judge_statement,
)
from engine.guardrail.shellwords import ShellParseError


@dataclass(frozen=True)
class Judgement:
    """The decision on one query string: the strictest of its statements' verdicts."""

    action: str  # allow | review | block
    verdict: Verdict  # the statement's verdict that decided
    statements: tuple[Verdict, ...]
    parse_error: str | None = None
    facts: CommandFacts | None = None  # a shell command line's facts, when it could be read
    effects: Effects = NOTHING  # what running it does to the session's memory
    remembered: bool = False  # judged against a memory that was not empty
    # Relations its statements name that nothing counts yet (not counted for code they
    # call, nor for their own writes), by bare name, with whether a statement writes them,
    # and whether it evaluates their stored expressions over their rows (ANALYZE, a
    # rewrite): stored code there makes a ``rows_over`` rule count it (``stored_code``).
    touches: frozenset[tuple[str, bool, bool]] = frozenset()
    # Functions its CREATE OR REPLACE FUNCTION statements may replace (``Facts.replaced``).
    replaces: frozenset[str] = frozenset()
    # PostgreSQL's names its statements that nothing counts yet call (``Facts.builtins``):
    # a user's overload of one on the target makes a ``rows_over`` rule count them
    # (``SessionGuard.overloads``).
    builtins: frozenset[str] = frozenset()
    # Those names it gives a user's function, operator or cast (``Facts.overloads``).
    overloading: frozenset[str] = frozenset()

    @property
    def rule(self) -> str | None:
        return self.verdict.rule


def statement_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


LOOKED = 10.0  # seconds a read of the catalog stands for a name it could not find


class StoredCodeCheck(Protocol):
    """Whether a relation carries code of the target's (``engine.pg.storedcode``) that a
    statement reading it, writing it (``writes``) or evaluating its stored expressions over
    its rows (``rows``) runs."""

    def __call__(self, name: str, writes: bool, rows: bool = False) -> bool | None: ...

    def missing(self, name: str, writes: bool, rows: bool = False) -> set[str]:
        """The relations its answer needs that the catalog never read."""
        ...


EFFECTS_RULE = "gateway-masking-effects"
_EFFECTS_HINT = ("Run the effect in a statement that reads no masked column (the masking rules "
                 "cannot hide a lock, a setting, a notification or a transaction id).")


class MaskedEffects(Protocol):
    """Why a query string is refused for effects computed from masked values (None: it is
    not), and the catalog names to read first (``engine.masking.effects``); ``final``: names
    not read count as not known (else they are asked for, a few times at most)."""

    def __call__(self, text: str, *, final: bool) -> tuple[str | None, frozenset[str]]: ...


class _Shared:
    """What the sessions of one connection and identity share: their rules, and the verdicts
    judged against no memory of a session's own objects."""

    def __init__(self, rules: tuple[Rule, ...], settings: GuardrailSettings) -> None:
        self.cache: dict[str, Judgement] = {}
        # normalized text → (characters before and after its statement, verdicts by which
        # of the session's regular expressions match the statement)
        self.shapes: dict[str, tuple[int, int, dict[tuple[bool, ...], Judgement]]] = {}
        self.commands: dict[str, Judgement] = {}
        self.version = -1
        self.set(rules, settings)

    def set(self, rules: tuple[Rule, ...], settings: GuardrailSettings) -> None:
        self.version += 1  # what a session kept at hand (``SessionGuard.judge``) is old
        self.rules, self.settings = rules, settings
        self.counts = any(r.match.rows_over is not None for r in rules)
        self.by_shape = shape_blind(rules)
        self.patterns = _patterns(rules)
        self.cache.clear()
        self.shapes.clear()
        self.commands.clear()


class SessionGuard:
    """The rules that apply to one session (connection and identity), with caches shared by
    the sessions of that connection and identity (``fork``), and the session's own memory:
    while it holds something, its verdicts are cached apart."""

    def __init__(self, rules: tuple[Rule, ...], settings: GuardrailSettings,
                 shared: _Shared | None = None) -> None:
        self._shared = shared if shared is not None else _Shared(rules, settings)
        self._own_cache: dict[str, Judgement] = {}
        self._own_shapes: dict[str, tuple[int, int, dict[tuple[bool, ...], Judgement]]] = {}
        self.memory = SessionMemory()
        # The session chose its search_path at login: unqualified function names never
        # match what it created (``classify_text``).
        self.qualified_only = False
        # A schema may come before pg_catalog in the session's search_path: names without
        # a schema may be users' functions (``classify.shadows``).
        self.shadowed = False
        self._generation = 0  # the memory's generation the own caches were filled under
        self._last: tuple[str, Judgement | None, tuple[int, int, int]] = ("", None,
                                                                        (-1, -1, -1))
        # Whether a relation (bare name; written or only read) carries code of the target's
        # that a statement naming it runs (triggers, rules, defaults, checks, a view's
        # query): True, False, or None when not known (``engine.pg.storedcode``). None: no
        # catalog to ask (a connection without column masking), and nothing is asked.
        self.stored_code: StoredCodeCheck | None = None
        # Whether a function of that name exists on the target (None: not known yet): one
        # replaced may be what a policy, a CHECK or a default calls, so replacing it is
        # reviewed as DISABLE PROTECTION; a new one (a migration's) is not.
        self.function_exists: Callable[[str], bool | None] | None = None
        # Whether the target has a function, aggregate or operator of that name outside
        # pg_catalog (for ``type:t``, a user's cast into t), as the catalog read it within its
        # time to live (``fresh``) or as last read: PostgreSQL's name may then run a user's
        # code (``public.lower(int)`` for ``lower(5)``). None: not known (never read). None
        # for the hook: no catalog to ask, and nothing is asked.
        self.overloads: Callable[[str, bool], bool | None] | None = None
        # Refuses a statement that reads a masked column and has effects other sessions
        # observe (``engine.masking.effects``). None: no column masking in this session.
        self.masked_effects: MaskedEffects | None = None
        # Names the session itself gave a user's code (``*``: any, after CREATE EXTENSION):
        # counted whatever the catalog last read.
        self._overloading: set[str] = set()
        # Relations the catalog was asked to read for this session (``unread``, ``looked``).
        self._looked: dict[str, float] = {}  # name → when it was read (monotonic)
        # Judgements with stored code counted, by text and the relations that carry it.
        self._counted: dict[tuple[str, frozenset[str], frozenset[str], tuple[int, int, int]],
                            Judgement] = {}

    def fork(self) -> SessionGuard:
        """A guard for another session of the same rules: the caches shared, a memory of
        its own (a session never sees what another created)."""
        return SessionGuard(self.rules, self.settings, self._shared)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._shared.rules

    @property
    def settings(self) -> GuardrailSettings:
        return self._shared.settings

    @property
    def counts(self) -> bool:
        """Whether a rule of the session counts rows (``rows_over``)."""
        return self._shared.counts

    @property
    def _by_shape(self) -> bool:
        return self._shared.by_shape

    @property
    def _patterns(self) -> tuple[re.Pattern[str], ...]:
        return self._shared.patterns

    @property
    def _commands(self) -> dict[str, Judgement]:
        return self._shared.commands

    @property
    def _blank(self) -> bool:
        """Judged as any session of these rules would be: nothing remembered."""
        return not self.memory.known and not self.qualified_only and not self.shadowed

    @property
    def _cache(self) -> dict[str, Judgement]:
        return self._shared.cache if self._blank else self._own_cache

    @property
    def _shapes(self) -> dict[str, tuple[int, int, dict[tuple[bool, ...], Judgement]]]:
        return self._shared.shapes if self._blank else self._own_shapes

    def replace(self, rules: tuple[Rule, ...], settings: GuardrailSettings) -> None:
        """A reloaded policy: the next statement is judged by ``rules`` (verdicts remembered
        under the old ones are forgotten), in every session sharing these rules."""
        self._shared.set(rules, settings)
        self._own_cache.clear()
        self._own_shapes.clear()
        self._last = ("", None, (-1, -1, -1))

    def judge_command(self, line: str, cwd: Cwd = None) -> Judgement:
        """A shell command line (SSH exec, or a line entered in an interactive shell);
        ``cwd``: the directories it may run in, for its relative paths (None: unknown)."""
        key = line if cwd is None else f"{line}\0{sorted(cwd)}"
        cached = self._commands.get(key)
        if cached is not None:
            return cached
        try:
            facts = classify_command(line, cwd)
        except ShellParseError as exc:
            verdict = Verdict(self.settings.fallback, "fallback",
                              f"the command cannot be read as shell words ({exc})", line)
            judgement = Judgement(verdict.action, verdict, (verdict,), parse_error=str(exc))
        else:
            verdict = judge_command(self.rules, facts, self.settings.fallback)
            judgement = Judgement(verdict.action, verdict, (verdict,), facts=facts)
        if len(self._commands) >= self.settings.cache_size:
            self._commands.pop(next(iter(self._commands)))
        self._commands[key] = judgement
        return judgement

    def started(self, text: str) -> tuple[Effects, int] | None:
        """``text`` goes to the target: what it will do to the memory once it completes
        (None: nothing), forgetting now if it forgets."""
        judgement = self.judge(text)
        effects = judgement.effects
        self._overloading |= judgement.overloading
        if effects.qualified_only and not self.qualified_only:
            self.qualified_only = True
            self.memory.forget()
            self._own_cache.clear()  # judged otherwise from now on: nothing cached stands
            self._own_shapes.clear()
        if effects.shadowed and not self.shadowed:
            self.shadowed = True
            self._own_cache.clear()
            self._own_shapes.clear()
        epoch = self.memory.started(effects)
        return (effects, epoch) if effects.adds else None

    def search_path_seen(self, value: str) -> None:
        """The session's search_path as read from the target after a counted statement
        (code it ran may have changed it unseen): a schema ahead of pg_catalog shadows
        PostgreSQL's names from now on (``shadowed`` is never taken back)."""
        if not self.shadowed and catalog_later(value):
            self.shadowed = True
            self._own_cache.clear()
            self._own_shapes.clear()

    def finished(self, started: tuple[Effects, int]) -> None:
        """What ``started`` returned for a text that completed without an error."""
        self.memory.finished(*started)

    def judge(self, text: str, *, typed: bool = False) -> Judgement:
        """The judgement of ``text``; the last one is kept at hand, as the relay asks for the
        same text again when it starts the statement (``started``). ``typed``: its Parse gave
        a parameter a type that is not PostgreSQL's own, whose input (a domain's CHECKs, the
        code they call) runs at the Bind: the statement is judged as calling code."""
        state = self._state()
        if typed:
            key = (text, frozenset[str](), frozenset({"\0typed"}), state)
            kept = self._counted.get(key)
            if kept is None:
                kept = self._judge(text, typed=True)[0]
                _put(self._counted, key, kept, self.settings.cache_size)
            return self._effects_refused(text, kept)
        judgement = self._plain(text, state)
        if judgement.replaces and self.function_exists is not None:
            replaced = frozenset(n for n in judgement.replaces if self._exists(n))
            if replaced:
                key = (text, replaced, frozenset({"\0replaces"}), state)
                kept = self._counted.get(key)
                if kept is None:
                    kept = self._judge(text, replaced=replaced)[0]
                    _put(self._counted, key, kept, self.settings.cache_size)
                return self._effects_refused(text, kept)
        overloaded = self._overloaded(judgement)
        if overloaded:
            key = (text, overloaded, frozenset({"\0overloads"}), state)
            kept = self._counted.get(key)
            if kept is None:
                kept = self._judge(text, overloaded=overloaded)[0]
                _put(self._counted, key, kept, self.settings.cache_size)
            judgement = kept
        if judgement.touches and self.stored_code is not None and judgement.action != "block":
            judgement = self._stored_code_counted(text, judgement, self.stored_code, state,
                                                  overloaded)
        return self._effects_refused(text, judgement)

    def _effects_refused(self, text: str, judgement: Judgement) -> Judgement:
        """``judgement``, or a refusal when the statement computes effects other sessions
        observe from a masked value (``masked_effects``). Names its answer needs that were
        not read count as not known: the relay has them read first (``unread``)."""
        if self.masked_effects is None or judgement.action == "block":
            return judgement
        why, _ = self.masked_effects(text, final=True)
        if why is None:
            return judgement
        verdict = Verdict("block", EFFECTS_RULE, why, text, _EFFECTS_HINT)
        return dataclasses.replace(judgement, action="block", verdict=verdict,
                                   statements=(verdict,), touches=frozenset(),
                                   builtins=frozenset())

    def _overloaded(self, judgement: Judgement) -> frozenset[str]:
        """The names of PostgreSQL's that ``judgement``'s statements call and a user's code
        may answer to: the session gave one to its code, or the catalog shows one outside
        pg_catalog; not known (never read, or its read failed) counts too (fail closed).
        A name the relay did not have read just before (a Bind judged again: nothing is
        looked up there) is taken as last read."""
        if not judgement.builtins or self.overloads is None or judgement.action == "block":
            return frozenset()
        if "*" in self._overloading:
            return judgement.builtins
        found = set(judgement.builtins & self._overloading)
        for name in judgement.builtins - found:
            answer = self.overloads(name, True)
            if answer is None and not self._just_looked(f"fn:{name}"):
                answer = self.overloads(name, False)
            if answer is not False:
                found.add(name)
        return frozenset(found)

    def _exists(self, function: str) -> bool:
        """Whether a function of that name (a relation: ``rel:name``) exists on the target;
        not known after it was asked for (the read failed): taken as existing."""
        assert self.function_exists is not None
        found = self.function_exists(function)
        return found if found is not None else self._just_looked(_looked_up_as(function))

    def _state(self) -> tuple[int, int, int]:
        return (self.memory.generation, int(self.qualified_only) + 2 * int(self.shadowed),
                self._shared.version)

    def _plain(self, text: str, state: tuple[int, int, int]) -> Judgement:
        """The judgement of ``text`` before stored code is counted (``touches`` in it)."""
        last, kept, at = self._last
        if kept is not None and text == last and state == at:
            return kept
        judgement = self._judged(text)
        self._last = (text, judgement, state)
        return judgement

    def unread(self, text: str) -> frozenset[str]:
        """Relations ``text`` names whose stored code matters to its verdict, and functions it
        may replace (as ``fn:name``), that the catalog never read and this session has not had
        read yet: the relay has them read first (``looked``). Those still unknown after are
        counted as carrying code, or taken as existing."""
        stored_code = self.stored_code
        judgement = self._plain(text, self._state())
        missing: set[str] = set()
        if self.function_exists is not None:
            missing |= {_looked_up_as(n) for n in judgement.replaces
                        if self.function_exists(n) is None}
        if self.overloads is not None and judgement.action != "block":
            # Never read: read first. Read a minute ago: as last read, read again meanwhile.
            missing |= {f"fn:{n}" for n in judgement.builtins - self._overloading
                        if self.overloads(n, False) is None}
        if stored_code is not None and judgement.touches and judgement.action != "block":
            for name, writes, rows in judgement.touches:
                missing |= stored_code.missing(name, writes, rows)
        out = frozenset(n for n in missing if not self._just_looked(n))
        if self.masked_effects is not None and judgement.action != "block":
            # (it bounds its own asking: a catalog cache emptied by DDL is read again)
            out |= self.masked_effects(text, final=False)[1]
        return out

    def looked(self, names: frozenset[str]) -> None:
        """The catalog was asked to read ``names`` (whatever it found)."""
        if len(self._looked) > 10_000:
            self._looked.clear()
        now = time.monotonic()
        for name in names:
            self._looked[name] = now

    def _just_looked(self, name: str) -> bool:
        """Whether ``name`` was read moments ago: still not known, the read failed (a name
        read long ago and expired since is read again)."""
        at = self._looked.get(name)
        return at is not None and time.monotonic() - at < LOOKED

    def _stored_code_counted(self, text: str, judgement: Judgement,
                             stored_code: StoredCodeCheck, state: tuple[int, int, int],
                             overloaded: frozenset[str] = frozenset()) -> Judgement:
        """``judgement`` again with the statements that reach relations carrying code counted
        as ``SELECT f()`` is (``Facts.reaches``): what that code writes shows only in the
        target's counts. A relation the catalog never read (since the engine started, or its
        read failed) counts as carrying code — but for a COPY, DECLARE or PREPARE, which
        cannot be counted and would be held (ARCHITECTURE.md's known gaps)."""
        code: set[str] = set()
        unknown: set[str] = set()
        for name, writes, rows in judgement.touches:
            runs = stored_code(name, writes, rows)
            if runs is None and self._just_looked(name):
                # Asked for and still not known: the read failed (a lock held on a table
                # the view reads timed it out). Fail closed: held where it cannot be counted.
                code.add(name)
            elif runs is None:
                unknown.add(name)
            elif runs:
                code.add(name)
        if not code and not unknown:
            return judgement
        key = (text, frozenset(code),
               frozenset(unknown) | {f"\0overloads:{n}" for n in overloaded}, state)
        counted = self._counted.get(key)
        if counted is None:
            counted = self._judge(text, key[1], frozenset(unknown), overloaded=overloaded)[0]
            _put(self._counted, key, counted, self.settings.cache_size)
        return counted

    def _judged(self, text: str) -> Judgement:
        if self.memory.generation != self._generation:
            self._generation = self.memory.generation
            self._own_cache.clear()
            self._own_shapes.clear()
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        shape = self._shape(text)
        if shape is not None:
            entry = self._shapes.get(shape)
            if entry is not None:
                head, tail, verdicts = entry
                cached = verdicts.get(self._matches(text[head:len(text) - tail]))
                if cached is not None:
                    return cached
        judgement, cacheable, span = self._judge(text)
        if not cacheable:
            return judgement
        if shape is None or span is None:
            _put(self._cache, text, judgement, self.settings.cache_size)
            return judgement
        # Kept as the shape's verdict: the statement it names is the normalized text, never
        # one session's constants. Texts of one shape have the same characters around their
        # statement (constants sit inside it), so the span found here serves them all.
        verdict = dataclasses.replace(judgement.verdict, statement=shape)
        judgement = dataclasses.replace(judgement, verdict=verdict, statements=(verdict,))
        head, tail = span[0], len(text) - span[1]
        entry = self._shapes.get(shape)
        if entry is None:
            entry = (head, tail, {})
            _put(self._shapes, shape, entry, self.settings.cache_size)
        if entry[:2] == (head, tail):
            entry[2][self._matches(text[span[0]:span[1]])] = judgement
        # The same text again (a prepared statement, BEGIN) needs no normalizing: ~0.1 µs.
        _put(self._cache, text, judgement, self.settings.cache_size)
        return judgement

    def _matches(self, statement: str) -> tuple[bool, ...]:
        """Which of the session's regular expressions find something in the statement: all
        that a rule reads and that may differ between texts of one shape."""
        return tuple(pattern.search(statement) is not None for pattern in self._patterns)

    def _shape(self, text: str) -> str | None:
        """The text with its constants as $1, $2…, or None when verdicts on it may not be
        shared by shape (see the module's docstring)."""
        if not self._by_shape or "$" in text:
            return None
        try:
            return normalize(text)
        except (ParseError, UnicodeError, ValueError):
            return None  # classify says why, and the verdict is kept by exact text

    def _judge(self, text: str, code: frozenset[str] = frozenset(),
               unknown: frozenset[str] = frozenset(), *,
               replaced: frozenset[str] = frozenset(), typed: bool = False,
               overloaded: frozenset[str] = frozenset(),
               ) -> tuple[Judgement, bool, tuple[int, int] | None]:
        """(the judgement, whether it may be cached, and where its statement sits when it is
        one statement whose verdict may be kept by shape). ``code``, ``unknown``: relations
        that carry code of the target's, or may (``_stored_code_counted``)."""
        known = self.memory.known
        try:
            statements, effects = classify_text(text, 0, known,
                                                qualified_only=self.qualified_only,
                                                shadowed=self.shadowed)
        except ParseFailure as exc:
            verdict = Verdict(
                self.settings.fallback, "fallback",
                f"PostgreSQL's parser rejects it ({exc}), so it cannot be classified",
                text,
            )
            return (Judgement(verdict.action, verdict, (verdict,), parse_error=str(exc),
                              effects=FORGETS), True, None)
        if not statements:  # forgets: an unknown portal's Execute shows as a comment
            verdict = Verdict("allow", None, "empty query", text)
            return Judgement("allow", verdict, (verdict,), effects=FORGETS), True, None
        fallback = self.settings.fallback
        if code or unknown:
            statements = [_reaching(facts, code, unknown) for facts in statements]
        if replaced:
            statements = [_replacing(facts, replaced) for facts in statements]
        if typed:
            statements = [_typed(facts) for facts in statements]
        if overloaded:
            statements = [_overloading(facts, overloaded) for facts in statements]
        verdicts = tuple(judge_facts(self.rules, facts, fallback) for facts in statements)
        # Of equal strength, a verdict that stands whatever the count wins over a rows_over
        # one (which may come to nothing).
        decisive = max(verdicts, key=lambda v: (v.severity, v.rows_over is None))
        one = statements[0]
        by_shape = len(statements) == 1 and one.by_shape and not one.settings
        touches = (frozenset(_touches(statements, verdicts))
                   if self._shared.counts and not (code or unknown or typed) else frozenset())
        replaces = (frozenset(n for f in statements for n in f.replaced)
                    if not replaced else frozenset())
        builtins = (frozenset(_builtins(statements, verdicts))
                    if self._shared.counts and not (code or unknown or typed or overloaded)
                    else frozenset())
        judgement = Judgement(decisive.action, decisive, verdicts, effects=effects,
                              remembered=bool(known), touches=touches, replaces=replaces,
                              builtins=builtins,
                              overloading=frozenset(n for f in statements for n in f.overloads))
        return judgement, True, one.span if by_shape else None


# Statements whose relations' stored code runs: rows written (triggers, rules, defaults,
# checks) or read (a view's query). An UPDATE or DELETE is counted for its own rows, and what
# its table's code writes is counted with them (``engine.pg.rowcount``).
_RUNS_STORED_CODE = frozenset({"INSERT", "SELECT", "COPY", "MERGE", "REFRESH MAT VIEW"})
# Statements a count cannot wrap (the code runs later, or data flows while counting, or it
# cannot run in a transaction block): marked as reaching code they are held, so only for
# code known to be there.
_HELD_WHEN_REACHING = frozenset({"COPY", "DECLARE CURSOR", "PREPARE", "VACUUM"})


def _touches(statements: list[Facts], verdicts: tuple[Verdict, ...]
             ) -> Iterator[tuple[str, bool, bool]]:
    """The relations of statements that nothing counts yet, whether each is written, and
    whether its stored expressions are evaluated over its rows."""
    for facts, verdict in zip(statements, verdicts, strict=True):
        if facts.reaches or facts.own or verdict.rows_over is not None:
            continue
        for name in facts.evaluated_names:
            yield name, False, True
        if not facts.kinds & _RUNS_STORED_CODE:
            continue
        for name in facts.written_names:
            yield name, True, False
        for name in facts.read_names - facts.written_names:
            yield name, False, False


def _builtins(statements: list[Facts], verdicts: tuple[Verdict, ...]) -> Iterator[str]:
    """PostgreSQL's names that statements nothing counts yet call (``Judgement.builtins``)."""
    for facts, verdict in zip(statements, verdicts, strict=True):
        if not (facts.reaches or facts.own or verdict.rows_over is not None):
            yield from facts.builtins


def _overloading(facts: Facts, overloaded: frozenset[str]) -> Facts:
    """``facts`` marked as calling code of the target's when a name of PostgreSQL's it calls
    may be a user's overload (``overloaded``): counted as ``SELECT f()`` is."""
    if (facts.reaches and not facts.own) or not facts.builtins & overloaded:
        return facts
    return dataclasses.replace(facts, reaches=True, own=False)


def _replacing(facts: Facts, replaced: frozenset[str]) -> Facts:
    """``facts`` of a CREATE OR REPLACE FUNCTION of a function that exists on the target: it
    turns protection off (what calls it — a policy, a CHECK, a default — now does otherwise)."""
    if not facts.replaced & replaced:
        return facts
    return dataclasses.replace(facts, kinds=facts.kinds | {protection.OFF})


def _reaching(facts: Facts, code: frozenset[str], unknown: frozenset[str]) -> Facts:
    """``facts`` marked as running code of the target's when a relation it names carries
    some (``code``), or may (``unknown``; see ``_stored_code_counted``)."""
    if facts.reaches or facts.own:
        return facts
    names = set(facts.evaluated_names)
    if facts.kinds & _RUNS_STORED_CODE:
        names |= facts.written_names | facts.read_names
    maybe = unknown if not facts.kinds & _HELD_WHEN_REACHING else frozenset()
    if names & code or names & maybe:
        return dataclasses.replace(facts, reaches=True)
    return facts


def _looked_up_as(name: str) -> str:
    """How the relay has a name of ``Judgement.replaces`` read: ``rel:t`` as the relation
    ``t``, a function ``f`` as ``fn:f``."""
    return name[4:] if name.startswith("rel:") else f"fn:{name}"


def _typed(facts: Facts) -> Facts:
    """``facts`` of a statement whose parameters' types run code of the target's at its Bind
    (a domain's CHECKs): it calls code, whatever tables it names (own ones too)."""
    if facts.reaches and not facts.own:
        return facts
    return dataclasses.replace(facts, reaches=True, own=False)


def _put(cache: dict[_K, _V], key: _K, value: _V, size: int) -> None:
    if len(cache) >= size:
        cache.pop(next(iter(cache)))  # the oldest entry
    cache[key] = value


_K = TypeVar("_K")
_V = TypeVar("_V")

# What a rule may look at for its verdict to be shared by texts of one shape: the kinds,
# functions, tables and schemas of a statement (and a command's facts, which SQL never has);
# a regular expression on the text is tried on each text (``SessionGuard._matches``).
# ``rows_over`` too: whether a statement may be counted is read from its tree without its
# constants' values (``rules.countable``); the count itself is taken at each run.
_SHAPE_BLIND_FIELDS = ("statements", "functions", "tables", "schemas", "access", "regex",
                       "commands", "programs", "paths", "opaque", "rows_over")


def _patterns(rules: tuple[Rule, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(r.match.regex for r in rules if r.match.regex is not None and r.match.for_sql())


def shape_blind(rules: tuple[Rule, ...]) -> bool:
    """Whether no rule reads what differs between texts of one shape, but through a regular
    expression. A criterion this list does not know (one added later) makes it False, so a
    new kind of rule is kept by exact text until someone decides otherwise."""
    for rule in rules:
        match = rule.match
        known = Match(**{f: getattr(match, f) for f in _SHAPE_BLIND_FIELDS})
        if known != match:
            return False
    return True


# Kinds of what the gateway cannot read (ARCHITECTURE.md invariant 9).
OPAQUE_KINDS = frozenset({"DYNAMIC SQL", "OPAQUE BODY"})


def judge_facts(rules: tuple[Rule, ...], facts: Facts, fallback: str = "block") -> Verdict:
    """The strictest verdict of a statement and of everything that runs inside it. A part
    that decides is named in the reason; the verdict stays the statement's."""
    verdict = _builtin(facts) or judge_statement(rules, facts)
    if verdict.rule is None and facts.kinds & OPAQUE_KINDS:
        verdict = _unseen(rules, facts, fallback)
    for part in facts.parts:
        inner = judge_facts(rules, part, fallback)
        if inner.severity > verdict.severity:
            verdict = Verdict(inner.action, inner.rule, f"{part.origin}: {inner.reason}",
                              facts.text, inner.hint)
    return verdict


def _unseen(rules: tuple[Rule, ...], facts: Facts, fallback: str) -> Verdict:
    """No rule names what the gateway cannot read: it could be anything, so it meets the
    strictest SQL rule of the session (ARCHITECTURE.md invariant 9), or the fallback when no
    rule could stop it. Never allowed by default."""
    what = " and ".join(sorted(facts.kinds & OPAQUE_KINDS))
    could = [r for r in rules if r.match.for_sql() and r.action != "allow"]
    if not could:
        return Verdict(fallback, "fallback", f"{what}: the gateway cannot read it and no rule "
                       "names it, so the fallback applies", facts.text)
    strictest = max(could, key=lambda r: SEVERITY[r.action])  # the first of the strictest
    return Verdict(strictest.action, strictest.name,
                   f"{what}: the gateway cannot read it, so it meets the strictest rule that "
                   "could apply", facts.text, strictest.message)


def parts_judged(rules: tuple[Rule, ...], facts: Facts, fallback: str = "block",
                 depth: int = 1) -> list[tuple[int, Facts, Verdict]]:
    """Each part inside ``facts`` (depth first) with its own verdict: what ``policy explain``
    shows for a CREATE FUNCTION, DO block or CREATE RULE."""
    out: list[tuple[int, Facts, Verdict]] = []
    for part in facts.parts:
        out.append((depth, part, judge_facts(rules, part, fallback)))
        out.extend(parts_judged(rules, part, fallback, depth + 1))
    return out


def _builtin(facts: Facts) -> Verdict | None:
    """Checks that come before any rule (and that no rule can turn off). A setting that
    changes how SQL is read is refused wherever it is changed: now, in code stored to run
    later (a body that turns standard_conforming_strings off, then calls another body, which
    the server then reads differently inside one statement), or for sessions to come."""
    if facts.settings:
        why = reading.unsafe_change(facts.settings)
        if why is not None:
            return Verdict("block", reading.RULE,
                           f"{why}: the gateway must read SQL exactly as the server does",
                           facts.text)
    return None


class Guard:
    """All rules of the policies file; hands each session the rules that apply to it."""

    def __init__(self, rules: tuple[Rule, ...], settings: GuardrailSettings) -> None:
        self.rules = rules
        self.settings = settings
        self._sessions: dict[tuple[str, str, frozenset[str]], SessionGuard] = {}

    def replace(self, rules: tuple[Rule, ...], settings: GuardrailSettings) -> None:
        """A reloaded policy, put in force in place: every session's guard (live sessions hold
        theirs) gets the rules that now apply to it, from its next statement."""
        self.rules, self.settings = rules, settings
        for (connection, identity, groups), guard in self._sessions.items():
            guard.replace(tuple(r for r in rules if r.applies(connection, identity, groups)),
                          settings)

    def for_session(self, connection: str, identity: str, groups: frozenset[str]) -> SessionGuard:
        key = (connection, identity, groups)
        guard = self._sessions.get(key)
        if guard is None:
            applicable = tuple(r for r in self.rules if r.applies(connection, identity, groups))
            guard = self._sessions[key] = SessionGuard(applicable, self.settings)
        return guard.fork()
