"""Masking rules as the policies file states them (``masking:``); ``policy`` applies them.

Masking owns this type so that it never imports the policies file's loader: ``engine.config``
validates the rules (detector names, strategies) and builds them, and ``policy`` turns those
that apply to a session into its masking. Rules are scoped like guardrail rules (connections,
groups, identities), with the guardrails' own scope check.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.guardrail.rules import in_scope


@dataclass(frozen=True)
class MaskingRule:
    """What to mask (value detectors, a custom regex, or result columns), how, and for whom.
    An ``exempt`` rule turns masking off for the sessions it applies to (and is recorded)."""

    name: str
    detectors: tuple[str, ...] = ()
    regex: str | None = None
    columns: tuple[str, ...] = ()  # "column", "table.column" or "schema.table.column" globs
    strategy: str = "redact"  # redact | partial | hash | null
    keep_first: int = 0
    keep_last: int = 0
    exempt: bool = False
    connections: frozenset[str] | None = None
    groups: frozenset[str] | None = None
    identities: frozenset[str] | None = None

    def applies(self, connection: str, identity: str, groups: frozenset[str]) -> bool:
        return in_scope(self, connection, identity, groups)
