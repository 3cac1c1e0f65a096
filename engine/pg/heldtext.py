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
inside it, calls a function of PostgreSQL's that is not known to run nothing but its own code
(``cursor_to_xml`` fetches a cursor, ``query_to_xml`` runs SQL: ``pure_names``) or names a
type of a user's — makes the query string one that cannot be held (``unseen_before``).
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

from engine.guardrail import builtin_names, pure_names
from engine.guardrail.classify import ParseFailure, classify_text

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


class _Executes(Visitor):  # type: ignore[misc]
    """Whether a statement runs a prepared statement (``EXECUTE``, also as a query of its own:
    ``CREATE TABLE … AS EXECUTE p``)."""

    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def visit_ExecuteStmt(self, ancestors: object, node: ast.ExecuteStmt) -> None:
        self.found = True


class _Types(Visitor):  # type: ignore[misc]
    """Whether a statement names a type that may be a user's (its input runs a domain's
    CHECK: a cast, a column definition list, an XMLTABLE column)."""

    def __init__(self, shadowed: bool) -> None:
        super().__init__()
        self.shadowed = shadowed
        self.users = False

    def visit_TypeName(self, ancestors: object, node: ast.TypeName) -> None:
        parts = [getattr(n, "sval", "") for n in node.names or ()]
        if len(parts) == 2 and parts[0] == "pg_catalog":
            self.users |= parts[1] not in builtin_names.TYPES
        elif len(parts) == 1:
            self.users |= self.shadowed or parts[0] not in builtin_names.TYPES
        else:
            self.users = True


@lru_cache(maxsize=256)
def unseen_before(text: str, held: int, shadowed: bool = False) -> bool:
    """Whether a statement of ``text`` in front of its ``held``-th (from 0) may change the
    settings in force unseen (a text that does not parse: yes). Only what runs no code but
    PostgreSQL's own, and changes nothing, may: every function it calls is one of
    ``pure_names.PURE`` (not ``cursor_to_xml``, which fetches a cursor whose query may call
    ``set_config``, nor ``query_to_xml``, ``ts_stat``, ``table_to_xml``: outside attack round
    18), every type it names is PostgreSQL's. ``shadowed``: the session may have put a schema
    ahead of pg_catalog (a name without its schema may be a user's). Names of PostgreSQL's a
    user's overload may answer to are for the caller to ask the catalog (``front_names``)."""
    try:
        facts = classify_text(text, shadowed=shadowed)[0]
        statements = pglast.parse_sql(text)
    except (ParseFailure, pglast.parser.ParseError):
        return True
    for raw in statements[:held]:
        stmt = raw.stmt
        if stmt is None:
            return True
        if isinstance(stmt, ast.TransactionStmt):
            if stmt.kind is None or stmt.kind.name not in _OPENS:
                return True
        elif stmt.__class__.__name__ not in _IN_FRONT:
            return True
        types = _Types(shadowed)
        types(stmt)
        if types.users:
            return True
        executes = _Executes()
        executes(stmt)
        if executes.found:
            # ``CREATE TABLE z AS EXECUTE p``: the prepared query runs, whatever it calls
            # (outside attack round 19: a ``set_config`` in front of a held statement).
            return True
    for f in facts[:held]:
        creates = "CREATE" in f.kinds  # a relation it makes has no code yet
        # ``(x).f`` of a name no function of PostgreSQL's has (``Facts.attributes``): a
        # user's function may be what runs.
        if (f.reaches or f.settings or f.parts or f.reads or f.read_names or f.attributes
                or (f.writes and not creates) or not f.functions <= pure_names.PURE):
            return True
    return False


@lru_cache(maxsize=256)
def front_names(text: str, held: int) -> frozenset[str]:
    """PostgreSQL's names (``Facts.builtins``: functions, ``operator:+``, ``type:t``) that
    the statements in front of the ``held``-th call without naming pg_catalog: a user's
    overload of one (``public.lower(int)`` for ``lower(5)``) would run the user's code."""
    try:
        facts = classify_text(text)[0]
    except ParseFailure:
        return frozenset()  # (``unseen_before`` refuses it)
    return frozenset(n for f in facts[:held] for n in f.builtins)


# Characters a display may take for a line break, or draw as nothing: only \t and \n pass.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u0085\u2028\u2029]")
_NAME = "gatewatch"
# Characters drawn as nothing, or as a blank, that Unicode does not class as whitespace or
# format characters (Hangul fillers, the braille blank, the combining grapheme joiner).
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u180e\u17b4\u17b5")
# Lookalikes of the Latin letters and of the hyphen-minus (after NFKD, marks dropped, case
# folded): Cyrillic, Greek, Armenian, Cherokee, IPA, small capitals; digits for letters.
_LOOKALIKES = str.maketrans({
    **dict.fromkeys("\u0430\u03b1\u0251\u2c65\u237a\u1d004@", "a"),
    **dict.fromkeys("\u0432\u03b2\u044c\u044a\u02998", "b"),
    **dict.fromkeys("\u0441\u03f2\u010b\u00e7\u1d04\u217d\uabaf(", "c"),
    **dict.fromkeys("\u0501\u217e\ua4d2", "d"),
    **dict.fromkeys("\u0435\u0454\u03b5\u03f5\u04bd\u025b\u1d07\u212e\uab323", "e"),
    **dict.fromkeys("\u0192\u03dd", "f"),
    **dict.fromkeys("\u0261\u0581\u01e5\u0262\uab90\u1d839", "g"),
    **dict.fromkeys("\u04bb\u0570\u029c\u043d\uab8b", "h"),
    **dict.fromkeys("\u0456\u03b9\u0131\u0269\u04cf\u2170\u00a1!|", "i"),
    **dict.fromkeys("\u0458\u03f3", "j"), **dict.fromkeys("\u03ba\u043a\u1d0b", "k"),
    **dict.fromkeys("\u04cf\u217c\u2113\u01c01|", "l"), **dict.fromkeys("\u043c\u1d0d\u217f", "m"),
    **dict.fromkeys("\u0578\u03b7\u043f\u0274", "n"),
    **dict.fromkeys("\u043e\u03bf\u03c3\u0585\u1d0f\uff100\u1d11", "o"),
    **dict.fromkeys("\u0440\u03c1\u1d18", "p"), **dict.fromkeys("\u051b\u0566", "q"),
    **dict.fromkeys("\u0433\u0280\u1d26", "r"), **dict.fromkeys("\u0455\ua7315$", "s"),
    **dict.fromkeys("\u0442\u03c4\u1d1b7+", "t"), **dict.fromkeys("\u03c5\u057d\u1d1c\u03bc", "u"),
    **dict.fromkeys("\u03bd\u0475\u1d20", "v"),
    **dict.fromkeys("\u051d\u0461\u03c9\u0448\u0449\uab83\u1d21\u026f", "w"),
    **dict.fromkeys("\u0445\u03c7\u00d7", "x"), **dict.fromkeys("\u0443\u03b3\u04af", "y"),
    **dict.fromkeys("\u1d222", "z"),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
                    "\u2043\u02d7\u2796", "-"),
})


def _invisible(ch: str) -> bool:
    """Whether ``ch`` is drawn as a blank or as nothing (whitespace, a format character, a
    control, a combining mark on nothing)."""
    return (ch.isspace() or ch in _BLANKS
            or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"))


def skeleton(text: str) -> str:
    """``text`` as it may read: compatibility forms and accents undone, what is drawn as
    nothing dropped, lookalikes as the Latin letters (and hyphen-minus) they imitate, in
    lower case."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    kept = "".join(ch for ch in decomposed if not (
        unicodedata.category(ch) in ("Cf", "Mn", "Me") or ch in _BLANKS))
    return kept.casefold().translate(_LOOKALIKES)


def _names_the_gateway(text: str, *, joined: bool = False) -> bool:
    """Whether ``text`` could read as the gateway's name: its skeleton holds it (``joined``:
    also with what separates the letters, blanks and punctuation, taken out)."""
    read = skeleton(text)
    return _NAME in read or (joined and _NAME in "".join(ch for ch in read if ch.isalnum()))


def _note_lines(text: str) -> list[str]:
    """The lines of ``text`` (split at every Unicode line break) whose first visible
    characters are ``--`` or lookalikes of it, what is drawn as nothing in front: what may
    pass for a note of the gateway's, wherever it sits (a comment, a string, a quoted
    identifier, a dollar quote)."""
    lines = []
    for line in text.splitlines():
        shown = "".join(ch for ch in line if not _invisible(ch))
        if skeleton(shown[:2]) == "--":
            lines.append(line)
    return lines


def imitates_notes(text: str) -> bool:
    """Whether something in ``text`` (a held statement, the statement an EXECUTE in it runs,
    its parameters as shown) could pass for a line the gateway adds for the approver
    (``-- gatewatch: settings in force: …``): the gateway's name anywhere, in any case,
    compatibility form or lookalike (``skeleton``: a Cyrillic a, a 4 for an a); a line
    whose first visible characters are ``--`` (after any Unicode blank or invisible
    character, a no-break space among them), wherever it is, holding anything but ASCII; a
    comment (``--`` anywhere on a line, ``/* */``) holding anything but ASCII; a control
    character a display may take for a line break (``\r``, ``\f``, ``\v``). A client wrote
    such notes under and beside a held statement, and the approver read the forged settings
    as the gateway's (outside attack on issue 12, rounds 16 to 18)."""
    if _CONTROLS.search(text) or _names_the_gateway(text):
        return True
    if any(not line.isascii() or _names_the_gateway(line, joined=True)
           for line in _note_lines(text)):
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
