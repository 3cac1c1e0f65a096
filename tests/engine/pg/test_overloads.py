"""What the catalog says of users' overloads of PostgreSQL's names, for the guard
(``engine.pg.connection._overloads``, ``SessionGuard.overloads``)."""

from __future__ import annotations

from engine.masking.lineage import Function
from engine.pg.connection import _overloads


class Catalog:
    """Functions by name: fresh, or only as last read (expired)."""

    def __init__(self, fresh: dict[str, list[Function]],
                 last: dict[str, list[Function]] | None = None) -> None:
        self.fresh, self.last = fresh, last or {}
        self.asked: list[str] = []

    def functions(self, name: str) -> list[Function] | None:
        return self.fresh.get(name)

    def last_known_functions(self, name: str) -> list[Function] | None:
        return self.last.get(name)

    def look_up(self, name: str, *, function: bool = False) -> None:
        self.asked.append(name)


OWN = Function("pg_catalog", "lower", "internal", "lower")
USERS = Function("public", "lower", "plpgsql", "BEGIN … END")
INTO_TEXT = Function("pg_catalog", "type:text", "type", "pg_catalog.text pg_catalog.text")
USERS_CAST = Function("pg_catalog", "type:text", "type", "pg_catalog.text public.to_text")
ROW_TYPE = Function("public", "type:text", "type", "")  # a table named text


def over(catalog: Catalog, name: str, fresh: bool = True) -> bool | None:
    return _overloads(catalog, name, fresh)  # type: ignore[arg-type]


def test_a_function_or_operator_outside_pg_catalog_is_a_user_s_overload() -> None:
    assert over(Catalog({"lower": [OWN]}), "lower") is False
    assert over(Catalog({"lower": [OWN, USERS]}), "lower") is True
    op = Function("public", "operator:=", "operator", "public.my_eq")
    assert over(Catalog({"operator:=": [op]}), "operator:=") is True


def test_a_type_counts_for_a_user_s_cast_into_it_only() -> None:
    assert over(Catalog({"type:text": [INTO_TEXT]}), "type:text") is False
    assert over(Catalog({"type:text": [USERS_CAST]}), "type:text") is True
    # A user's type (or a table's row type) of the same name is not what the name means.
    assert over(Catalog({"type:text": [INTO_TEXT, ROW_TYPE]}), "type:text") is False


def test_an_expired_entry_answers_as_last_read_and_is_read_again() -> None:
    catalog = Catalog({}, {"lower": [OWN, USERS]})
    assert over(catalog, "lower") is None  # not fresh
    assert over(catalog, "lower", fresh=False) is True
    assert catalog.asked == ["lower"]
    assert over(Catalog({}), "lower", fresh=False) is None  # never read
