"""Constants in pglast's JSON parse tree: literals, through casts, as Python values.

Numbers come back as ``Decimal`` (so that ``1 = 1.0``), booleans as ``bool``, NULL as ``None``;
``known`` says whether the node is a constant at all.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pglast.parser import ParseError, scan

_TRUE_WORDS = {"t", "true", "on", "yes", "y", "1"}
_FALSE_WORDS = {"f", "false", "off", "no", "n", "0"}
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "char", "unknown"})


def name(parts: list[Any]) -> list[str]:
    """The strings of a name list (``funcname``, ``names``, ``fields``), A_Star left out."""
    return [p["String"]["sval"] for p in parts if isinstance(p, dict) and "String" in p]


def constant(node: Any) -> tuple[bool, Any]:
    """(known, value) of a literal, through casts; numbers as Decimal, so 1 = 1.0."""
    if not isinstance(node, dict):
        return False, None
    if "TypeCast" in node:
        known, value = constant(node["TypeCast"].get("arg"))
        type_name = name(node["TypeCast"].get("typeName", {}).get("names", []))
        if known and type_name and type_name[-1] in ("bool", "boolean"):
            truth = word_truth(value)
            return (truth is not None), truth
        return known, value
    const = node.get("A_Const")
    if not isinstance(const, dict):
        return False, None
    if const.get("isnull"):
        return True, None
    for key in ("ival", "fval", "sval", "boolval", "bsval"):
        if key in const:
            value = const[key]
            inner = value.get(key) if isinstance(value, dict) else value
            if key == "ival":
                return True, Decimal(inner or 0)  # pglast omits a zero
            if key == "fval":
                try:
                    return True, Decimal(str(inner))
                except InvalidOperation:
                    return False, None
            if key == "boolval":
                return True, bool(inner)
            return True, inner
    return False, None


def string_constant(node: Any) -> str | None:
    """The text of a string literal (through casts to text types), else None: what a function
    that runs a query string receives when the gateway can read it."""
    if not isinstance(node, dict):
        return None
    if "TypeCast" in node:
        cast = node["TypeCast"]
        type_name = name(cast.get("typeName", {}).get("names", []))
        if type_name and type_name[-1] not in _TEXT_TYPES:
            return None
        return string_constant(cast.get("arg"))
    const = node.get("A_Const")
    if not isinstance(const, dict) or const.get("isnull"):
        return None
    if "sval" in const:
        value = const["sval"]
        inner = value.get("sval") if isinstance(value, dict) else value
        return str(inner) if inner is not None else ""
    return None


def option_truth(arg: Any) -> bool | None:
    """The value of an option like EXPLAIN's ANALYZE: no argument means true."""
    if not isinstance(arg, dict):
        return True if arg is None else None
    for key, field_name in (("String", "sval"), ("Boolean", "boolval"), ("Integer", "ival")):
        if key in arg:
            inner = arg[key].get(field_name)
            if key == "Boolean":
                return bool(inner)
            return word_truth(str(inner if inner is not None else 0))
    known, value = constant(arg)
    return word_truth(value) if known else None


def word_truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return None


def reads_differently_without_scs(sql: str) -> bool:
    """Whether the server could read ``sql`` differently with ``standard_conforming_strings``
    off: a plain ``'…'`` string holding a backslash (off, it is an escape string, so ``'a\\'``
    does not end where the gateway's parser ends it). Without one, the scanner takes the same
    path under both settings, so one reading is sound. Stored code is read when it runs, under
    whatever the setting is then. Text that does not scan counts as reading differently."""
    try:
        tokens = scan(sql)
    except ParseError:
        return True
    raw = sql.encode()
    return any(t.name == "SCONST" and raw[t.start:t.start + 1] == b"'"
               and b"\\" in raw[t.start:t.end + 1] for t in tokens)
