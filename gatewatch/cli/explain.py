"""``policy explain``: what a statement would meet, with no engine running."""

from __future__ import annotations

from engine.config import Config
from engine.guardrail import Guard
from engine.guardrail.commands import classify_command
from engine.guardrail.guard import SessionGuard


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
    """The verdict on a shell command line, with the facts the rules saw."""
    judgement = _guard(config, connection, user).judge_command(line)
    lines = [f"verdict: {judgement.action.upper()}"
             + (f" (rule {judgement.rule})" if judgement.rule else " (no rule matched)")]
    if judgement.parse_error:
        lines.append(f"  cannot be read as shell words: {judgement.parse_error}; the fallback "
                     f"({config.guardrails.fallback}) applies")
    else:
        facts = classify_command(line)
        lines.append(f"  {judgement.verdict.reason}")
        for argv in facts.commands:
            lines.append(f"  runs: {' '.join(argv)[:100]}")
        for reason in facts.opaque:
            lines.append(f"  not seen: {reason}")
    return judgement.action, "\n".join(lines)


def explain(config: Config, connection: str, user: str, sql: str) -> tuple[str, str]:
    """The verdict and a readable explanation of how each statement was judged."""
    judgement = _guard(config, connection, user).judge(sql)
    lines = [f"verdict: {judgement.action.upper()}"
             + (f" (rule {judgement.rule})" if judgement.rule else " (no rule matched)")]
    if judgement.parse_error:
        lines.append(f"  cannot be parsed: {judgement.parse_error}; the fallback "
                     f"({config.guardrails.fallback}) applies")
    else:
        for n, verdict in enumerate(judgement.statements, 1):
            text = " ".join(verdict.statement.split())
            rule = f"rule {verdict.rule}" if verdict.rule else "no rule"
            lines.append(f"  {n}. {verdict.action:<6} {rule}: {verdict.reason}")
            lines.append(f"     {text[:100]}{'…' if len(text) > 100 else ''}")
    if judgement.action != "allow" and len(judgement.statements) > 1:
        lines.append("  the strictest verdict applies to the whole query: no statement of it "
                     "runs unless all may")
    return judgement.action, "\n".join(lines)
