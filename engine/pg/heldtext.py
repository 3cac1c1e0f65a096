"""What a held statement's text does after its one approved execution.

An approval covers one execution of what its approver was shown (invariant 10). Two shapes of
statement outlive that execution, and the relay treats them so (outside attack on issue 12,
round 15):

- **A cursor that can scroll.** ``DECLARE c CURSOR FOR SELECT setval(…)`` runs its query as
  rows are fetched, and a backward fetch (``FETCH ABSOLUTE 1``, ``MOVE BACKWARD``, ``FETCH
  RELATIVE 0``) runs it again: the approved setval ran at every one. PostgreSQL lets a cursor
  declared without ``NO SCROLL`` scan backward whenever its plan can, so a held DECLARE is
  refused unless it says ``NO SCROLL`` (then every re-fetch is PostgreSQL's error).
- **Stored code.** A function, procedure, view, materialized view, rule, trigger, default,
  check, operator, cast or aggregate runs what it contains each time it is called, read,
  fired or refreshed, in any session, and none of those is held again: its approval is of the
  definition. The approver is told so (``stores_code``).

And one shape runs before it: in a query string of several statements, the settings its
approver is shown are read before the first one runs, so a statement in front of the held one
that may change them unseen — one that calls code not PostgreSQL's own, reads or writes a
relation (a view's query or a DEFAULT may call ``set_config``), sets a setting or runs code
inside it — makes the query string one that cannot be held (``unseen_before``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pglast
from pglast import ast
from pglast.enums.parsenodes import CURSOR_OPT_NO_SCROLL, ObjectType
from pglast.visitors import Visitor

from engine.guardrail.classify import ParseFailure, classify

STORED = ("approving it stores code that runs without a new approval each time it is "
          "called, read, fired or refreshed, in any session (the approval is of the "
          "definition)")
SCROLLS = ("a cursor held for an approval must be declared NO SCROLL: fetching back would run "
           "its query again, which its approval does not cover")

_CODE = (ast.CreateFunctionStmt, ast.ViewStmt, ast.RuleStmt, ast.CreateTrigStmt,
         ast.CreateEventTrigStmt, ast.CreatePolicyStmt, ast.CreateDomainStmt,
         ast.AlterDomainStmt, ast.CreateCastStmt, ast.DefineStmt, ast.CreateStmt,
         ast.AlterTableStmt, ast.CreateOpClassStmt, ast.AlterFunctionStmt,
         ast.CreateTransformStmt, ast.CreateConversionStmt)


class _Shapes(Visitor):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.scrolls = False
        self.stores = False

    def visit_DeclareCursorStmt(self, ancestors: object, node: ast.DeclareCursorStmt) -> None:
        if not (node.options or 0) & CURSOR_OPT_NO_SCROLL:
            self.scrolls = True

    def visit_CreateTableAsStmt(self, ancestors: object, node: ast.CreateTableAsStmt) -> None:
        if node.objtype == ObjectType.OBJECT_MATVIEW:
            self.stores = True

    def visit(self, ancestors: object, node: object) -> None:
        if isinstance(node, _CODE):
            self.stores = True


@lru_cache(maxsize=256)
def _shapes(text: str) -> tuple[bool, bool]:
    """(declares a cursor that can scroll, stores code); a text that does not parse counts as
    both."""
    try:
        tree = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return True, True
    shapes = _Shapes()
    shapes(tree)
    return shapes.scrolls, shapes.stores


@lru_cache(maxsize=256)
def unseen_before(text: str, held: int) -> bool:
    """Whether a statement of ``text`` in front of its ``held``-th (from 0) may change the
    settings in force unseen (a text that does not parse: yes)."""
    try:
        facts = classify(text)
    except (ParseFailure, pglast.parser.ParseError):
        return True
    for f in facts[:held]:
        creates = "CREATE" in f.kinds  # a relation it makes has no code yet
        if (f.reaches or f.settings or f.parts or f.reads or f.read_names
                or (f.writes and not creates)):
            return True
    return False


_COMMENT_LINE = re.compile(r"^[ \t]*--(.*)$", re.MULTILINE)


def imitates_notes(text: str) -> bool:
    """Whether a line of ``text`` could pass for one the gateway adds for the approver
    (``-- gatewatch: settings in force: …``): a comment line naming the gateway, in any case
    or compatibility form, or holding anything but ASCII (a lookalike of its name). A client
    wrote one under a held statement, and the approver read the forged settings as the
    gateway's (outside attack on issue 12, round 16)."""
    for m in _COMMENT_LINE.finditer(text):
        line = m.group(1)
        if not line.isascii() or "gatewatch" in unicodedata.normalize("NFKC", line).casefold():
            return True
    return False


def scrolls(text: str) -> bool:
    return _shapes(text)[0]


def stores_code(text: str) -> bool:
    return _shapes(text)[1]
