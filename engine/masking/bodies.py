"""The SQL statements a body of code runs, for lineage to follow what they write.

A function called by a statement, a trigger fired by a write, a rule, a ``DO`` block: each runs
SQL the client's statement does not show. Lineage (``engine.masking.lineage``) follows the
writes inside them as it follows the statement's own, so it needs the statements of a body:

- PL/pgSQL: compiled by PostgreSQL's own PL/pgSQL compiler (``engine.guardrail.procedural``,
  the guard's reading of bodies), every SQL construct of the body as a statement;
- SQL: the body parsed as SQL, or the SQL-standard body (``BEGIN ATOMIC … END``, ``RETURN …``)
  read out of the whole ``CREATE FUNCTION``.

What cannot be read this way answers a reason instead (a string): dynamic SQL (``EXECUTE`` of
a string built at run time), a body the compiler rejects, another language. The caller fails
closed on it: what such code writes, and where, is unknown.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from pglast.parser import ParseError, parse_sql_json

from engine.guardrail.procedural import Unreadable, read

Tree = dict[str, Any]
_SIGNATURES = ("RETURNS trigger", "RETURNS SETOF record", "RETURNS void")


def statements(language: str, source: str, definition: str = "") -> tuple[Tree, ...] | str:
    """The statements of a body (raw parse trees, not to be changed), or why there are none
    the gateway can follow. ``definition``: the whole ``CREATE FUNCTION`` when known."""
    return _read(language.lower(), source, definition)


@functools.lru_cache(maxsize=512)
def _read(language: str, source: str, definition: str) -> tuple[Tree, ...] | str:
    if language == "plpgsql":
        return _plpgsql(source, definition)
    if language == "sql":
        if source.strip():
            trees = _parse(source)
            if trees is None:
                return "a SQL body the gateway cannot parse"
            if not (trees and "CreateFunctionStmt" in trees[0]):
                return trees
            definition = source  # the catalog shows a SQL-standard body as its definition
        return _standard_body(definition)
    return f"code in language {language!r}"


def _plpgsql(source: str, definition: str) -> tuple[Tree, ...] | str:
    tag = "gw"
    while f"${tag}$" in source:
        tag += "x"
    attempts = [definition] if definition else []
    attempts += [f"CREATE FUNCTION gatewatch_body() {returns} LANGUAGE plpgsql"
                 f" AS ${tag}${source}${tag}$" for returns in _SIGNATURES]
    reason = "a PL/pgSQL body the gateway cannot read"
    for statement in attempts:
        try:
            pieces = read(statement, source)
        except Unreadable as exc:
            reason = f"a PL/pgSQL body the gateway cannot read ({exc})"
            continue
        out: list[Tree] = []
        for piece in pieces:
            if piece.dynamic:
                return f"dynamic SQL ({piece.origin}: EXECUTE of {piece.shown[:60]!r})"
            trees = _parse(piece.sql)
            if trees is None:
                return f"a statement of a PL/pgSQL body the gateway cannot parse ({piece.origin})"
            out += trees
        return tuple(out)
    return reason


def _standard_body(definition: str) -> tuple[Tree, ...] | str:
    """A SQL-standard body lives in the function's definition, not in its source."""
    trees = _parse(definition) if definition else None
    if not trees or "CreateFunctionStmt" not in trees[0]:
        return "a SQL-standard function body the catalog did not show"
    found: list[Tree] = []
    _collect(trees[0]["CreateFunctionStmt"].get("sql_body"), found)
    return tuple(found)


def _collect(node: Any, out: list[Tree]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect(item, out)
    elif isinstance(node, dict):
        if len(node) == 1:
            key, value = next(iter(node.items()))
            if key == "ReturnStmt" and isinstance(value, dict):
                out.append({"SelectStmt": {"targetList": [
                    {"ResTarget": {"val": value.get("returnval", {})}}]}})
                return
            if key.endswith("Stmt"):
                out.append(node)
                return
        for value in node.values():
            _collect(value, out)


def _parse(text: str) -> tuple[Tree, ...] | None:
    try:
        tree = orjson.loads(parse_sql_json(text))
    except (ParseError, ValueError, RecursionError):
        return None
    return tuple(s.get("stmt", {}) for s in tree.get("stmts", []))
