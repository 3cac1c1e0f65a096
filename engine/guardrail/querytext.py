"""Functions that run SQL handed to them as text, and where in their arguments it is.

A call like ``query_to_xml('select pg_terminate_backend(42)', true, true, '')`` runs its first
argument as a query, out of sight of a classifier that only looks at calls. The list was made
from PostgreSQL 15 itself: internal functions whose C code reaches SPI (the server's way to run
SQL from C) found by disassembling the server and its contrib modules and matching the callers
against ``pg_proc.prosrc``, then checked against the documentation; the hits that build fixed
catalog queries (``pg_get_viewdef``, the foreign-key triggers) run nothing a user wrote.

- query text: ``query_to_xml``, ``query_to_xmlschema``, ``query_to_xml_and_xmlschema``,
  ``ts_stat``, ``ts_rewrite(tsquery, text)``; contrib: ``dblink``, ``dblink_exec``,
  ``dblink_open``, ``dblink_send_query`` (dblink), ``crosstab``, ``crosstab2..4`` (tablefunc);
- SQL built from names and fragments: ``connectby`` (tablefunc) and ``xpath_table`` (xml2)
  paste their arguments into a SELECT unquoted, so the gateway pastes them the same way;
- a table read whole: ``table_to_xml``, ``table_to_xmlschema``, ``table_to_xml_and_xmlschema``;
- every table of a schema or database, through SQL the server builds: ``schema_to_xml*``,
  ``database_to_xml*`` — the gateway cannot see which tables, so they count as dynamic SQL.

``cursor_to_xml`` only fetches from a cursor that a judged DECLARE or PL/pgSQL body opened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.guardrail.literals import constant, string_constant

_XML_QUERY = frozenset({"query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema"})
_XML_TABLE = frozenset({"table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema"})
_XML_EVERYTHING = frozenset({"schema_to_xml", "schema_to_xmlschema",
                             "schema_to_xml_and_xmlschema", "database_to_xml",
                             "database_to_xmlschema", "database_to_xml_and_xmlschema"})
_DBLINK = frozenset({"dblink", "dblink_exec", "dblink_open", "dblink_send_query"})
_CROSSTAB = frozenset({"crosstab", "crosstab2", "crosstab3", "crosstab4"})
NAMES = (_XML_QUERY | _XML_TABLE | _XML_EVERYTHING | _DBLINK | _CROSSTAB
         | {"ts_stat", "ts_rewrite", "connectby", "xpath_table"})
_QUALIFIED = re.compile(r'^\s*("[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)'
                        r'(\s*\.\s*("[^"]+"|[A-Za-z_][A-Za-z0-9_$]*))?\s*$')


@dataclass
class Runs:
    """What a call makes the server run: SQL (text, or the argument node when it is not a
    constant), tables read whole, and why some of it is out of the gateway's sight."""

    queries: list[tuple[str, str | None]] = field(default_factory=list)  # (label, SQL)
    reads: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)


def runs(function: str, args: list[Any]) -> Runs | None:
    """What calling ``function`` with ``args`` (pglast nodes) runs, or None for a function
    that runs no SQL of its caller's."""
    if function not in NAMES:
        return None
    positional, named = _split(args)
    out = Runs()

    def query(label: str, node: Any) -> None:
        out.queries.append((f"{function}'s {label}", string_constant(node)))

    if function in _XML_QUERY or function == "ts_stat":
        node = named.get("query", positional[0] if positional else None)
        query("query", node)
    elif function == "ts_rewrite":
        if len(positional) == 2:  # ts_rewrite(query tsquery, select text)
            query("query", positional[1])
    elif function in _CROSSTAB:
        if positional:
            query("source query", positional[0])
        if len(positional) == 2 and not _is_number(positional[1]):
            query("category query", positional[1])
    elif function in _DBLINK:
        for index in _dblink_positions(function, positional):
            query("remote query", positional[index])
    elif function in _XML_TABLE:
        table = _table_name(named.get("tbl", positional[0] if positional else None))
        if table is not None and _QUALIFIED.match(table):
            out.reads.append(_relation(table))
        else:
            out.hidden.append(f"{function} reads a table the gateway cannot name")
    elif function in _XML_EVERYTHING:
        out.hidden.append(f"{function} reads every table of a schema or database through "
                          "queries the server builds")
    elif function == "connectby":
        _connectby(positional, out)
    elif function == "xpath_table":
        pieces = [string_constant(a) for a in positional[:5]]
        if len(pieces) == 5 and all(p is not None for p in pieces):
            key, document, relation, _, criteria = pieces
            out.queries.append(("xpath_table's query",
                                f"SELECT {key}, {document} FROM {relation} WHERE {criteria}"))
        else:
            out.hidden.append("xpath_table builds its query from arguments the gateway "
                              "cannot read")
    return out


def _split(args: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for arg in args:
        if isinstance(arg, dict) and "NamedArgExpr" in arg:
            named[str(arg["NamedArgExpr"].get("name", "")).lower()] = arg["NamedArgExpr"].get(
                "arg")
        else:
            positional.append(arg)
    return positional, named


def _is_number(node: Any) -> bool:
    known, value = constant(node)
    return known and isinstance(value, Decimal)


def _is_bool(node: Any) -> bool:
    known, value = constant(node)
    return known and isinstance(value, bool)


def _dblink_positions(function: str, args: list[Any]) -> list[int]:
    """Which arguments are SQL, by arity: dblink(sql), dblink(conn, sql), dblink(sql, fail),
    dblink(conn, sql, fail); dblink_open(cursor, sql[, fail]) or (conn, cursor, sql[, fail])."""
    n = len(args)
    if function == "dblink_open":
        if n == 2 or (n == 3 and _is_bool(args[2])):
            return [1]
        return [2] if n >= 3 else []
    if function == "dblink_send_query":
        return [1] if n >= 2 else []
    if n == 1:
        return [0]
    if n == 2:
        return [0] if _is_bool(args[1]) else [1]
    return [1] if n >= 3 else []


def _connectby(args: list[Any], out: Runs) -> None:
    """connectby(relname, key, parent, [orderby,] start_with, max_depth [, branch_delim]):
    ``SELECT key, parent FROM relname WHERE … [ORDER BY orderby]`` with the names pasted in."""
    n = len(args)
    ordered = n == 7 or (n == 6 and not _is_number(args[4]))
    names = [string_constant(a) for a in args[: 4 if ordered else 3]]
    if n < 5 or any(p is None for p in names):
        out.hidden.append("connectby builds its query from names the gateway cannot read")
        return
    sql = f"SELECT {names[1]}, {names[2]} FROM {names[0]}"
    if ordered:
        sql += f" ORDER BY {names[3]}"
    out.queries.append(("connectby's query", sql))


def _table_name(node: Any) -> str | None:
    """A regclass argument: 'name' or 'name'::regclass."""
    if isinstance(node, dict) and "TypeCast" in node:
        cast = node["TypeCast"]
        names = [n.get("String", {}).get("sval") for n in
                 cast.get("typeName", {}).get("names", []) if isinstance(n, dict)]
        if names and names[-1] == "regclass":
            node = cast.get("arg")
    return string_constant(node)


def _relation(text: str) -> str:
    parts = [p.strip() for p in text.split(".")]
    return ".".join(p[1:-1] if p.startswith('"') else p.lower() for p in parts).lower()
