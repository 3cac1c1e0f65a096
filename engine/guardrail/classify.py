"""SQL → facts, through PostgreSQL's parser (pglast's JSON parse tree: ~2 µs to parse here).

The walk is generic: every node of the tree is visited, so a DELETE inside a CTE, a function
called in a subquery of a VALUES list, or a table read in a lateral join is found wherever it
hides. Handlers per node type add what the operator's vocabulary needs.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from pglast.parser import ParseError, parse_sql_json

# Procedural languages that can reach the operating system; CREATE FUNCTION in one of them is
# "CREATE FUNCTION UNTRUSTED".
TRUSTED_LANGUAGES = frozenset({"sql", "plpgsql", "plperl", "pltcl", "plv8"})


_EXPLICIT_KINDS = {
    "SELECT", "SELECT INTO", "INSERT", "UPDATE", "DELETE", "MERGE", "UPDATE WITHOUT WHERE",
    "DELETE WITHOUT WHERE", "CREATE", "ALTER", "DROP", "ROLE", "TRUNCATE", "GRANT", "REVOKE",
    "COPY", "COPY PROGRAM", "COPY FILE", "DO", "CREATE FUNCTION", "CREATE FUNCTION UNTRUSTED",
    "CREATE FUNCTION UNPARSED BODY", "VACUUM", "VACUUM FULL", "ANALYZE", "EXPLAIN",
    "EXPLAIN ANALYZE", "SET", "SET ROLE", "CREATE TABLE", "ALTER TABLE", "DROP DATABASE",
    "GRANT ROLE", "REVOKE ROLE", "CREATE VIEW", "CREATE INDEX", "CREATE DATABASE",
    "CREATE RULE", "CREATE TABLE AS", "ALTER ROLE", "RENAME", "CALL",
}


def _statement_node_types() -> set[str]:
    from pglast import ast

    return {name for name in dir(ast) if name.endswith("Stmt") and name[:1].isupper()}


class ParseFailure(Exception):
    """PostgreSQL's parser rejects the text (the target would too)."""

    def __init__(self, message: str, cursor: int | None) -> None:
        super().__init__(message)
        self.cursor = cursor


@dataclass
class Facts:
    """What one top-level statement does."""

    text: str
    kinds: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    # Settings the statement changes: name → new value (None: reset or not a constant;
    # name "*": set_config with a name that is not a constant).
    settings: dict[str, str | None] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [", ".join(sorted(self.kinds)) or "unknown statement"]
        if self.functions:
            parts.append("calls " + ", ".join(sorted(self.functions)))
        if self.writes:
            parts.append("writes " + ", ".join(sorted(self.writes)))
        if self.reads:
            parts.append("reads " + ", ".join(sorted(self.reads)))
        return "; ".join(parts)


def classify(sql: str) -> list[Facts]:
    """Facts for each statement of ``sql`` (a multi-statement string gives several)."""
    try:
        raw = sql.encode()
        tree = orjson.loads(parse_sql_json(sql))
    except ParseError as exc:
        cursor = exc.args[1] if len(exc.args) > 1 else None
        raise ParseFailure(str(exc.args[0]) if exc.args else str(exc), cursor) from exc
    except UnicodeEncodeError as exc:
        raise ParseFailure("the statement is not valid UTF-8 text", None) from exc
    except (ValueError, RecursionError) as exc:  # orjson's depth limit, and the like
        raise ParseFailure("the statement is too deeply nested for the gateway to classify",
                           None) from exc
    out: list[Facts] = []
    for entry in tree.get("stmts", []):
        start = entry.get("stmt_location", 0)
        length = entry.get("stmt_len", 0) or len(raw) - start
        text = raw[start : start + length].decode(errors="replace").strip()
        facts = Facts(text)
        try:
            _Walker(facts).visit(entry.get("stmt", {}))
        except RecursionError as exc:
            raise ParseFailure("the statement is too deeply nested to classify", None) from exc
        out.append(facts)
    return out


def _name(parts: list[Any]) -> list[str]:
    return [p["String"]["sval"] for p in parts if isinstance(p, dict) and "String" in p]


def _relation(node: dict[str, Any] | None) -> str | None:
    if not isinstance(node, dict):
        return None
    rel = node.get("RangeVar", node)
    name = rel.get("relname")
    if not name:
        return None
    schema = rel.get("schemaname")
    return f"{schema}.{name}".lower() if schema else str(name).lower()


def _words(node_type: str) -> str:
    """AlterTableStmt → ALTER TABLE (the generic kind for node types without a handler)."""
    base = node_type.removesuffix("Stmt")
    return " ".join(re.findall(r"[A-Z][a-z]*", base)).upper()


_OBJECT_WORDS = {
    "OBJECT_TABLE": "TABLE", "OBJECT_SCHEMA": "SCHEMA", "OBJECT_INDEX": "INDEX",
    "OBJECT_VIEW": "VIEW", "OBJECT_MATVIEW": "MATERIALIZED VIEW", "OBJECT_SEQUENCE": "SEQUENCE",
    "OBJECT_FUNCTION": "FUNCTION", "OBJECT_PROCEDURE": "PROCEDURE", "OBJECT_TYPE": "TYPE",
    "OBJECT_EXTENSION": "EXTENSION", "OBJECT_TRIGGER": "TRIGGER", "OBJECT_DATABASE": "DATABASE",
    "OBJECT_FOREIGN_TABLE": "FOREIGN TABLE", "OBJECT_POLICY": "POLICY", "OBJECT_RULE": "RULE",
}


_OBJECT_KINDS = {f"DROP {w}" for w in _OBJECT_WORDS.values()}

# Every kind a rule may name: the explicit vocabulary plus PostgreSQL's statement node types
# in words (AlterSystemStmt → ALTER SYSTEM, CreateExtensionStmt → CREATE EXTENSION, ...).
STATEMENT_KINDS = frozenset(
    _EXPLICIT_KINDS | _OBJECT_KINDS | {_words(n) for n in _statement_node_types()}
)


class _Walker:
    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.handlers: dict[str, Callable[[dict[str, Any]], bool]] = {
            "SelectStmt": self._select,
            "InsertStmt": self._insert,
            "UpdateStmt": self._update,
            "DeleteStmt": self._delete,
            "MergeStmt": self._merge,
            "DropStmt": self._drop,
            "TruncateStmt": self._truncate,
            "GrantStmt": self._grant,
            "GrantRoleStmt": self._grant_role,
            "CopyStmt": self._copy,
            "DoStmt": self._do,
            "CreateFunctionStmt": self._create_function,
            "VacuumStmt": self._vacuum,
            "ExplainStmt": self._explain,
            "VariableSetStmt": self._set,
            "CreateStmt": self._create_table,
            "CreateTableAsStmt": self._create_table_as,
            "ViewStmt": self._created("VIEW", "view"),
            "IndexStmt": self._created("INDEX", None),
            "CreatedbStmt": self._created("DATABASE", None),
            "RuleStmt": self._created("RULE", "relation"),
            "RenameStmt": self._rename,
            "CallStmt": self._call,
            "AlterTableStmt": self._alter_table,
            "DropdbStmt": self._dropdb,
            "FuncCall": self._func_call,
            "RangeVar": self._range_var,
        }

    def visit(self, node: Any) -> None:
        """Visit every dict and list below ``node``; scalars (most values) cost no call."""
        handlers = self.handlers
        if isinstance(node, list):
            for item in node:
                if isinstance(item, dict | list):
                    self.visit(item)
            return
        for key, value in node.items():
            if isinstance(value, dict):
                if key[:1].isupper():
                    handler = handlers.get(key)
                    if handler is None:
                        if key.endswith("Stmt"):
                            self._generic(key)
                    elif not handler(value):
                        continue  # the handler decided not to look inside
                self.visit(value)
            elif isinstance(value, list):
                self.visit(value)

    # --- statements ---------------------------------------------------------------------
    def _generic(self, node_type: str) -> None:
        words = _words(node_type)
        kinds = self.facts.kinds
        kinds.add(words)
        first = words.split(" ", 1)[0]
        if first in ("CREATE", "ALTER", "DROP"):
            kinds.add(first)
        if "ROLE" in words.split() or words in ("CREATE USER", "ALTER USER", "DROP USER"):
            kinds.add("ROLE")

    def _created(self, what: str, target: str | None) -> Callable[[dict[str, Any]], bool]:
        def handler(node: dict[str, Any]) -> bool:
            self.facts.kinds.update({"CREATE", f"CREATE {what}"})
            if target is not None:
                self._write(node.get(target))
            return True

        return handler

    def _create_table_as(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.update({"CREATE", "CREATE TABLE AS"})
        into = node.get("into", {})
        into = into.get("IntoClause", into) if isinstance(into, dict) else {}
        self._write(into.get("rel"))
        return True

    def _rename(self, node: dict[str, Any]) -> bool:
        kinds = self.facts.kinds
        kinds.update({"ALTER", "RENAME"})
        what = str(node.get("renameType", "")).removeprefix("OBJECT_")
        if what == "ROLE":
            kinds.update({"ALTER ROLE", "ROLE"})
        elif what == "TABLE":
            kinds.add("ALTER TABLE")
            self._write(node.get("relation"))
        elif what == "DATABASE":
            kinds.add("ALTER DATABASE")
        return True

    def _call(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("CALL")
        call = node.get("funccall")
        if isinstance(call, dict):
            self._func_call(call.get("FuncCall", call))
        return True

    def _grant_role(self, node: dict[str, Any]) -> bool:
        granted = node.get("is_grant", False)
        self.facts.kinds.update({"GRANT" if granted else "REVOKE",
                                 "GRANT ROLE" if granted else "REVOKE ROLE", "ROLE"})
        return True

    def _create_table(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.update({"CREATE", "CREATE TABLE"})
        self._write(node.get("relation"))
        return True

    def _alter_table(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.update({"ALTER", "ALTER TABLE"})
        self._write(node.get("relation"))
        return True

    def _dropdb(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.update({"DROP", "DROP DATABASE"})
        return False

    def _select(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("SELECT")
        into = node.get("intoClause")
        if isinstance(into, dict):
            target = _relation(into.get("rel"))
            if target:
                self.facts.writes.add(target)
                self.facts.kinds.add("SELECT INTO")
        return True

    def _insert(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("INSERT")
        self._write(node.get("relation"))
        return True

    def _update(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("UPDATE")
        self._write(node.get("relation"))
        if _unbounded(node.get("whereClause")):
            self.facts.kinds.add("UPDATE WITHOUT WHERE")
        return True

    def _delete(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("DELETE")
        self._write(node.get("relation"))
        if _unbounded(node.get("whereClause")):
            self.facts.kinds.add("DELETE WITHOUT WHERE")
        return True

    def _merge(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("MERGE")
        self._write(node.get("relation"))
        return True

    def _write(self, relation: Any) -> None:
        name = _relation(relation)
        if name:
            self.facts.writes.add(name)

    def _drop(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("DROP")
        what = _OBJECT_WORDS.get(str(node.get("removeType")))
        if what:
            self.facts.kinds.add(f"DROP {what}")
        if node.get("removeType") == "OBJECT_TABLE":
            for obj in node.get("objects", []):
                parts = _name(obj.get("List", {}).get("items", [])) if isinstance(obj, dict) else []
                if parts:
                    self.facts.writes.add(".".join(parts).lower())
        return True

    def _truncate(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("TRUNCATE")
        for rel in node.get("relations", []):
            self._write(rel)
        return False

    def _grant(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("GRANT" if node.get("is_grant") else "REVOKE")
        return True

    def _copy(self, node: dict[str, Any]) -> bool:
        kinds = self.facts.kinds
        kinds.add("COPY")
        if node.get("is_program"):
            kinds.add("COPY PROGRAM")
        elif node.get("filename"):
            kinds.add("COPY FILE")
        rel = _relation(node.get("relation"))
        if rel:
            (self.facts.writes if node.get("is_from") else self.facts.reads).add(rel)
        return True

    def _do(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("DO")  # its body is opaque: judged by the DO rule alone
        return False

    def _create_function(self, node: dict[str, Any]) -> bool:
        kinds = self.facts.kinds
        kinds.update({"CREATE", "CREATE FUNCTION"})
        language, body = "sql", None
        for option in node.get("options", []):
            elem = option.get("DefElem", {}) if isinstance(option, dict) else {}
            arg = elem.get("arg", {})
            if elem.get("defname") == "language" and isinstance(arg, dict):
                language = arg.get("String", {}).get("sval", language).lower()
            elif elem.get("defname") == "as" and isinstance(arg, dict):
                strings = _name(arg.get("List", {}).get("items", []))
                body = strings[0] if strings else None
        if language not in TRUSTED_LANGUAGES:
            kinds.add("CREATE FUNCTION UNTRUSTED")
        if language == "sql" and body:
            try:  # an SQL body runs as its statements: judge what it does
                for inner in classify(body):
                    kinds.update(inner.kinds)
                    self.facts.functions.update(inner.functions)
                    self.facts.reads.update(inner.reads)
                    self.facts.writes.update(inner.writes)
            except ParseFailure:
                kinds.add("CREATE FUNCTION UNPARSED BODY")
        return True

    def _vacuum(self, node: dict[str, Any]) -> bool:
        is_vacuum = node.get("is_vacuumcmd", False)  # pglast leaves a false flag out
        self.facts.kinds.add("VACUUM" if is_vacuum else "ANALYZE")
        for option in node.get("options", []):
            if isinstance(option, dict) and option.get("DefElem", {}).get("defname") == "full":
                self.facts.kinds.add("VACUUM FULL")
        return True

    def _explain(self, node: dict[str, Any]) -> bool:
        self.facts.kinds.add("EXPLAIN")
        analyze = False
        for option in node.get("options", []):
            elem = option.get("DefElem", {}) if isinstance(option, dict) else {}
            if elem.get("defname") == "analyze":
                # EXPLAIN (ANALYZE false) does not run the statement; no argument means true.
                analyze = _option_truth(elem.get("arg")) is not False
        if analyze:
            self.facts.kinds.add("EXPLAIN ANALYZE")
        return analyze  # only EXPLAIN ANALYZE runs the statement inside

    def _set(self, node: dict[str, Any]) -> bool:
        name = str(node.get("name", "")).lower()
        self.facts.kinds.add("SET")
        if name in ("role", "session_authorization"):
            self.facts.kinds.add("SET ROLE")
        value: str | None = None
        args = node.get("args", [])
        if node.get("kind") == "VAR_SET_VALUE" and len(args) == 1:
            known, constant = _constant(args[0])
            value = str(constant) if known and constant is not None else None
        if name:
            self.facts.settings[name] = value
        return True

    # --- expressions --------------------------------------------------------------------
    def _func_call(self, node: dict[str, Any]) -> bool:
        parts = _name(node.get("funcname", []))
        if parts:
            name = parts[-1].lower()
            self.facts.functions.add(name)
            if name == "set_config":
                self._set_config(node.get("args", []))
        return True

    def _set_config(self, args: list[Any]) -> None:
        """set_config(name, value, is_local) is SET by another name."""
        known, setting = _constant(args[0]) if args else (False, None)
        setting = str(setting).lower() if known and setting is not None else "*"
        known, value = _constant(args[1]) if len(args) > 1 else (False, None)
        self.facts.settings[setting] = str(value) if known and value is not None else None
        self.facts.kinds.add("SET")
        if setting in ("role", "session_authorization", "*"):
            self.facts.kinds.add("SET ROLE")

    def _range_var(self, node: dict[str, Any]) -> bool:
        name = _relation(node)
        if name:
            self.facts.reads.add(name)
        return True


_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "<>": operator.ne, "!=": operator.ne, "<": operator.lt,
    ">": operator.gt, "<=": operator.le, ">=": operator.ge,
}
_TRUE_WORDS = {"t", "true", "on", "yes", "y", "1"}
_FALSE_WORDS = {"f", "false", "off", "no", "n", "0"}


def _unbounded(where: Any) -> bool:
    """No WHERE, or one that is always true: WHERE true, 1=1, 'a'='a', x OR true, NOT (1=2)."""
    return where is None or _truth(where) is True


def _constant(node: Any) -> tuple[bool, Any]:
    """(known, value) of a literal, through casts; numbers as Decimal, so 1 = 1.0."""
    if not isinstance(node, dict):
        return False, None
    if "TypeCast" in node:
        known, value = _constant(node["TypeCast"].get("arg"))
        type_name = _name(node["TypeCast"].get("typeName", {}).get("names", []))
        if known and type_name and type_name[-1] in ("bool", "boolean"):
            truth = _word_truth(value)
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


def _option_truth(arg: Any) -> bool | None:
    """The value of an option like EXPLAIN's ANALYZE: no argument means true."""
    if not isinstance(arg, dict):
        return True if arg is None else None
    for key, field_name in (("String", "sval"), ("Boolean", "boolval"), ("Integer", "ival")):
        if key in arg:
            inner = arg[key].get(field_name)
            if key == "Boolean":
                return bool(inner)
            return _word_truth(str(inner if inner is not None else 0))
    known, value = _constant(arg)
    return _word_truth(value) if known else None


def _word_truth(value: Any) -> bool | None:
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


def _truth(node: Any) -> bool | None:
    """Three-valued: True or False when the expression is the same for every row, else None."""
    if not isinstance(node, dict):
        return None
    known, value = _constant(node)
    if known:
        return _word_truth(value)
    if "BoolExpr" in node:
        expr = node["BoolExpr"]
        args = [_truth(a) for a in expr.get("args", [])]
        op = expr.get("boolop")
        if op == "OR_EXPR":
            return True if True in args else (False if args and all(a is False for a in args)
                                              else None)
        if op == "AND_EXPR":
            return False if False in args else (True if args and all(a is True for a in args)
                                                else None)
        if op == "NOT_EXPR" and args and args[0] is not None:
            return not args[0]
        return None
    if "A_Expr" in node:
        return _comparison(node["A_Expr"])
    if "NullTest" in node:
        test = node["NullTest"]
        known, value = _constant(test.get("arg"))
        if known:
            return bool((value is None) == (test.get("nulltesttype") == "IS_NULL"))
    return None


def _comparison(expr: dict[str, Any]) -> bool | None:
    ops = _name(expr.get("name", []))
    if expr.get("kind") != "AEXPR_OP" or not ops:
        return None
    compare = _COMPARISONS.get(ops[-1])
    if compare is None:
        return None
    lk, lv = _constant(expr.get("lexpr"))
    rk, rv = _constant(expr.get("rexpr"))
    if lk and rk:
        if lv is None or rv is None:
            return None  # NULL: neither true nor false
        try:
            return bool(compare(lv, rv))
        except TypeError:  # '1' = 1 and the like: PostgreSQL would coerce; do not guess
            return None
    if ops[-1] == "=" and _same_column(expr.get("lexpr"), expr.get("rexpr")):
        return True  # WHERE id = id: true for every row but NULLs; treated as unbounded
    return None


def _same_column(left: Any, right: Any) -> bool:
    if not (isinstance(left, dict) and isinstance(right, dict)):
        return False
    lcol, rcol = left.get("ColumnRef"), right.get("ColumnRef")
    if not (isinstance(lcol, dict) and isinstance(rcol, dict)):
        return False
    return _name(lcol.get("fields", [])) == _name(rcol.get("fields", []))
