"""Guardrails: judge each statement before it reaches the target.

``classify`` turns SQL into ``Facts`` with PostgreSQL's own parser (pglast; never regexes over
SQL text): statement kinds in the operator's words (``kinds``), functions called or bound
anywhere, tables read and written, and what hides inside CTEs, EXPLAIN ANALYZE, PREPARE and
code that runs later — SQL and PL/pgSQL bodies, DO blocks, rules, triggers (``procedural``) and
query strings handed to functions (``querytext``) — each judged as a part of its statement.
``bounds`` decides whether a write's condition can tell its rows apart (WITHOUT WHERE);
``literals`` reads constants. ``rules`` holds the rules of the policies file and decides a
``Verdict`` (allow, block or review) for a statement; ``guard`` applies them to whole query
strings (the strictest verdict of each statement and what runs inside it) with a verdict
cache; ``reading`` refuses what would make the server read SQL differently from the guard.
"""

from engine.guardrail.classify import Facts, ParseFailure, classify
from engine.guardrail.guard import Guard, Judgement
from engine.guardrail.rules import GuardrailSettings, Rule, Verdict

__all__ = ["Facts", "Guard", "GuardrailSettings", "Judgement", "ParseFailure", "Rule",
           "Verdict", "classify"]
