"""PL/pgSQL read as the SQL it will run: function, procedure and trigger bodies, and DO blocks.

pglast carries libpg_query's copy of PostgreSQL's own PL/pgSQL compiler (``parse_plpgsql_json``):
it takes the whole ``CREATE FUNCTION`` (or ``DO``) statement and returns the compiled function
as JSON, every SQL construct in it as a ``PLpgSQL_expr`` with its text and its parse mode. This
module turns that into ``Piece``s the classifier judges like any SQL:

- statements (``UPDATE …``, ``PERFORM …``, ``CALL …``, ``RETURN QUERY …``, cursor queries) as
  they are;
- expressions (conditions, ``RETURN x``, defaults, assignments ``x := f()``) as ``SELECT x``;
- ``EXECUTE``, ``FOR … IN EXECUTE``, ``OPEN … FOR EXECUTE`` and ``RETURN QUERY EXECUTE``: a
  constant string is the SQL it holds; anything else (a variable, ``format()``, ``||``) is
  dynamic SQL, which no gateway can read before it runs.

The walk over the JSON is generic: every ``PLpgSQL_expr`` anywhere is judged, so a statement type
added to PL/pgSQL later is not skipped. A body the compiler rejects raises ``Unreadable`` (the
classifier makes it opaque). libpg_query leaves out one thing: the default value of a variable
of a composite type (``r my_table := …``); those are read from the body's tokens instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pglast.parser import ParseError, parse_plpgsql_json, parse_sql_json, scan

from engine.guardrail.literals import string_constant

# PostgreSQL's RawParseMode, as PL/pgSQL uses it for each PLpgSQL_expr.
_STATEMENT, _EXPRESSION = 0, 2
_ASSIGNMENTS = (3, 4, 5)  # "x := …", "r.f := …", "r.f.g := …"
# Where a PLpgSQL_expr holds a query string that is run as SQL: statement type → key.
_DYNAMIC = {"PLpgSQL_stmt_dynexecute": "query", "PLpgSQL_stmt_dynfors": "query",
            "PLpgSQL_stmt_open": "dynquery", "PLpgSQL_stmt_return_query": "dynquery"}
_WHAT = {
    "PLpgSQL_stmt_execsql": "statement", "PLpgSQL_stmt_perform": "PERFORM",
    "PLpgSQL_stmt_call": "CALL", "PLpgSQL_stmt_return_query": "RETURN QUERY",
    "PLpgSQL_stmt_fors": "FOR … IN query", "PLpgSQL_stmt_open": "OPEN cursor",
    "PLpgSQL_stmt_assign": "assignment", "PLpgSQL_stmt_return": "RETURN",
    "PLpgSQL_stmt_return_next": "RETURN NEXT", "PLpgSQL_stmt_raise": "RAISE",
    "PLpgSQL_stmt_assert": "ASSERT", "PLpgSQL_var": "declaration",
    "PLpgSQL_stmt_if": "IF", "PLpgSQL_if_elsif": "ELSIF", "PLpgSQL_stmt_while": "WHILE",
    "PLpgSQL_stmt_exit": "EXIT WHEN", "PLpgSQL_stmt_case": "CASE", "PLpgSQL_case_when": "WHEN",
    "PLpgSQL_stmt_fori": "FOR", "PLpgSQL_stmt_foreach_a": "FOREACH",
    "PLpgSQL_stmt_fetch": "FETCH", "PLpgSQL_stmt_dynexecute": "EXECUTE",
    "PLpgSQL_stmt_dynfors": "FOR … IN EXECUTE", "PLpgSQL_raise_option": "RAISE … USING",
    "PLpgSQL_stmt_forc": "FOR … IN cursor",
}
_OPEN = {"ASCII_40", "ASCII_91"}  # ( [
_CLOSE = {"ASCII_41", "ASCII_93"}  # ) ]
_COMMENTS = {"SQL_COMMENT", "C_COMMENT"}


class Unreadable(Exception):
    """PostgreSQL's PL/pgSQL compiler (as pglast carries it) rejects the body."""


@dataclass(frozen=True)
class Piece:
    """One thing a body runs: ``sql`` to judge (a statement, or ``SELECT <expression>``);
    ``dynamic`` when the SQL text itself is only known at run time (then ``sql`` is the
    expression that builds it, judged for what it calls)."""

    origin: str
    sql: str
    dynamic: bool = False
    shown: str = ""  # the text as the body has it, for the operator


def read(statement: str, body: str | None) -> list[Piece]:
    """The pieces of a ``CREATE FUNCTION … LANGUAGE plpgsql`` or ``DO`` statement; ``body`` is
    its source (for the defaults libpg_query leaves out)."""
    try:
        functions = orjson.loads(parse_plpgsql_json(statement))
    except ParseError as exc:
        functions = _with_plain_signature(statement, body)
        if functions is None:
            raise Unreadable(str(exc.args[0]) if exc.args else str(exc)) from exc
    except (ValueError, RecursionError) as exc:
        raise Unreadable("the body is too deeply nested to read") from exc
    if not isinstance(functions, list) or len(functions) != 1:
        raise Unreadable("the PL/pgSQL compiler did not return exactly one function")
    function = functions[0].get("PLpgSQL_function") if isinstance(functions[0], dict) else None
    if not isinstance(function, dict):
        raise Unreadable("the PL/pgSQL compiler returned no function")
    pieces: list[Piece] = []
    _walk(function, "PLpgSQL_function", None, 0, pieces)
    records = {str(d["PLpgSQL_rec"].get("refname", "")).lower()
               for d in function.get("datums", [])
               if isinstance(d, dict) and isinstance(d.get("PLpgSQL_rec"), dict)
               and d["PLpgSQL_rec"].get("lineno")}
    if records and body:
        for name, default in _declared_defaults(body, records):
            pieces.append(Piece(f"declaration of {name}", "SELECT " + default,
                                shown=default.strip()))
    return pieces


def _with_plain_signature(statement: str, body: str | None) -> Any:
    """libpg_query's compiler cannot look types up: a VARIADIC parameter or one typed
    ``t.c%TYPE`` fails there although PostgreSQL accepts it. The same body compiled with the
    same parameter names in a signature it can handle reads the same SQL; None if that fails
    too (then the body is opaque)."""
    if body is None:
        return None
    try:
        tree = orjson.loads(parse_sql_json(statement))
        node = tree["stmts"][0]["stmt"]["CreateFunctionStmt"]
    except (ParseError, ValueError, RecursionError, KeyError, IndexError, TypeError):
        return None
    params, columns = [], []
    for item in node.get("parameters", []):
        param = item.get("FunctionParameter", {}) if isinstance(item, dict) else {}
        name = param.get("name")
        typed = f'"{name}" ' if name else ""
        typed += _type_text(param.get("argType"))
        mode = param.get("mode")
        if mode == "FUNC_PARAM_TABLE":
            columns.append(typed)
        else:
            params.append({"FUNC_PARAM_OUT": "OUT ", "FUNC_PARAM_INOUT": "INOUT "}.get(
                str(mode), "") + typed)
    if columns:
        returns = f"RETURNS TABLE ({', '.join(columns)})"
    elif node.get("returnType"):
        setof = "SETOF " if node["returnType"].get("setof") else ""
        returns = f"RETURNS {setof}{_type_text(node['returnType'])}"
    else:
        returns = ""
    tag = "gw"
    while f"${tag}$" in body:
        tag += "x"
    what = "PROCEDURE" if node.get("is_procedure") else "FUNCTION"
    plain = (f"CREATE {what} gatewatch_body({', '.join(params)}) {returns} "
             f"LANGUAGE plpgsql AS ${tag}${body}${tag}$")
    try:
        return orjson.loads(parse_plpgsql_json(plain))
    except (ParseError, ValueError, RecursionError):
        return None


def _type_text(type_name: Any) -> str:
    """A TypeName as SQL; ``%TYPE`` references become text (their type needs the catalog)."""
    if not isinstance(type_name, dict) or type_name.get("pct_type"):
        return "text"
    names = [p["String"]["sval"] for p in type_name.get("names", [])
             if isinstance(p, dict) and "String" in p]
    if not names:
        return "text"
    bounds = "[]" * len(type_name.get("arrayBounds", []))
    return ".".join('"' + n.replace('"', '""') + '"' for n in names) + bounds


def _walk(node: Any, owner: str, key: str | None, line: int, out: list[Piece]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, owner, key, line, out)
        return
    if not isinstance(node, dict):
        return
    for name, value in node.items():
        if name == "PLpgSQL_expr" and isinstance(value, dict):
            out.extend(_pieces(value, owner, key, line))
        elif isinstance(value, dict):
            if name.startswith("PLpgSQL_"):
                _walk(value, name, None, int(value.get("lineno", line) or line), out)
            else:
                _walk(value, owner, name, line, out)
        elif isinstance(value, list):
            _walk(value, owner, name, line, out)


def _pieces(expr: dict[str, Any], owner: str, key: str | None, line: int) -> list[Piece]:
    text = str(expr.get("query", ""))
    mode = int(expr.get("parseMode", _STATEMENT) or _STATEMENT)
    where = f"line {line}: " if line else ""
    what = _WHAT.get(owner, owner.removeprefix("PLpgSQL_stmt_").replace("_", " "))
    origin = f"{where}{what}"
    if _DYNAMIC.get(owner) == key:
        constant = _string_literal(text)
        if constant is not None:
            return [Piece(f"{origin} of a constant string", constant, shown=constant)]
        return [Piece(origin, "SELECT " + text, dynamic=True, shown=text)]
    if mode == _STATEMENT:
        return [Piece(origin, text, shown=text)]
    if mode == _EXPRESSION:
        return [Piece(origin, "SELECT " + text, shown=text)]
    if mode in _ASSIGNMENTS:
        split = _assignment(text)
        if split is None:
            raise Unreadable(f"{origin}: cannot find the value assigned in {text!r}")
        target, value = split
        out = [Piece(origin, "SELECT " + value, shown=text)]
        if "[" in target:  # subscripts are expressions too: a[f(x)] := 1
            out.append(Piece(f"{origin} target", "SELECT " + target, shown=target))
        return out
    raise Unreadable(f"{origin}: an expression in parse mode {mode} the gateway does not know")


def _string_literal(expression: str) -> str | None:
    """The string an expression is, when it is only a string literal ('…', $$…$$, E'…')."""
    try:
        tree = orjson.loads(parse_sql_json("SELECT " + expression))
    except (ParseError, ValueError, RecursionError):
        return None
    stmts = tree.get("stmts", [])
    if len(stmts) != 1:
        return None
    select = stmts[0].get("stmt", {}).get("SelectStmt", {})
    targets = select.get("targetList", [])
    if len(targets) != 1 or set(select) - {"targetList", "limitOption", "op"}:
        return None
    target = targets[0].get("ResTarget", {})
    return string_constant(target.get("val")) if "name" not in target else None


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """(token name, start, end) over ``text`` in bytes, comments left out."""
    try:
        return [(t.name, t.start, t.end + 1) for t in scan(text) if t.name not in _COMMENTS]
    except ParseError as exc:
        raise Unreadable(f"cannot split the body into tokens: {exc}") from exc


def _assignment(text: str) -> tuple[str, str] | None:
    """``target := value`` (or ``=``) split at the first assignment outside brackets."""
    raw = text.encode()
    depth = 0
    for name, start, end in _tokens(text):
        if name in _OPEN:
            depth += 1
        elif name in _CLOSE:
            depth -= 1
        elif depth == 0 and name in ("COLON_EQUALS", "ASCII_61"):
            return raw[:start].decode().strip(), raw[end:].decode().strip()
    return None


def _declared_defaults(body: str, names: set[str]) -> list[tuple[str, str]]:
    """(name, default) of each declaration of one of ``names`` that has a default, read from
    the body's DECLARE sections with PostgreSQL's own tokenizer (strings and comments cannot
    fool it). A declaration section ends at BEGIN where a declaration would start."""
    raw = body.encode()
    tokens = _tokens(body)
    out: list[tuple[str, str]] = []
    i, n = 0, len(tokens)
    while i < n:
        if tokens[i][0] != "DECLARE":
            i += 1
            continue
        i += 1
        while i < n and tokens[i][0] != "BEGIN_P":
            first, depth, assign = i, 0, None
            while i < n:
                name = tokens[i][0]
                if name in _OPEN:
                    depth += 1
                elif name in _CLOSE:
                    depth -= 1
                elif depth == 0 and name == "ASCII_59":  # ;
                    break
                elif depth == 0 and assign is None and name in ("COLON_EQUALS", "ASCII_61",
                                                                 "DEFAULT"):
                    assign = i
                i += 1
            word = raw[tokens[first][1]:tokens[first][2]].decode().strip('"').lower()
            if assign is not None and word in names:
                end = tokens[i][1] if i < n else len(raw)
                out.append((word, raw[tokens[assign][2]:end].decode()))
            i += 1
    return out
