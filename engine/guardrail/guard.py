"""Judge whole query strings for one session, with a verdict cache keyed by exact text."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from engine.guardrail import reading
from engine.guardrail.classify import Facts, ParseFailure, classify
from engine.guardrail.commands import CommandFacts, Cwd, classify_command
from engine.guardrail.rules import (
    GuardrailSettings,
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

    @property
    def rule(self) -> str | None:
        return self.verdict.rule


def statement_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SessionGuard:
    """The rules that apply to one session (connection and identity), with its own cache."""

    def __init__(self, rules: tuple[Rule, ...], settings: GuardrailSettings) -> None:
        self.rules = rules
        self.settings = settings
        self._cache: dict[str, Judgement] = {}
        self._commands: dict[str, Judgement] = {}

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
            verdict = judge_command(self.rules, facts)
            judgement = Judgement(verdict.action, verdict, (verdict,), facts=facts)
        if len(self._commands) >= self.settings.cache_size:
            self._commands.pop(next(iter(self._commands)))
        self._commands[key] = judgement
        return judgement

    def judge(self, text: str) -> Judgement:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        judgement = self._judge(text)
        if len(self._cache) >= self.settings.cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[text] = judgement
        return judgement

    def _judge(self, text: str) -> Judgement:
        try:
            statements = classify(text)
        except ParseFailure as exc:
            verdict = Verdict(
                self.settings.fallback, "fallback",
                f"PostgreSQL's parser rejects it ({exc}), so it cannot be classified",
                text,
            )
            return Judgement(verdict.action, verdict, (verdict,), parse_error=str(exc))
        if not statements:
            verdict = Verdict("allow", None, "empty query", text)
            return Judgement("allow", verdict, (verdict,))
        verdicts = tuple(_builtin(facts) or judge_statement(self.rules, facts)
                         for facts in statements)
        decisive = max(verdicts, key=lambda v: v.severity)
        return Judgement(decisive.action, decisive, verdicts)


def _builtin(facts: Facts) -> Verdict | None:
    """Checks that come before any rule (and that no rule can turn off)."""
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

    def for_session(self, connection: str, identity: str, groups: frozenset[str]) -> SessionGuard:
        key = (connection, identity, groups)
        guard = self._sessions.get(key)
        if guard is None:
            applicable = tuple(r for r in self.rules if r.applies(connection, identity, groups))
            guard = self._sessions[key] = SessionGuard(applicable, self.settings)
        return guard
