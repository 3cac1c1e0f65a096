"""Issue 12: a user's overload of one of PostgreSQL's names (``public.lower(int)`` answers
``lower(5)``; an ``=`` for a user's type; a user's cast into ``text``) runs a user's code under
a built-in name. The classifier lists the built-in names a statement calls
(``Facts.builtins``); the session's guard asks the target's catalog (``overloads``) and counts
a statement whose name has a user's overload there, or that the session gave one itself."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from engine.guardrail.classify import classify
from engine.guardrail.guard import SessionGuard
from engine.guardrail.rules import GuardrailSettings, Match, Rule

RULES = (Rule("review-big-writes", "review", Match(rows_over=100)),)


@pytest.mark.parametrize(("sql", "names"), [
    ("SELECT lower('x'), now()", {"lower", "now"}),
    ("SELECT * FROM t WHERE a = 1 AND b <> 2", {"operator:=", "operator:<>"}),
    ("SELECT 1 FROM t WHERE a BETWEEN 1 AND 2", {"operator:>=", "operator:<="}),
    ("SELECT 1 FROM t WHERE a IN (SELECT b FROM u)", {"operator:="}),
    ("SELECT 1 FROM t WHERE a < ALL (SELECT b FROM u)", {"operator:<"}),
    ("SELECT CASE a WHEN 1 THEN 2 END FROM t", {"operator:="}),
    ("SELECT 1 FROM t JOIN u USING (id)", {"operator:="}),
    ("SELECT 1 FROM t NATURAL JOIN u", {"operator:="}),
    ("SELECT a FROM t ORDER BY a USING >", {"operator:>"}),
    ("SELECT 'x'::text, 1::int", {"type:text", "type:int4"}),
    # Written with pg_catalog's schema: exactly PostgreSQL's own, nothing to ask.
    ("SELECT pg_catalog.lower('x'), 1 OPERATOR(pg_catalog.=) 1", set()),
])
def test_the_built_in_names_a_statement_calls_are_listed(sql: str, names: set[str]) -> None:
    assert classify(sql)[0].builtins == names


@pytest.mark.parametrize(("sql", "names"), [
    ("CREATE FUNCTION public.lower(int) RETURNS int LANGUAGE sql AS 'SELECT 1'", {"lower"}),
    ("CREATE OPERATOR public.= (LEFTARG = int, RIGHTARG = mytype, FUNCTION = f)",
     {"operator:="}),
    ("CREATE AGGREGATE s.count(int) (SFUNC = f, STYPE = int)", {"count"}),
    ("CREATE CAST (mytype AS text) WITH FUNCTION f(mytype)", {"type:text"}),
    ("ALTER FUNCTION f(int) RENAME TO lower", {"lower"}),
    ("CREATE EXTENSION citext", {"*"}),
    ("CREATE FUNCTION mine(int) RETURNS int LANGUAGE sql AS 'SELECT 1'", set()),
])
def test_what_gives_a_built_in_name_to_user_code_is_noted(sql: str, names: set[str]) -> None:
    assert classify(sql)[0].overloads == names


class Catalog:
    """The target's overloads as a dictionary says (absent: never read)."""

    def __init__(self, known: Mapping[str, bool | None]) -> None:
        self.known = known

    def __call__(self, name: str, fresh: bool) -> bool | None:
        return self.known.get(name)


def guard(known: Mapping[str, bool | None]) -> SessionGuard:
    g = SessionGuard(RULES, GuardrailSettings())
    g.overloads = Catalog(known)
    return g


NONE: dict[str, bool | None] = {
    "lower": False, "upper": False, "now": False, "operator:=": False, "type:int4": False,
    "type:text": False}


def counted(g: SessionGuard, sql: str) -> bool:
    verdict = g.judge(sql).verdict
    return verdict.rows_over == 100 and verdict.calls_code


@pytest.mark.parametrize(("sql", "overloaded"), [
    ("SELECT lower(5)", "lower"),
    ("SELECT * FROM t WHERE id = 5", "operator:="),
    ("SELECT x::int FROM t", "type:int4"),
    ("SELECT upper(lower('x')) FROM t WHERE now() IS NOT NULL", "lower"),
])
def test_a_name_a_user_overloads_on_the_target_is_counted(sql: str, overloaded: str) -> None:
    assert not counted(guard(NONE), sql)
    assert counted(guard({**NONE, overloaded: True}), sql)


def test_a_name_never_read_is_read_first_and_counted_when_the_read_fails() -> None:
    g = guard({**NONE, "lower": None})
    assert g.unread("SELECT lower('x')") == {"fn:lower"}
    assert g.unread("SELECT upper('x')") == frozenset()  # read: nothing to ask
    g.looked(frozenset({"fn:lower"}))
    assert g.unread("SELECT lower('x')") == frozenset()
    assert counted(g, "SELECT lower('x')")  # still not known: fail closed


def test_qualified_names_of_pg_catalog_are_never_a_user_s() -> None:
    g = guard({"lower": True, "operator:=": True})
    assert not counted(g, "SELECT pg_catalog.lower('x') WHERE 1 OPERATOR(pg_catalog.=) 1")
    assert g.unread("SELECT pg_catalog.lower('x')") == frozenset()


@pytest.mark.parametrize("creates", [
    "CREATE FUNCTION public.lower(int) RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "ALTER FUNCTION mine(int) RENAME TO lower",
    "CREATE EXTENSION citext",
])
def test_a_name_the_session_gave_its_own_code_is_counted_whatever_the_catalog_read(
        creates: str) -> None:
    g = guard(NONE)  # the catalog read before the CREATE: no overload
    assert not counted(g, "SELECT lower(5)")
    started = g.started(creates)
    if started is not None:
        g.finished(started)
    assert counted(g, "SELECT lower(5)")
    assert not counted(guard(NONE), "SELECT lower(5)")  # another session: as the catalog says


def test_writes_counted_for_their_own_rows_are_not_asked_about() -> None:
    """An UPDATE is counted anyway, with what its code writes (the transaction's statistics)."""
    g = guard({})
    assert g.unread("UPDATE t SET a = lower(a) WHERE id = 1") == frozenset()


def test_without_a_catalog_nothing_is_asked_nor_counted() -> None:
    g = SessionGuard(RULES, GuardrailSettings())
    assert g.unread("SELECT lower(5)") == frozenset()
    assert g.judge("SELECT lower(5)").action == "allow"


class Expired(Catalog):
    """A catalog whose entries are a minute old: known as last read, not fresh."""

    def __call__(self, name: str, fresh: bool) -> bool | None:
        return None if fresh else self.known.get(name)


def test_an_entry_a_minute_old_serves_as_last_read_without_a_wait() -> None:
    g = SessionGuard(RULES, GuardrailSettings())
    g.overloads = Expired(NONE)
    assert g.unread("SELECT lower('x')") == frozenset()  # no wait: read again meanwhile
    assert not counted(g, "SELECT lower('x')")
    g.overloads = Expired({**NONE, "lower": True})
    assert counted(g, "SELECT lower('x')")
