"""Whether an UPDATE, DELETE or MERGE can tell the rows it touches from the others.

This is the syntactic fast path of "UPDATE WITHOUT WHERE" and "DELETE WITHOUT WHERE": no
catalog, no data, only the condition's shape. A condition restricts a write only if it looks at
the target's row and can come out differently for two rows. Two classes do not:

- **Row-blind** conditions never look at the target's row: constants, parameters, settings,
  functions of those, columns of other tables, subqueries that do not refer to the row
  (``1 BETWEEN 0 AND 2``, ``EXISTS (SELECT 1)``, ``coalesce(true, false)``, ``$1``,
  ``current_user = 'x'``, ``(SELECT count(*) FROM u) > 0``). Unless the gateway can prove one
  false (``WHERE false``, ``1 = 2``, ``NULL = NULL``), it selects every row or none.
- **True of every row**: the row is only compared with itself, under the assumption that its
  columns are not NULL (a key column rarely is): ``id = id``, ``t.id >= id``, ``id IS NOT
  NULL``, ``NOT (id IS NULL)``, ``x OR NOT x``, ``id < 5 OR id >= 5``, ``name LIKE '%'``,
  ``id IN (SELECT id FROM t)`` and ``EXISTS (SELECT 1 FROM t s WHERE s.id = t.id)`` over the
  target's own table with nothing restricting the subquery, ``UPDATE t … FROM t u WHERE
  t.id = u.id``, a CASE whose every branch is true.

Everything else counts as bounded here, ``id > -1`` included: true for every row only given the
data, which is what the effect-based check (``rows_over``) sees. Unqualified names inside a
subquery with a FROM of its own might be the outer row's columns, so they count as looking at
the row: this path never holds a write that does look at its row.

The walk is linear in the size of the condition; nothing here runs for statements without a
WHERE to judge.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal
from enum import IntEnum
from typing import Any, NamedTuple

from engine.guardrail.literals import constant, name, word_truth


class Reach(IntEnum):
    """What a condition selects of the target's rows."""

    NONE = 0  # false or NULL for every row: touches nothing
    SOME = 1  # depends on the row: a real restriction
    BLIND = 2  # the same for every row, value unknown: every row or none
    ALL = 3  # true for every row whose columns are not NULL


def unbounded(reach: Reach) -> bool:
    return reach >= Reach.BLIND


_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "<>": operator.ne, "!=": operator.ne, "<": operator.lt,
    ">": operator.gt, "<=": operator.le, ">=": operator.ge,
}
# A comparison of an expression with itself (same key).
_REFLEXIVE = {"=": True, "<=": True, ">=": True, "<>": False, "!=": False, "<": False,
              ">": False}
# Swapping operands: a < b is b > a.
_MIRROR = {"=": "=", "<>": "<>", "!=": "<>", "<": ">", ">": "<", "<=": ">=", ">=": "<="}
# Each comparison as (atom, positive): a <> b is NOT (a = b), a >= b is NOT (a < b).
_POLARITY = {"=": ("=", True), "<>": ("=", False), "!=": ("=", False), "<": ("<", True),
             ">=": ("<", False), ">": (">", True), "<=": (">", False)}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
}
# Patterns every non-NULL text matches: LIKE '%', SIMILAR TO '%', ~ '' (a regular expression
# search for the empty string succeeds everywhere).
_MATCH_ALL_REGEX = frozenset({"", ".*", "^", "$", "^.*", ".*$", "^.*$", "(.*)", "()"})
_LIKE_OPS = {"~~": True, "~~*": True, "!~~": False, "!~~*": False}
_REGEX_OPS = {"~": True, "~*": True, "!~": False, "!~*": False}
# Functions whose result depends only on their arguments: f(x) = f(x) for every row.
_IMMUTABLE = frozenset({
    "lower", "upper", "abs", "length", "char_length", "octet_length", "btrim", "ltrim",
    "rtrim", "trim", "md5", "round", "floor", "ceil", "ceiling", "trunc", "sign", "lpad", "rpad",
    "substr", "substring", "left", "right", "replace", "concat", "concat_ws", "date_trunc",
    "date_part", "extract", "to_char", "int4", "int8", "text", "numeric", "hashtext",
})


class _Level(NamedTuple):
    """One query level's names: qualifier → True when it names the target's row."""

    names: dict[str, bool]
    has_from: bool
    # Unqualified names at this level are the target's columns (the statement's own level,
    # or a subquery over the target's own table read as the row itself).
    row_level: bool = False


_Scope = tuple[_Level, ...]


class _Term(NamedTuple):
    """A value expression: its constant value if known, whether it may differ between rows,
    a key (equal keys: equal values within one row), and whether it is plain (columns and
    constants joined by operators, so not NULL when its columns are not)."""

    known: bool = False
    value: Any = None
    row: bool = False
    key: str | None = None
    plain: bool = False


class Target:
    """The relation a write touches and what else its statement reads (FROM, USING)."""

    __slots__ = ("alias", "others", "relname", "same_table_others", "schema")

    def __init__(self, relname: str, schema: str | None = None, alias: str | None = None,
                 others: dict[str, bool] | None = None,
                 same_table_others: frozenset[str] = frozenset()) -> None:
        self.relname = relname
        self.schema = schema
        self.alias = alias
        self.others = others or {}
        self.same_table_others = same_table_others

    @classmethod
    def of(cls, relation: Any, from_items: list[Any] | None = None) -> Target | None:
        rel = relation.get("RangeVar", relation) if isinstance(relation, dict) else None
        if not isinstance(rel, dict) or not rel.get("relname"):
            return None
        alias = rel.get("alias")
        aliasname = alias.get("aliasname") if isinstance(alias, dict) else None
        schema = rel.get("schemaname")
        relname = str(rel["relname"]).lower()
        if not from_items:
            return cls(relname, schema.lower() if schema else None,
                       aliasname.lower() if aliasname else None)
        same = frozenset(n for item in from_items
                         for n in _same_table_names(item, relname, schema))
        return cls(relname, schema.lower() if schema else None,
                   aliasname.lower() if aliasname else None, _from_names(from_items), same)

    def names(self) -> dict[str, bool]:
        if self.alias:
            return {self.alias: True}
        names = {self.relname: True}
        if self.schema:
            names[f"{self.schema}.{self.relname}"] = True
        return names

    def scope(self, mapped: bool = False) -> _Scope:
        names = dict(self.others)
        if mapped:
            names.update(dict.fromkeys(self.same_table_others, True))
        names.update(self.names())
        return (_Level(names, True, row_level=True),)


def where_reach(where: Any, target: Target | None) -> Reach:
    """What ``where`` selects of ``target``'s rows (no WHERE at all: every row)."""
    if where is None:
        return Reach.ALL
    if _column_against_a_value(where):
        return Reach.SOME  # the common case, decided without building a scope
    if target is None:  # a relation the gateway cannot name: judge the condition alone
        target = Target("")
    reach = _Eval(target).reach(where, target.scope())
    if reach == Reach.SOME and target.same_table_others:
        # UPDATE t … FROM t u WHERE t.id = u.id: u's row can be the target's own.
        mapped = _Eval(target).reach(where, target.scope(mapped=True))
        if mapped == Reach.ALL:
            return Reach.ALL
    return reach


def constants_blind(where: Any) -> bool:
    """Whether ``where_reach(where, …)`` is the same whatever values its constants hold (a
    verdict on it may then be reused for a text that differs only in them). True without a
    WHERE, for a condition with no constant at all, and for constants compared with a column
    in conjunctions (``aid = 42``, ``a = 1 AND b IN (2, 3)``, ``x BETWEEN 1 AND 9``): a column
    is never known, so such a comparison only looks at the row. Anything else (``1 = 1``,
    ``id < 5 OR id >= 5``, ``name LIKE '%'``) may have been decided by the values: False."""
    if where is None:
        return True
    if isinstance(where, dict):
        expr = where.get("BoolExpr")
        if isinstance(expr, dict) and expr.get("boolop") == "AND_EXPR":
            return all(constants_blind(arg) for arg in expr.get("args", []))
        if _column_against_constants(where):
            return True
    return not _has_constant(where)


def _column_against_constants(node: dict[str, Any]) -> bool:
    expr = node.get("A_Expr")
    if not isinstance(expr, dict):
        return False
    kind, left, right = expr.get("kind"), expr.get("lexpr"), expr.get("rexpr")
    if kind == "AEXPR_OP":
        ops = name(expr.get("name", []))
        if len(ops) != 1 or ops[0] not in _COMPARISONS:
            return False
        if isinstance(right, dict) and "ColumnRef" in right:
            left, right = right, left
        return (isinstance(left, dict) and "ColumnRef" in left
                and _is_constant(right))
    if kind in ("AEXPR_IN", "AEXPR_BETWEEN", "AEXPR_NOT_BETWEEN"):
        items = right.get("List", {}).get("items") if isinstance(right, dict) else right
        return (isinstance(left, dict) and "ColumnRef" in left and isinstance(items, list)
                and all(_is_constant(i) for i in items))
    return False


def _is_constant(node: Any) -> bool:
    """A literal, or a literal cast to a type (``'2024-01-01'::date``)."""
    if isinstance(node, dict) and "TypeCast" in node:
        node = node["TypeCast"].get("arg")
    return isinstance(node, dict) and "A_Const" in node


def _has_constant(node: Any) -> bool:
    if isinstance(node, list):
        return any(_has_constant(item) for item in node)
    if not isinstance(node, dict):
        return False
    return "A_Const" in node or any(_has_constant(v) for v in node.values()
                                    if isinstance(v, dict | list))


def _column_against_a_value(where: dict[str, Any]) -> bool:
    """``id = 42``, ``aid = $1``: an unqualified column compared with a constant or a
    parameter by a comparison operator."""
    expr = where.get("A_Expr")
    if not isinstance(expr, dict) or expr.get("kind") != "AEXPR_OP":
        return False
    ops = expr.get("name", [])
    if len(ops) != 1 or ops[0].get("String", {}).get("sval") not in _COMPARISONS:
        return False
    left, right = expr.get("lexpr"), expr.get("rexpr")
    if not (isinstance(left, dict) and isinstance(right, dict)):
        return False
    if "ColumnRef" not in left:
        left, right = right, left
    column = left.get("ColumnRef")
    if not isinstance(column, dict) or len(column.get("fields", [])) != 1:
        return False
    const = right.get("A_Const")
    return "ParamRef" in right or (isinstance(const, dict) and not const.get("isnull"))


def merge_unbounded(node: dict[str, Any]) -> set[str]:
    """The WITHOUT WHERE kinds of a MERGE: a WHEN MATCHED … UPDATE or DELETE with no condition
    on the target's row beyond the join (unless the source is a literal list of rows that the
    join condition compares with the row), and WHEN NOT MATCHED BY SOURCE without one."""
    source = node.get("sourceRelation")
    target = Target.of(node.get("relation"), [source] if source else [])
    if target is None:
        target = Target("")
    evaluate = _Eval(target)
    scope = target.scope()
    join = evaluate.reach(node.get("joinCondition"), scope)
    if join == Reach.SOME and target.same_table_others:
        if evaluate.reach(node.get("joinCondition"), target.scope(mapped=True)) == Reach.ALL:
            join = Reach.ALL
    literal = _literal_rows(source)
    out: set[str] = set()
    for item in node.get("mergeWhenClauses", []):
        clause = item.get("MergeWhenClause", {}) if isinstance(item, dict) else {}
        command = clause.get("commandType")
        if command not in ("CMD_UPDATE", "CMD_DELETE"):
            continue
        condition = clause.get("condition")
        cond = evaluate.reach(condition, scope) if condition is not None else Reach.ALL
        if not unbounded(cond):
            continue
        if clause.get("matchKind") == "MERGE_WHEN_MATCHED" and literal and not unbounded(join):
            continue  # USING (VALUES (1), (2)) v ON t.id = v.id: like WHERE id IN (1, 2)
        out.add("UPDATE WITHOUT WHERE" if command == "CMD_UPDATE" else "DELETE WITHOUT WHERE")
    return out


def upsert_unbounded(node: dict[str, Any]) -> bool:
    """Whether an INSERT's ``ON CONFLICT … DO UPDATE`` may rewrite every row of its table:
    its rows come from a query (not a literal list of rows) and its update has no condition
    on the existing row (``excluded``, the row proposed, is another table's row here)."""
    clause = node.get("onConflictClause")
    if not isinstance(clause, dict) or clause.get("action") != "ONCONFLICT_UPDATE":
        return False
    source = node.get("selectStmt")
    select = source.get("SelectStmt") if isinstance(source, dict) else None
    if source is None or (isinstance(select, dict) and literal_select(select)):
        return False  # DEFAULT VALUES, or VALUES (…), (…): the rows are in the text
    excluded = {"RangeVar": {"relname": "excluded"}}
    target = Target.of(node.get("relation"), [excluded])
    return unbounded(where_reach(clause.get("whereClause"), target))


def _literal_rows(source: Any) -> bool:
    """A source of constant rows: (VALUES …) or a SELECT without FROM."""
    if not isinstance(source, dict) or "RangeSubselect" not in source:
        return False
    sub = source["RangeSubselect"].get("subquery", {})
    select = sub.get("SelectStmt") if isinstance(sub, dict) else None
    return isinstance(select, dict) and literal_select(select)


def literal_select(select: dict[str, Any]) -> bool:
    """A query whose rows are written out in it: ``VALUES (…), (…)`` (PostgreSQL allows no
    set-returning function there), or one SELECT without FROM, set operation or function
    call (``SELECT generate_series(1, 10000)`` or ``SELECT 1 UNION SELECT id FROM t`` are not:
    they make rows)."""
    if select.get("valuesLists"):
        return not select.get("withClause")
    if select.get("op", "SETOP_NONE") != "SETOP_NONE":
        return False
    return not (select.get("fromClause") or select.get("withClause")
                or _has_node(select.get("targetList"), "FuncCall")
                # ((x).unnest is unnest(x): ``attribute``)
                or _has_node(select.get("targetList"), "A_Indirection"))


def _has_node(node: Any, node_type: str) -> bool:
    if isinstance(node, list):
        return any(_has_node(item, node_type) for item in node)
    if not isinstance(node, dict):
        return False
    return node_type in node or any(_has_node(v, node_type) for v in node.values()
                                    if isinstance(v, dict | list))


def _from_names(items: list[Any]) -> dict[str, bool]:
    """The qualifiers FROM items introduce (none of them the target's row)."""
    names: dict[str, bool] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        for kind, body in item.items():
            if not isinstance(body, dict):
                continue
            alias = body.get("alias")
            aliasname = alias.get("aliasname") if isinstance(alias, dict) else None
            if kind == "RangeVar":
                if aliasname:
                    names[str(aliasname).lower()] = False
                elif body.get("relname"):
                    rel = str(body["relname"]).lower()
                    names[rel] = False
                    if body.get("schemaname"):
                        names[f"{str(body['schemaname']).lower()}.{rel}"] = False
            elif kind == "JoinExpr":
                if aliasname:
                    names[str(aliasname).lower()] = False
                names.update(_from_names([body.get("larg"), body.get("rarg")]))
            elif kind == "RangeTableSample":
                names.update(_from_names([body.get("relation")]))
            elif aliasname:
                names[str(aliasname).lower()] = False
            elif kind == "RangeFunction":  # FROM f(x): the function's name is the alias
                for fn in body.get("functions", []):
                    for part in fn.get("List", {}).get("items", []) if isinstance(fn,
                                                                             dict) else []:
                        call = part.get("FuncCall") if isinstance(part, dict) else None
                        if isinstance(call, dict):
                            parts = name(call.get("funcname", []))
                            if parts:
                                names[parts[-1].lower()] = False
    return names


def _same_table_names(item: Any, relname: str, schema: str | None) -> list[str]:
    """The qualifiers of a FROM item that is the target's own table, read whole."""
    rel = item.get("RangeVar") if isinstance(item, dict) else None
    if not isinstance(rel, dict) or str(rel.get("relname", "")).lower() != relname:
        return []
    other_schema = rel.get("schemaname")
    if schema and other_schema and str(other_schema).lower() != schema:
        return []
    alias = rel.get("alias")
    if isinstance(alias, dict) and alias.get("aliasname"):
        return [str(alias["aliasname"]).lower()]
    names = [relname]
    if other_schema:
        names.append(f"{str(other_schema).lower()}.{relname}")
    return names


def _same_table_select(select: Any, target: Target) -> tuple[_Level, dict[str, Any]] | None:
    """A subquery over the target's own table with nothing that could drop rows but its WHERE
    (no LIMIT, OFFSET, GROUP BY, HAVING, set operation or DISTINCT ON): the level that reads
    its table as the row itself, and the SelectStmt."""
    body = select.get("SelectStmt") if isinstance(select, dict) else None
    if not isinstance(body, dict) or not target.relname:
        return None
    if body.get("op", "SETOP_NONE") != "SETOP_NONE" or body.get("valuesLists"):
        return None
    if any(body.get(k) for k in ("limitCount", "limitOffset", "groupClause", "havingClause",
                                 "withClause", "windowClause")):
        return None
    if any(d for d in body.get("distinctClause", []) if d):  # DISTINCT ON (…)
        return None
    items = body.get("fromClause", [])
    if len(items) != 1:
        return None
    names = _same_table_names(items[0], target.relname, target.schema)
    if not names:
        return None
    return _Level(dict.fromkeys(names, True), True, row_level=True), body


class _Eval:
    def __init__(self, target: Target) -> None:
        self.target = target

    # --- predicates ---------------------------------------------------------------------
    def reach(self, node: Any, scope: _Scope) -> Reach:
        if node is None:
            return Reach.ALL
        if not isinstance(node, dict):
            return Reach.SOME
        if "A_Expr" in node:
            return self._a_expr(node["A_Expr"], scope)
        if "BoolExpr" in node:
            return self._bool(node["BoolExpr"], scope)
        known, value = constant(node)
        if known:
            return _truth_reach(value)
        if "NullTest" in node:
            test = node["NullTest"]
            arg = self.term(test.get("arg"), scope)
            is_null = test.get("nulltesttype") == "IS_NULL"
            if arg.known:
                return _truth_reach((arg.value is None) == is_null)
            if arg.plain:
                return Reach.NONE if is_null else Reach.ALL
            return _by_row(arg.row)
        if "BooleanTest" in node:
            return self._boolean_test(node["BooleanTest"], scope)
        if "SubLink" in node:
            return self._sublink(node["SubLink"], scope)
        if "CaseExpr" in node:
            return self._case(node["CaseExpr"], scope)
        if "CurrentOfExpr" in node:
            return Reach.SOME  # WHERE CURRENT OF c: one row
        term = self.term(node, scope)
        if term.known:
            return _truth_reach(term.value)
        return _by_row(term.row)

    def _bool(self, expr: dict[str, Any], scope: _Scope) -> Reach:
        args = expr.get("args", [])
        op = expr.get("boolop")
        if op == "NOT_EXPR":
            return _not(self.reach(args[0], scope)) if args else Reach.SOME
        reaches = [self.reach(a, scope) for a in args]
        if op == "AND_EXPR":
            return _and(reaches)
        if op == "OR_EXPR":
            combined = _or(reaches)
            if combined < Reach.BLIND and self._tautology(args, scope):
                return Reach.ALL
            return combined
        return Reach.SOME

    def _tautology(self, args: list[Any], scope: _Scope) -> bool:
        """x OR NOT x, id < 5 OR id >= 5, a IS NULL OR a IS NOT NULL: a comparison and its
        complement (under the non-NULL assumption)."""
        seen: set[tuple[str, bool]] = set()
        for arg in args:
            lit = self._literal(arg, scope)
            if lit is None:
                continue
            if (lit[0], not lit[1]) in seen:
                return True
            seen.add(lit)
        return False

    def _literal(self, node: Any, scope: _Scope) -> tuple[str, bool] | None:
        if not isinstance(node, dict):
            return None
        if "BoolExpr" in node and node["BoolExpr"].get("boolop") == "NOT_EXPR":
            args = node["BoolExpr"].get("args", [])
            inner = self._literal(args[0], scope) if args else None
            return (inner[0], not inner[1]) if inner else None
        if "NullTest" in node:
            term = self.term(node["NullTest"].get("arg"), scope)
            if term.key is None:
                return None
            return "nn:" + term.key, node["NullTest"].get("nulltesttype") != "IS_NULL"
        if "BooleanTest" in node:
            test = node["BooleanTest"]
            kind = test.get("booltesttype")
            inner = self._literal(test.get("arg"), scope)
            if inner is None or kind not in ("IS_TRUE", "IS_NOT_TRUE", "IS_FALSE",
                                             "IS_NOT_FALSE"):
                return None
            flip = kind in ("IS_NOT_TRUE", "IS_FALSE")
            return inner[0], inner[1] != flip
        if "A_Expr" in node:
            expr = node["A_Expr"]
            ops = name(expr.get("name", []))
            if expr.get("kind") != "AEXPR_OP" or not ops or ops[-1] not in _POLARITY:
                return None
            left = self.term(expr.get("lexpr"), scope)
            right = self.term(expr.get("rexpr"), scope)
            if left.key is None or right.key is None:
                return None
            op = ops[-1]
            if left.key > right.key:  # one orientation: b > a is a < b
                left, right, op = right, left, _MIRROR[op]
            atom, positive = _POLARITY[op]
            return f"{left.key} {atom} {right.key}", positive
        term = self.term(node, scope)
        if term.key is not None and not term.known and "ColumnRef" in node:
            return "b:" + term.key, True  # a boolean column
        return None

    def _a_expr(self, expr: dict[str, Any], scope: _Scope) -> Reach:
        kind = expr.get("kind")
        ops = name(expr.get("name", []))
        op = ops[-1] if ops else ""
        if kind == "AEXPR_OP" and op in _COMPARISONS:
            left, right = expr.get("lexpr"), expr.get("rexpr")
            if op in ("=", "<>", "!=") and (_is_predicate(left) or _is_predicate(right)):
                if _is_predicate(right):
                    left, right = right, left
                known, value = constant(right)
                if known and isinstance(value, bool):  # (id IS NULL) = false
                    inner = self.reach(left, scope)
                    return inner if value == (op == "=") else _not(inner)
            return _compare(op, self.term(left, scope), self.term(right, scope))
        if kind == "AEXPR_OP" and op in _REGEX_OPS:
            left = self.term(expr.get("lexpr"), scope)
            pattern = self.term(expr.get("rexpr"), scope)
            if (left.plain and not left.known and pattern.known
                    and pattern.value in _MATCH_ALL_REGEX):
                return Reach.ALL if _REGEX_OPS[op] else Reach.NONE
            return _by_row(left.row or pattern.row)
        if kind in ("AEXPR_DISTINCT", "AEXPR_NOT_DISTINCT"):
            left = self.term(expr.get("lexpr"), scope)
            right = self.term(expr.get("rexpr"), scope)
            distinct = kind == "AEXPR_DISTINCT"
            if left.key is not None and left.key == right.key:
                return Reach.NONE if distinct else Reach.ALL
            if left.known and right.known:
                same = _equal(left.value, right.value)
                if same is not None:
                    return _truth_reach(same != distinct)
            return _by_row(left.row or right.row)
        if kind == "AEXPR_IN":
            items = expr.get("rexpr", {})
            items = items.get("List", {}).get("items", []) if isinstance(items, dict) else items
            return self._in(self.term(expr.get("lexpr"), scope),
                            [self.term(i, scope) for i in items or []], op != "<>")
        if kind in ("AEXPR_BETWEEN", "AEXPR_NOT_BETWEEN", "AEXPR_BETWEEN_SYM",
                    "AEXPR_NOT_BETWEEN_SYM"):
            return self._between(kind, expr, scope)
        if kind in ("AEXPR_LIKE", "AEXPR_ILIKE", "AEXPR_SIMILAR"):
            left = self.term(expr.get("lexpr"), scope)
            pattern_node = expr.get("rexpr")
            if isinstance(pattern_node, dict) and "FuncCall" in pattern_node:  # SIMILAR TO
                pattern_node = (pattern_node["FuncCall"].get("args") or [None])[0]
            pattern = self.term(pattern_node, scope)
            positive = _LIKE_OPS.get(op, _REGEX_OPS.get(op, True))
            if (left.plain and not left.known and pattern.known
                    and isinstance(pattern.value, str) and pattern.value
                    and set(pattern.value) == {"%"}):
                return Reach.ALL if positive else Reach.NONE
            return _by_row(left.row or pattern.row)
        if kind in ("AEXPR_OP_ANY", "AEXPR_OP_ALL"):
            return self._any(kind, op, expr, scope)
        if kind in ("AEXPR_OP", "AEXPR_NULLIF"):  # a boolean made by some other operator
            term = self.term({"A_Expr": expr}, scope)
            return _truth_reach(term.value) if term.known else _by_row(term.row)
        return _by_row(self._depends({"A_Expr": expr}, scope))

    def _in(self, left: _Term, items: list[_Term], positive: bool) -> Reach:
        if left.key is not None and any(i.key == left.key for i in items):
            return Reach.ALL if positive else Reach.NONE
        if left.known and items and all(i.known for i in items):
            if left.value is None:
                return Reach.NONE
            matches = [_equal(left.value, i.value) for i in items]
            if True in matches:
                return Reach.ALL if positive else Reach.NONE
            if any(m is None for m in matches):
                return Reach.NONE  # a NULL in the list: never true
            return Reach.NONE if positive else Reach.ALL
        return _by_row(left.row or any(i.row for i in items))

    def _between(self, kind: str, expr: dict[str, Any], scope: _Scope) -> Reach:
        bounds = expr.get("rexpr", {})
        bounds = bounds.get("List", {}).get("items", []) if isinstance(bounds, dict) else bounds
        if not isinstance(bounds, list) or len(bounds) != 2:
            return Reach.SOME
        x = self.term(expr.get("lexpr"), scope)
        lo, hi = (self.term(b, scope) for b in bounds)

        def inside(a: _Term, b: _Term) -> Reach:
            return _and([_compare("<=", a, x), _compare("<=", x, b)])

        reach = inside(lo, hi)
        if kind.endswith("_SYM"):
            reach = _or([reach, inside(hi, lo)])
        return _not(reach) if "NOT" in kind else reach

    def _any(self, kind: str, op: str, expr: dict[str, Any], scope: _Scope) -> Reach:
        left = self.term(expr.get("lexpr"), scope)
        right = expr.get("rexpr")
        if isinstance(right, dict) and "A_ArrayExpr" in right and op in ("=", "<>"):
            items = [self.term(e, scope) for e in right["A_ArrayExpr"].get("elements", [])]
            if (kind, op) == ("AEXPR_OP_ANY", "="):
                return self._in(left, items, True)
            if (kind, op) == ("AEXPR_OP_ALL", "<>"):
                return self._in(left, items, False)
        if (isinstance(right, dict) and "SubLink" in right and kind == "AEXPR_OP_ANY"
                and op == "="):
            sub = right["SubLink"]
            if self._own_rows(left, sub.get("subselect"), scope) is not None:
                return Reach.ALL
        return _by_row(left.row or self._depends(right, scope))

    def _boolean_test(self, test: dict[str, Any], scope: _Scope) -> Reach:
        kind = test.get("booltesttype")
        arg = test.get("arg")
        known, value = constant(arg)
        if known:
            truth = word_truth(value) if value is not None else None
            results = {"IS_TRUE": truth is True, "IS_NOT_TRUE": truth is not True,
                       "IS_FALSE": truth is False, "IS_NOT_FALSE": truth is not False,
                       "IS_UNKNOWN": truth is None, "IS_NOT_UNKNOWN": truth is not None}
            return _truth_reach(results.get(str(kind), False))
        inner = self.reach(arg, scope)
        if kind in ("IS_TRUE", "IS_NOT_FALSE"):
            return inner
        if kind in ("IS_FALSE", "IS_NOT_TRUE"):
            return _not(inner)
        # IS [NOT] UNKNOWN: a plain comparison is NULL only when its columns are.
        if inner in (Reach.ALL, Reach.NONE) or self._plain_predicate(arg, scope):
            return Reach.NONE if kind == "IS_UNKNOWN" else Reach.ALL
        return inner

    def _plain_predicate(self, node: Any, scope: _Scope) -> bool:
        if not isinstance(node, dict):
            return False
        if "NullTest" in node or "BooleanTest" in node:
            return True
        if "A_Expr" in node and node["A_Expr"].get("kind") == "AEXPR_OP":
            expr = node["A_Expr"]
            return (self.term(expr.get("lexpr"), scope).plain
                    and self.term(expr.get("rexpr"), scope).plain)
        if "BoolExpr" in node:
            return all(self._plain_predicate(a, scope) for a in node["BoolExpr"].get("args", []))
        return "ColumnRef" in node

    def _sublink(self, link: dict[str, Any], scope: _Scope) -> Reach:
        kind = link.get("subLinkType")
        select = link.get("subselect")
        if kind == "EXISTS_SUBLINK":
            own = _same_table_select(select, self.target)
            if own is not None:
                level, body = own
                where = body.get("whereClause")
                inner = self.reach(where, (*scope, level)) if where is not None else Reach.ALL
                if inner == Reach.ALL:
                    return Reach.ALL  # the row itself satisfies the subquery
            return _by_row(self._depends(select, scope))
        if kind == "ANY_SUBLINK":
            ops = name(link.get("operName", []))
            left = self.term(link.get("testexpr"), scope)
            if (not ops or ops[-1] == "=") and self._own_rows(left, select, scope) is not None:
                return Reach.ALL
            return _by_row(left.row or self._depends(select, scope))
        return _by_row(self._depends(link.get("testexpr"), scope)
                       or self._depends(select, scope))

    def _own_rows(self, left: _Term, select: Any, scope: _Scope) -> Reach | None:
        """``left IN (SELECT left FROM <target's table>)`` with nothing restricting the
        subquery: every row finds itself."""
        own = _same_table_select(select, self.target)
        if own is None or left.key is None:
            return None
        level, body = own
        inner_scope = (*scope, level)
        where = body.get("whereClause")
        if where is not None and self.reach(where, inner_scope) != Reach.ALL:
            return None
        targets = [t.get("ResTarget", {}).get("val") for t in body.get("targetList", [])
                   if isinstance(t, dict)]
        terms = [self.term(t, inner_scope) for t in targets]
        if not terms or any(t.key is None for t in terms):
            return None
        key = terms[0].key if len(terms) == 1 else "row(" + ",".join(
            str(t.key) for t in terms) + ")"
        return Reach.ALL if key == left.key else None

    def _scalar(self, select: Any, scope: _Scope) -> _Term | None:
        """(SELECT x) without FROM, or (SELECT x FROM <target's table> s WHERE <true of every
        row>): the row's own value."""
        body = select.get("SelectStmt") if isinstance(select, dict) else None
        if not isinstance(body, dict) or len(body.get("targetList", [])) != 1:
            return None
        if not body.get("fromClause"):
            if any(body.get(k) for k in ("whereClause", "havingClause", "groupClause",
                                         "valuesLists", "limitCount", "limitOffset")):
                return None
            if body.get("op", "SETOP_NONE") != "SETOP_NONE":
                return None
            inner_scope = (*scope, _Level({}, False))
        else:
            own = _same_table_select(select, self.target)
            if own is None:
                return None
            level, body = own
            inner_scope = (*scope, level)
            where = body.get("whereClause")
            if where is not None and self.reach(where, inner_scope) != Reach.ALL:
                return None
        target = body["targetList"][0].get("ResTarget", {}).get("val")
        return self.term(target, inner_scope)

    def _case(self, case: dict[str, Any], scope: _Scope) -> Reach:
        if case.get("arg") is not None:  # CASE x WHEN …: compare, do not guess
            return _by_row(self._depends({"CaseExpr": case}, scope))
        results: list[Reach] = []
        for when in case.get("args", []):
            clause = when.get("CaseWhen", {}) if isinstance(when, dict) else {}
            cond = self.reach(clause.get("expr"), scope)
            result = self.reach(clause.get("result"), scope)
            if cond == Reach.ALL and not self._depends(clause.get("expr"), scope):
                return self._case_of([*results, result], case, scope)  # always taken here
            if cond != Reach.NONE:
                results.append(result)
        default = case.get("defresult")
        results.append(self.reach(default, scope) if default is not None else Reach.NONE)
        return self._case_of(results, case, scope)

    def _case_of(self, results: list[Reach], case: dict[str, Any], scope: _Scope) -> Reach:
        if all(r == Reach.ALL for r in results):
            return Reach.ALL
        if all(r == Reach.NONE for r in results):
            return Reach.NONE
        return _by_row(self._depends({"CaseExpr": case}, scope))

    # --- values -------------------------------------------------------------------------
    def term(self, node: Any, scope: _Scope) -> _Term:
        if not isinstance(node, dict):
            return _Term(row=node is not None)
        if "ColumnRef" in node:
            key, row = _column(node["ColumnRef"].get("fields", []), scope)
            return _Term(row=row, key=key, plain=key is not None)
        known, value = constant(node)
        if known:
            return _Term(True, value, False, "c:" + repr(value), True)
        if "ParamRef" in node:
            return _Term(key=f"${node['ParamRef'].get('number', 0)}")
        if "TypeCast" in node:
            cast = node["TypeCast"]
            inner = self.term(cast.get("arg"), scope)
            type_name = ".".join(name(cast.get("typeName", {}).get("names", [])))
            key = f"{inner.key}::{type_name}" if inner.key is not None else None
            return _Term(row=inner.row, key=key, plain=inner.plain)
        if "A_Expr" in node and node["A_Expr"].get("kind") == "AEXPR_OP":
            return self._operator(node["A_Expr"], scope)
        if "A_Expr" in node and node["A_Expr"].get("kind") == "AEXPR_NULLIF":
            expr = node["A_Expr"]
            left = self.term(expr.get("lexpr"), scope)
            right = self.term(expr.get("rexpr"), scope)
            if left.known and right.known:
                value = None if _equal(left.value, right.value) else left.value
                return _Term(True, value, False, "c:" + repr(value), value is not None)
            return _Term(row=left.row or right.row, key=_joined("nullif", [left, right]))
        if "FuncCall" in node:
            call = node["FuncCall"]
            parts = name(call.get("funcname", []))
            args = [self.term(a, scope) for a in call.get("args", [])]
            row = any(a.row for a in args) or self._depends(
                {k: v for k, v in call.items() if k not in ("args", "funcname")}, scope)
            fn = parts[-1].lower() if parts else ""
            key = None
            if fn in _IMMUTABLE and args and all(a.key is not None for a in args):
                key = f"{fn}(" + ",".join(str(a.key) for a in args) + ")"
            return _Term(row=row, key=key)
        if "CoalesceExpr" in node:
            args = [self.term(a, scope) for a in node["CoalesceExpr"].get("args", [])]
            for arg in args:
                if not arg.known:
                    break
                if arg.value is not None:
                    return _Term(True, arg.value, False, "c:" + repr(arg.value), True)
            return _Term(row=any(a.row for a in args), key=_joined("coalesce", args))
        if "SubLink" in node and node["SubLink"].get("subLinkType") == "EXPR_SUBLINK":
            scalar = self._scalar(node["SubLink"].get("subselect"), scope)
            if scalar is not None:
                return scalar
        if "SQLValueFunction" in node:
            return _Term(key="svf:" + str(node["SQLValueFunction"].get("op")))
        if "RowExpr" in node:
            args = [self.term(a, scope) for a in node["RowExpr"].get("args", [])]
            return _Term(row=any(a.row for a in args), key=_joined("row", args),
                         plain=bool(args) and all(a.plain for a in args))
        if "A_ArrayExpr" in node:
            args = [self.term(a, scope) for a in node["A_ArrayExpr"].get("elements", [])]
            return _Term(row=any(a.row for a in args), key=_joined("array", args))
        if "MinMaxExpr" in node:
            expr = node["MinMaxExpr"]
            args = [self.term(a, scope) for a in expr.get("args", [])]
            return _Term(row=any(a.row for a in args),
                         key=_joined(str(expr.get("op")), args))
        predicate = ("BoolExpr", "NullTest", "BooleanTest", "SubLink", "CaseExpr", "A_Expr")
        if any(k in node for k in predicate):
            reach = self.reach(node, scope)
            if reach in (Reach.ALL, Reach.NONE) and not self._depends(node, scope):
                truth = reach == Reach.ALL
                return _Term(True, truth, False, "c:" + repr(truth), True)
            return _Term(row=reach == Reach.SOME or self._depends(node, scope))
        return _Term(row=self._depends(node, scope))

    def _operator(self, expr: dict[str, Any], scope: _Scope) -> _Term:
        ops = name(expr.get("name", []))
        op = ops[-1] if ops else "?"
        if op in _COMPARISONS or op in _REGEX_OPS:
            reach = self._a_expr(expr, scope)
            if reach in (Reach.ALL, Reach.NONE):
                truth = reach == Reach.ALL
                if not (self._depends(expr.get("lexpr"), scope)
                        or self._depends(expr.get("rexpr"), scope)):
                    return _Term(True, truth, False, "c:" + repr(truth), True)
            left = self.term(expr.get("lexpr"), scope)
            right = self.term(expr.get("rexpr"), scope)
            key = (f"({left.key}{op}{right.key})"
                   if left.key is not None and right.key is not None else None)
            return _Term(row=left.row or right.row, key=key, plain=left.plain and right.plain)
        right = self.term(expr.get("rexpr"), scope)
        if expr.get("lexpr") is None:  # prefix operator: -1, +x, ~x
            if right.known and isinstance(right.value, Decimal) and op in ("-", "+"):
                value = -right.value if op == "-" else right.value
                return _Term(True, value, False, "c:" + repr(value), True)
            key = f"({op}{right.key})" if right.key is not None else None
            return _Term(row=right.row, key=key, plain=right.plain)
        left = self.term(expr.get("lexpr"), scope)
        if left.known and right.known:
            folded = _fold(op, left.value, right.value)
            if folded is not None:
                return _Term(True, folded[0], False, "c:" + repr(folded[0]), True)
        key = (f"({left.key}{op}{right.key})"
               if left.key is not None and right.key is not None else None)
        return _Term(row=left.row or right.row, key=key, plain=left.plain and right.plain)

    def _depends(self, node: Any, scope: _Scope) -> bool:
        """Whether anything in ``node`` may refer to the target's row."""
        if isinstance(node, list):
            return any(self._depends(item, scope) for item in node)
        if not isinstance(node, dict):
            return False
        for key, value in node.items():
            if key == "ColumnRef" and isinstance(value, dict):
                if _column(value.get("fields", []), scope)[1]:
                    return True
            elif key == "CurrentOfExpr":
                return True
            elif key == "SelectStmt" and isinstance(value, dict):
                if self._select_depends(value, scope):
                    return True
            elif isinstance(value, dict | list) and self._depends(value, scope):
                return True
        return False

    def _select_depends(self, select: dict[str, Any], scope: _Scope) -> bool:
        if select.get("op", "SETOP_NONE") != "SETOP_NONE":  # larg and rarg come unwrapped
            return any(self._select_depends(arm, scope) for arm in
                       (select.get("larg"), select.get("rarg")) if isinstance(arm, dict))
        items = select.get("fromClause", [])
        level = _Level(_from_names(items), bool(items))
        inner = (*scope, level)
        return any(self._depends(v, inner) for k, v in select.items()
                   if isinstance(v, dict | list))


def _is_predicate(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    if "A_Expr" in node:
        expr = node["A_Expr"]
        ops = name(expr.get("name", []))
        return expr.get("kind") != "AEXPR_OP" or bool(ops and ops[-1] in _COMPARISONS)
    return any(k in node for k in ("BoolExpr", "NullTest", "BooleanTest"))


def _column(fields: list[Any], scope: _Scope) -> tuple[str | None, bool]:
    """(key, refers to the target's row) of a column reference, resolved through the query
    levels from the innermost out."""
    parts = [str(f["String"]["sval"]).lower() if isinstance(f, dict) and "String" in f
             else "*" for f in fields]
    if not parts:
        return None, True
    column = parts[-1]
    qualifier = ".".join(parts[:-1])
    if qualifier:
        # public.t.id also names t's column when t was written without its schema.
        for name_ in dict.fromkeys((qualifier, qualifier.rpartition(".")[2])):
            for depth in range(len(scope) - 1, -1, -1):
                is_row = scope[depth].names.get(name_)
                if is_row is True:
                    return "ROW." + column, True
                if is_row is False:
                    return f"{depth}:{name_}.{column}", False
        return f"?{qualifier}.{column}", True  # a name the gateway cannot place: say row
    for depth in range(len(scope) - 1, -1, -1):
        level = scope[depth]
        if level.row_level:
            return "ROW." + column, True
        if level.has_from:  # might be this level's or an outer row's column (not for *)
            return f"{depth}:?.{column}", column != "*"
    return "ROW." + column, True


def _joined(fn: str, args: list[_Term]) -> str | None:
    if any(a.key is None for a in args):
        return None
    return f"{fn}(" + ",".join(str(a.key) for a in args) + ")"


def _fold(op: str, left: Any, right: Any) -> tuple[Any] | None:
    if left is None or right is None:
        return (None,) if op in _ARITHMETIC or op == "||" else None
    if op in _ARITHMETIC and isinstance(left, Decimal) and isinstance(right, Decimal):
        return (_ARITHMETIC[op](left, right),)
    if op == "||" and isinstance(left, str) and isinstance(right, str):
        return (left + right,)
    return None


def _equal(left: Any, right: Any) -> bool | None:
    if left is None or right is None:
        return None
    if isinstance(left, bool) != isinstance(right, bool):
        return None  # 't' = true and the like: PostgreSQL coerces, do not guess
    if type(left) is not type(right) and not (isinstance(left, Decimal)
                                              and isinstance(right, Decimal)):
        return None
    return bool(left == right)


def _compare(op: str, left: _Term, right: _Term) -> Reach:
    if left.known and right.known:
        if left.value is None or right.value is None:
            return Reach.NONE  # NULL: neither true nor false
        try:
            return _truth_reach(bool(_COMPARISONS[op](left.value, right.value)))
        except TypeError:  # '1' = 1 and the like: PostgreSQL would coerce; do not guess
            return Reach.BLIND
    if left.key is not None and left.key == right.key:
        return Reach.ALL if _REFLEXIVE[op] else Reach.NONE
    return _by_row(left.row or right.row)


def _truth_reach(value: Any) -> Reach:
    truth = word_truth(value)
    if truth is None:
        return Reach.NONE if value is None else Reach.BLIND
    return Reach.ALL if truth else Reach.NONE


def _by_row(row: bool) -> Reach:
    return Reach.SOME if row else Reach.BLIND


def _not(reach: Reach) -> Reach:
    return {Reach.ALL: Reach.NONE, Reach.NONE: Reach.ALL}.get(reach, reach)


def _and(reaches: list[Reach]) -> Reach:
    if not reaches:
        return Reach.SOME
    if Reach.NONE in reaches:
        return Reach.NONE
    if Reach.SOME in reaches:
        return Reach.SOME
    return Reach.BLIND if Reach.BLIND in reaches else Reach.ALL


def _or(reaches: list[Reach]) -> Reach:
    if not reaches:
        return Reach.SOME
    if Reach.ALL in reaches:
        return Reach.ALL
    if Reach.BLIND in reaches:
        return Reach.BLIND  # whenever the row-blind branch holds, every row is selected
    return Reach.SOME if Reach.SOME in reaches else Reach.NONE
