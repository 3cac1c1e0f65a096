"""What SQL text does with names: PREPARE, EXECUTE, DEALLOCATE, DISCARD ALL, DECLARE, CLOSE.

SQL-level prepared statements share one namespace with the protocol's (a ``PREPARE x`` runs
from a Bind of ``x``; a Parse named ``x`` runs from ``EXECUTE x``). The relay tracks them so
that ``EXECUTE x`` is judged as the statement ``x`` names, every time, and a Bind of ``x`` runs
what the gateway recorded. Read with PostgreSQL's own parser (pglast), like the guard reads
SQL; texts without one of these keywords (nearly all) are not parsed again: a keyword is always
spelled with those ASCII letters, in any case, and never follows a letter, digit or underscore.
SQL cursors (DECLARE, CLOSE) are portals: a Close or an Execute of the protocol reaches them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from pglast.parser import ParseError, parse_sql_json, scan

_KEYWORDS = re.compile(r"\b(?:execute|prepare|deallocate|discard|declare|close)\b",
                       re.ASCII | re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class NameUse:
    """What one statement of a query string does with names."""

    executes: tuple[str, ...] = ()  # EXECUTE x, also inside EXPLAIN or CREATE TABLE AS
    prepare: str | None = None  # PREPARE x AS body
    body: str = ""
    deallocate: str | None = None  # DEALLOCATE x
    deallocate_all: bool = False  # DEALLOCATE ALL, DISCARD ALL
    discard: bool = False  # DISCARD ALL (which also closes portals)
    cursor: str | None = None  # DECLARE cursor, or CLOSE cursor: a portal's name changes
    close: bool = False  # CLOSE (cursor, or every one when cursor is None)

    @property
    def tag(self) -> bytes:
        """The CommandComplete tag with which the target confirms the change."""
        if self.prepare is not None:
            return b"PREPARE"
        if self.deallocate is not None:
            return b"DEALLOCATE"
        if self.discard:
            return b"DISCARD ALL"
        if self.close:
            return b"CLOSE CURSOR" if self.cursor is not None else b"CLOSE CURSOR ALL"
        if self.cursor is not None:
            return b"DECLARE CURSOR"
        return b"DEALLOCATE ALL" if self.deallocate_all else b""


def name_uses(text: str) -> tuple[NameUse, ...]:
    """The statements of ``text`` that use names, in order; () when none does (or when the
    text does not parse: the guard then applies the policy's fallback to it)."""
    if _KEYWORDS.search(text) is None:
        return ()
    try:
        tree = orjson.loads(parse_sql_json(text))
    except (ParseError, ValueError, RecursionError, UnicodeEncodeError):
        return ()
    raw = b""
    uses: list[NameUse] = []
    for entry in tree.get("stmts", []):
        stmt = entry.get("stmt", {})
        if "PrepareStmt" in stmt:
            if not raw:
                raw = text.encode()
            start = entry.get("stmt_location", 0)
            length = entry.get("stmt_len", 0) or len(raw) - start
            own = raw[start : start + length].decode()
            uses.append(NameUse(prepare=str(stmt["PrepareStmt"].get("name", "")),
                                body=_prepared_body(own)))
        elif "DeallocateStmt" in stmt:
            node = stmt["DeallocateStmt"]
            name = node.get("name")
            if node.get("isall") or name is None:
                uses.append(NameUse(deallocate_all=True))
            else:
                uses.append(NameUse(deallocate=str(name)))
        elif stmt.get("DiscardStmt", {}).get("target") == "DISCARD_ALL":
            uses.append(NameUse(deallocate_all=True, discard=True))
        elif "DeclareCursorStmt" in stmt:
            uses.append(NameUse(cursor=str(stmt["DeclareCursorStmt"].get("portalname", ""))))
        elif "ClosePortalStmt" in stmt:
            cursor = stmt["ClosePortalStmt"].get("portalname")
            uses.append(NameUse(cursor=None if cursor is None else str(cursor), close=True))
        else:
            found: list[str] = []
            _executes(stmt, found)
            if found:
                uses.append(NameUse(executes=tuple(found)))
    return tuple(uses)


def _executes(node: Any, found: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "ExecuteStmt" and isinstance(value, dict):
                found.append(str(value.get("name", "")))
            if isinstance(value, dict | list):
                _executes(value, found)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _executes(item, found)


def _prepared_body(statement: str) -> str:
    """``UPDATE t …`` of ``PREPARE x (int) AS UPDATE t …``: the statement the name stands for
    (found with PostgreSQL's scanner: the first AS outside the parameter types)."""
    depth = 0
    for token in scan(statement)[2:]:
        if token.name == "ASCII_40":
            depth += 1
        elif token.name == "ASCII_41":
            depth -= 1
        elif token.name == "AS" and depth == 0:
            return statement[token.end + 1 :].strip()
    return statement  # not expected: judged and shown whole
