"""Outside attack round 18: ``(x).f`` and ``t.f`` (no column f) are the call ``f(x)``. The
lineage followed a field selection and no call: an effect (``(national_id).pg_advisory_lock``),
SQL run from text (``(q).ts_stat``) and a user's function copying a masked value went
unseen. A name a function has (PostgreSQL's, or one the catalog shows) is followed as the
call; a column of the relation stays a column."""

from __future__ import annotations

import pytest

from engine.masking.lineage import UNKNOWN, Analyzer, Function, Lineage, Relation, Source, parse

CUSTOMERS = ("id", "full_name", "national_id")
RELATIONS = {"customers": [Relation("public", "customers", "r", CUSTOMERS)]}
LEAK = "begin insert into plain(x) select national_id from customers; return 1; end"
FUNCTIONS = {"leak": [Function("public", "leak", "plpgsql", LEAK,
                               f"create function leak(c customers) returns int "
                               f"language plpgsql as $${LEAK}$$")]}
NID = Source("public", "customers", "national_id")
NAME = Source("public", "customers", "full_name")


class Catalog:
    def __init__(self, unread: frozenset[str] = frozenset()) -> None:
        self.unread = unread

    def relations(self, name: str) -> list[Relation] | None:
        return RELATIONS.get(name, [])

    def functions(self, name: str) -> list[Function] | None:
        return None if name in self.unread else FUNCTIONS.get(name, [])


def lineage(sql: str, catalog: Catalog | None = None) -> Lineage:
    stmts = parse(sql)
    assert stmts is not None, sql
    return Analyzer(catalog or Catalog(), lambda s: s.column == "national_id",
                    names=lambda w: w == "national_id").statement(stmts[0])


@pytest.mark.parametrize("sql", [
    "select (national_id).pg_advisory_lock from customers",
    "select (c.national_id).pg_advisory_lock from customers c",
    "select 1 from customers c where ((c).national_id).pg_try_advisory_lock",
    "select ((ascii(national_id))::bigint).pg_advisory_xact_lock from customers",
    "select (id).pg_terminate_backend from customers where national_id = 'x'",
])
def test_an_effect_in_attribute_notation_is_an_effect(sql: str) -> None:
    found = lineage(sql)
    assert found.effects, sql
    assert NID in found.reads


@pytest.mark.parametrize("sql", [
    "select (q).ts_stat from (select national_id as q from customers) s",
    "select (national_id).dblink_exec from customers",
])
def test_sql_run_from_text_in_attribute_notation_is_opaque(sql: str) -> None:
    found = lineage(sql)
    assert found.opaque is not None
    assert UNKNOWN in found.reads


@pytest.mark.parametrize("sql", [
    "select (c).leak from customers c",
    "select c.leak from customers c",  # customers has no column leak: leak(c)
])
def test_a_user_s_function_in_attribute_notation_is_followed(sql: str) -> None:
    found = lineage(sql)
    assert found.columns is not None
    assert UNKNOWN in found.columns[0]


def test_a_name_not_read_yet_is_asked_for() -> None:
    found = lineage("select (c).other from customers c", Catalog(frozenset({"other"})))
    assert "other" in found.missing.functions


def test_columns_stay_columns() -> None:
    found = lineage("select c.full_name, (c).national_id, c.id from customers c")
    assert found.columns is not None
    assert found.columns[0] == frozenset({NAME})
    assert NID in found.columns[1]  # (the whole row: the field is not told apart)
    assert found.columns[2] == frozenset({Source("public", "customers", "id")})
    assert not found.effects and found.opaque is None
    assert not found.missing.functions


def test_a_user_s_function_in_attribute_notation_masks_the_recorded_text() -> None:
    """``select ('123-45').leak`` hands its literal to a body that names a masked column."""
    from engine.masking.statements import runs_unseen

    def bodies(name: str) -> list[str] | None:
        return [LEAK] if name == "leak" else []

    def names(word: str) -> bool:
        return word == "national_id"

    assert runs_unseen("select ('123-45').leak", names, bodies)
    assert runs_unseen("select c.leak from customers c", names, bodies)
    assert not runs_unseen("select (c).full_name from customers c", names, bodies)
