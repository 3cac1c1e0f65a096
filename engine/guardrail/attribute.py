"""Functions called in attribute notation: ``x.f`` and ``(x).f`` are ``f(x)``.

PostgreSQL reads a field selection whose name is not a column of what it selects from as a
call of the function of that name with the selected expression as its one argument
(``ParseFuncOrColumn`` with ``is_column``): ``(pid).pg_terminate_backend`` terminates a
backend, ``(q).ts_stat`` runs the query ``q`` holds, ``t.f`` calls ``f`` with ``t``'s whole
row when ``t`` has no column ``f``, and a function whose other parameters have defaults
(``pg_terminate_backend(int4, int8 DEFAULT 0)``) answers too, for a scalar ``x`` as well.
pglast's tree shows no call there: an ``A_Indirection`` (``(x).f``, ``(x).a[1].f``) or a
``ColumnRef`` of several names (``t.f``, ``s.t.f``).

``selections`` gives each name such a node may call with the argument it would get, and
``call`` the ``FuncCall`` node it is read as: whoever collects functions judges it as that
call when the name could be a function's, and as a column only when it cannot (a name no
function has: ``c.email``, ``(row).f1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.guardrail import builtin_names, querytext

__all__ = ["call", "may_be_builtin", "selections"]


def selections(kind: str, node: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, argument node) of each field selection of an ``A_Indirection`` or a
    ``ColumnRef`` node (``kind``: its type) that PostgreSQL may read as ``name(argument)``."""
    if kind == "ColumnRef":
        fields = node.get("fields") or []
        if len(fields) >= 2 and isinstance(fields[-1], dict) and "String" in fields[-1]:
            name = str(fields[-1]["String"].get("sval") or "")
            if name:  # the whole row of the relation the names before it name
                yield name, {"ColumnRef": {"fields": fields[:-1]}}
        return
    if kind != "A_Indirection":
        return
    current: Any = node.get("arg")
    for element in node.get("indirection") or []:
        if not isinstance(element, dict):
            return
        if "A_Star" in element:
            return  # (x).*: every field, no call
        if "String" in element:
            name = str(element["String"].get("sval") or "")
            if name:
                yield name, current
        current = {"A_Indirection": {"arg": current, "indirection": [element]}}


def call(name: str, argument: Any) -> dict[str, Any]:
    """The ``FuncCall`` node (its inner dict) of ``name(argument)``."""
    return {"funcname": [{"String": {"sval": name}}], "args": [argument]}


def may_be_builtin(name: str) -> bool:
    """Whether ``name`` is a function PostgreSQL (or an extension whose functions run SQL
    given as text, ``querytext``) has: a selection of it is judged as the call."""
    return name in builtin_names.FUNCTIONS or name in querytext.NAMES
