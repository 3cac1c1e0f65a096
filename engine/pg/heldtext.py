"""What a held statement's text does after its one approved execution.

An approval covers one execution of what its approver was shown (invariant 10). Two shapes of
statement outlive that execution, and the relay treats them so (outside attack on issue 12,
round 15):

- **A cursor.** ``DECLARE c CURSOR FOR SELECT setval(…)`` runs its query as rows are
  fetched, not when it is approved: a backward fetch (``FETCH ABSOLUTE 1``, ``MOVE
  BACKWARD``) ran the approved setval again (round 15), a FETCH after a SET ran it under
  settings its approver was not shown, a ``WITH HOLD`` cursor ran it at the COMMIT, and a
  PL/pgSQL function fetched it by a name it computed (round 17). A held DECLARE is refused
  (``declares``): a statement is approved to run at once.
- **Stored code.** A function, procedure, view, materialized view, rule, trigger, default,
  check, operator, cast or aggregate runs what it contains each time it is called, read,
  fired or refreshed, in any session, and none of those is held again: its approval is of the
  definition. The approver is told so (``stores_code``).

And one shape runs before it: in a query string of several statements, the settings its
approver is shown are read before the first one runs, so a statement in front of the held one
that may change them unseen — one that calls code not PostgreSQL's own (in attribute notation
too: ``(x).f`` is ``f(x)``), reads or writes a
relation (a view's query or a DEFAULT may call ``set_config``), sets a setting or runs code
inside it — makes the query string one that cannot be held (``unseen_before``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pglast
from pglast import ast
from pglast.enums.parsenodes import ObjectType
from pglast.parser import scan
from pglast.visitors import Visitor

from engine.guardrail.classify import ParseFailure, classify

STORED = ("approving it stores code that runs without a new approval each time it is "
          "called, read, fired or refreshed, in any session (the approval is of the "
          "definition)")
DECLARES = ("a cursor runs its query when its rows are fetched, not when it is approved, so a "
            "DECLARE cannot be approved")

_CODE = (ast.CreateFunctionStmt, ast.ViewStmt, ast.RuleStmt, ast.CreateTrigStmt,
         ast.CreateEventTrigStmt, ast.CreatePolicyStmt, ast.CreateDomainStmt,
         ast.AlterDomainStmt, ast.CreateCastStmt, ast.DefineStmt, ast.CreateStmt,
         ast.AlterTableStmt, ast.CreateOpClassStmt, ast.AlterFunctionStmt,
         ast.CreateTransformStmt, ast.CreateConversionStmt)


class _Shapes(Visitor):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.declares = False
        self.stores = False

    def visit_DeclareCursorStmt(self, ancestors: object, node: ast.DeclareCursorStmt) -> None:
        self.declares = True

    def visit_CreateTableAsStmt(self, ancestors: object, node: ast.CreateTableAsStmt) -> None:
        if node.objtype == ObjectType.OBJECT_MATVIEW:
            self.stores = True

    def visit(self, ancestors: object, node: object) -> None:
        if isinstance(node, _CODE):
            self.stores = True


@lru_cache(maxsize=256)
def _shapes(text: str) -> tuple[bool, bool]:
    """(declares a cursor, stores code); a text that does not parse counts as both."""
    try:
        tree = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return True, True
    shapes = _Shapes()
    shapes(tree)
    return shapes.declares, shapes.stores


# What may come in front of a held statement in its query string: opening a block or a
# savepoint, a query or a table made of nothing the gateway cannot see. Anything else may
# change the settings after they are read: a COMMIT or ROLLBACK undoes a SET, a FETCH or MOVE
# runs a cursor's query, EXPLAIN plans (and folds immutable functions of) a view (round 17).
_IN_FRONT = frozenset({"SelectStmt", "CreateStmt", "CreateTableAsStmt"})
_OPENS = frozenset({"TRANS_STMT_BEGIN", "TRANS_STMT_START", "TRANS_STMT_SAVEPOINT"})


@lru_cache(maxsize=256)
def unseen_before(text: str, held: int) -> bool:
    """Whether a statement of ``text`` in front of its ``held``-th (from 0) may change the
    settings in force unseen (a text that does not parse: yes)."""
    try:
        facts = classify(text)
        kinds = [(s.stmt.__class__.__name__, getattr(s.stmt, "kind", None))
                 for s in pglast.parse_sql(text)]
    except (ParseFailure, pglast.parser.ParseError):
        return True
    for name, kind in kinds[:held]:
        if name == "TransactionStmt":
            if kind is None or kind.name not in _OPENS:
                return True
        elif name not in _IN_FRONT:
            return True
    for f in facts[:held]:
        creates = "CREATE" in f.kinds  # a relation it makes has no code yet
        # ``(x).f`` of a name no function of PostgreSQL's has (``Facts.attributes``): a
        # user's function may be what runs.
        if (f.reaches or f.settings or f.parts or f.reads or f.read_names or f.attributes
                or (f.writes and not creates)):
            return True
    return False


_COMMENT_LINE = re.compile(r"^[ \t]*--(.*)$", re.MULTILINE)
# Characters a display may take for a line break, or draw as nothing: only \t and \n pass.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u0085\u2028\u2029]")


def imitates_notes(text: str) -> bool:
    """Whether something in ``text`` (a held statement, the statement an EXECUTE in it runs,
    its parameters as shown) could pass for a line the gateway adds for the approver
    (``-- gatewatch: settings in force: …``): the gateway's name anywhere, in any case or
    compatibility form; a comment (``--`` anywhere on a line, ``/* */``) or a line beginning
    with ``--`` holding anything but ASCII (a lookalike of the name); a control character a
    display may take for a line break (``\r``, ``\f``, ``\v``). A client wrote such notes
    under and beside a held statement, and the approver read the forged settings as the
    gateway's (outside attack on issue 12, rounds 16 and 17)."""
    if "gatewatch" in unicodedata.normalize("NFKC", text).casefold() or _CONTROLS.search(text):
        return True
    if any(not m.group(1).isascii() for m in _COMMENT_LINE.finditer(text)):
        return True
    if text.isascii():
        return False
    try:
        tokens = scan(text)
    except pglast.parser.ParseError:
        return True
    raw = text.encode()
    return any(t.name in ("SQL_COMMENT", "C_COMMENT")
               and not raw[t.start:t.end + 1].isascii() for t in tokens)


def declares(text: str) -> bool:
    return _shapes(text)[0]


def stores_code(text: str) -> bool:
    return _shapes(text)[1]
