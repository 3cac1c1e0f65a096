"""``policy explain``: what a statement would meet, with no engine running."""

from __future__ import annotations

from engine import shown
from engine.config import Config
from engine.guardrail import Guard
from engine.guardrail.classify import ParseFailure, classify
from engine.guardrail.guard import SessionGuard, parts_judged
from engine.guardrail.rules import judge_command_readings


class ExplainError(Exception):
    pass


def _guard(config: Config, connection: str, user: str) -> SessionGuard:
    if config.connection(connection) is None:
        known = ", ".join(c.name for c in config.connections)
        raise ExplainError(f"no connection {connection!r} (known: {known})")
    identity = next((i for i in config.identities if i.name == user), None)
    if identity is None:
        raise ExplainError(f"no identity {user!r} in {config.path}")
    return Guard(config.rules, config.guardrails).for_session(connection, user, identity.groups)


def explain_command(config: Config, connection: str, user: str,
                    line: str) -> tuple[str, str]:
    """The verdict on a shell command line: the facts the rules saw, how words the gateway
    expanded were read, and the readings it weighed — what the line is seen to do, and what
    its unread part could be (the strictest rule that could match) — with the one that
    decided."""
    guard = _guard(config, connection, user)
    judgement = guard.judge_command(line)
    lines = [f"verdict: {judgement.action.upper()}"
             + (f" (rule {judgement.rule})" if judgement.rule else " (no rule matched)")]
    facts = judgement.facts
    if judgement.parse_error or facts is None:
        lines.append(f"  cannot be read as shell words: {judgement.parse_error}; the fallback "
                     f"({config.guardrails.fallback}) applies")
        return judgement.action, "\n".join(lines)
    lines.append(f"  {judgement.verdict.reason}")
    for argv in facts.commands:
        lines.append(f"  runs: {' '.join(argv)[:100]}")
    for reading in facts.readings:
        lines.append(f"  read: {reading[:100]}")
    for reason in facts.opaque:
        lines.append(f"  not seen: {reason}")
    decided, seen, unseen = judge_command_readings(guard.rules, facts)
    lines.append("  readings:")
    for name, verdict in (("as seen", seen), ("as it could be", unseen)):
        if verdict is None:
            continue
        rule = f"rule {verdict.rule}" if verdict.rule else "no rule"
        mark = "decided" if verdict is decided else "       "
        lines.append(f"    {mark} {name}: {verdict.action} ({rule}): {verdict.reason}"[:200])
    return judgement.action, "\n".join(lines)


def explain(config: Config, connection: str, user: str, sql: str) -> tuple[str, str]:
    """The verdict and a readable explanation of how each statement was judged, and, for a
    statement that holds code (CREATE FUNCTION, DO, CREATE RULE, a trigger, a query string
    handed to a function), how each statement inside it was judged."""
    guard = _guard(config, connection, user)
    judgement = guard.judge(sql)
    lines = [f"verdict: {judgement.action.upper()}"
             + (f" (rule {judgement.rule})" if judgement.rule else " (no rule matched)")]
    if judgement.parse_error:
        lines.append(f"  cannot be parsed: {judgement.parse_error}; the fallback "
                     f"({config.guardrails.fallback}) applies")
    else:
        try:
            statements = classify(sql)
        except ParseFailure:  # judged already; cannot happen for text that parsed
            statements = []
        for n, verdict in enumerate(judgement.statements, 1):
            rule = f"rule {verdict.rule}" if verdict.rule else "no rule"
            lines.append(f"  {n}. {verdict.action:<6} {rule}: {verdict.reason}")
            lines.append(f"     {_shown(verdict.statement)}")
            facts = statements[n - 1] if n <= len(statements) else None
            inside = (parts_judged(guard.rules, facts, config.guardrails.fallback)
                      if facts is not None else [])
            if inside:
                lines.append("     inside it:")
            for depth, part, inner in inside:
                pad = "     " + "  " * depth
                rule = f"rule {inner.rule}" if inner.rule else "no rule"
                lines.append(f"{pad}- {inner.action:<6} {rule}: {part.origin}")
                lines.append(f"{pad}  {_shown(part.text)}")
    if judgement.action != "allow" and len(judgement.statements) > 1:
        lines.append("  the strictest verdict applies to the whole query: no statement of it "
                     "runs unless all may")
    return judgement.action, "\n".join(lines)


def _shown(text: str) -> str:
    return shown.one_line(text, 100)  # line breaks marked, never re-flowed
