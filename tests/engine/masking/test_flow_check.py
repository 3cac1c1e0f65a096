"""Each statement's lineage is checked against the target's catalog once: until every name it
used was read or checked after the statement was first seen, the lineage says them missing
(and fails closed on them), whatever the cache holds."""

from __future__ import annotations

from engine.masking.flow import Statement, StatementFlow
from engine.masking.lineage import UNKNOWN, Analyzer, Function, Relation, Source, parse

NID = Source("public", "customers", "national_id")


class CheckedCatalog:
    """A catalog whose entries are cached; ``check`` is a lookup that checks names."""

    def __init__(self) -> None:
        self.views = {"v": "SELECT customers.full_name AS x FROM customers"}
        self.checks = 0
        self.stamps: dict[str, int] = {}

    def relations(self, name: str) -> list[Relation] | None:
        if name == "customers":
            return [Relation("public", "customers", "r", ("full_name", "national_id"))]
        if name in self.views:
            return [Relation("public", name, "v", ("x",), self.views[name])]
        return []

    def functions(self, name: str) -> list[Function] | None:
        return []

    def stamp(self, name: str) -> int:
        return self.stamps.get(name, 0)

    def check(self, names: frozenset[str]) -> None:
        self.checks += 1
        for n in names:
            self.stamps[n] = self.checks


def statement(sql: str) -> Statement:
    trees = parse(sql)
    assert trees
    return Statement(sql, trees[0])


def test_a_statement_is_followed_only_once_its_names_are_checked() -> None:
    catalog = CheckedCatalog()
    catalog.check(frozenset({"v", "customers"}))  # cached by an earlier statement
    flow = StatementFlow(Analyzer(catalog, lambda s: s == NID))
    # the view is replaced on the target; the cache still has the old definition
    catalog.views["v"] = "SELECT customers.national_id AS x FROM customers"
    first = statement("select x from v")
    lineage = flow.lineage(first)
    assert lineage is not None and lineage.missing.relations == {"v", "customers"}
    assert lineage.columns is not None and UNKNOWN in lineage.columns[0]  # fails closed
    catalog.check(lineage.missing.relations)  # the caller looks them up (and checks them)
    lineage = flow.lineage(first)
    assert lineage is not None and not lineage.missing.relations
    assert lineage.columns is not None and NID in lineage.columns[0]
    assert flow.lineage(first) is lineage  # checked: not computed again
    # a later statement over the same names is checked again
    again = flow.lineage(statement("select x from v"))
    assert again is not None and again.missing.relations == {"v", "customers"}
