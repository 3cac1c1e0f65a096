"""Guardrails: judge each statement before it reaches the target.

``classify`` turns SQL into ``Facts`` with PostgreSQL's own parser (pglast; never regexes over
SQL text): statement kinds in the operator's words, functions called anywhere, tables read and
written, and what hides inside CTEs, EXPLAIN ANALYZE, PREPARE and SQL function bodies.
``rules`` holds the rules of the policies file and decides a ``Verdict`` (allow, block or
review) for a statement; ``guard`` applies them to whole query strings with a verdict cache.
"""

from engine.guardrail.classify import Facts, ParseFailure, classify
from engine.guardrail.guard import Guard, Judgement
from engine.guardrail.rules import GuardrailSettings, Rule, Verdict

__all__ = ["Facts", "Guard", "GuardrailSettings", "Judgement", "ParseFailure", "Rule",
           "Verdict", "classify"]
