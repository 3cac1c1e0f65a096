"""Which column rule applies to a result column: by the table column behind it, or its name."""

from __future__ import annotations

from engine.config import MaskingRule
from engine.masking.pg import UNAVAILABLE, ColumnSource, Unavailable
from engine.masking.policy import CATALOG_UNAVAILABLE, for_session

SOURCES = {
    (100, 3): ColumnSource("public", "customers", "national_id"),
    (100, 2): ColumnSource("public", "customers", "email"),
    (200, 4): ColumnSource("public", "orders", "status"),
    (300, 4): ColumnSource("archive", "orders", "status"),
}


class Catalog:
    def column(self, table_oid: int, attnum: int) -> ColumnSource | Unavailable | None:
        if table_oid == 999:
            return UNAVAILABLE
        return SOURCES.get((table_oid, attnum))


def masking(*columns: str):  # type: ignore[no-untyped-def]
    rule = MaskingRule("cols", columns=columns, strategy="redact")
    session = for_session((rule,), "db", "alice", frozenset(), b"k" * 32)
    session.sources = Catalog()
    return session


def test_an_alias_does_not_hide_a_table_column_from_its_rule() -> None:
    rule = masking("national_id").column_rule
    assert rule("nid", 100, 3) is not None
    assert rule("national_id", 100, 2) is None  # an alias *to* the name: the source decides


def test_qualified_patterns_match_schema_table_and_column() -> None:
    rule = masking("orders.status").column_rule
    assert rule("status", 200, 4) is not None and rule("status", 300, 4) is not None
    only_public = masking("public.orders.status").column_rule
    assert only_public("s", 200, 4) is not None and only_public("s", 300, 4) is None
    assert masking("public.*.email").column_rule("e", 100, 2) is not None


def test_a_computed_column_is_matched_by_the_name_it_shows() -> None:
    session = masking("email", "customers.national_id")
    assert session.column_rule("email", 0, 0) is not None       # upper(email) AS email
    assert session.column_rule("national_id", 0, 0) is not None  # qualified: the last part
    assert session.column_rule("email", 100, 77) is not None    # a column the catalog lacks
    assert session.column_rule("other", 0, 0) is None


def test_a_table_the_catalog_could_not_read_is_masked() -> None:
    action = masking("nothing_like_this").column_rule("anything", 999, 1)
    assert action is not None and action.rule == CATALOG_UNAVAILABLE
    assert action.strategy("4111111111111111") != "4111111111111111"


def test_counts_name_the_table_column_whatever_the_alias() -> None:
    rule = masking("national_id").column_rule
    action = rule("nid", 100, 3)
    assert action is not None and action.source == "customers.national_id"
    computed = masking("email").column_rule("email", 0, 0)
    assert computed is not None and computed.source is None  # counted by the name shown
