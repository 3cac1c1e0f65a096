"""What SQL text does with names, read with PostgreSQL's parser."""

from __future__ import annotations

import pytest

from engine.pg.sqlnames import NameUse, name_uses


@pytest.mark.parametrize("text", [
    "SELECT 1", "select executed_at, prepared_by from jobs", "SELECT 'execute x'",
    "UPDATE t SET closed = true",
])
def test_texts_without_a_keyword_are_not_parsed(text: str) -> None:
    assert name_uses(text) == ()


def test_prepare_gives_the_statement_the_name_stands_for() -> None:
    [use] = name_uses('PREPARE Foo (int, "AS") AS UPDATE t SET a = $1')
    assert (use.prepare, use.body, use.tag) == ("foo", "UPDATE t SET a = $1", b"PREPARE")


@pytest.mark.parametrize(("text", "names"), [
    ("EXECUTE x(1, 'a')", ("x",)),
    ("EXPLAIN ANALYZE EXECUTE x", ("x",)),
    ("EXPLAIN (ANALYZE)EXECUTE x", ("x",)),
    ("CREATE TABLE z AS EXECUTE x", ("x",)),
    ('EXECUTE "X"', ("X",)),
    ("EXECUTE Ég", ("Ég",)),
])
def test_every_execute_is_found(text: str, names: tuple[str, ...]) -> None:
    assert [u.executes for u in name_uses(text)] == [names]


def test_changes_in_order_with_the_tags_that_confirm_them() -> None:
    uses = name_uses("DEALLOCATE x; SELECT 1; DEALLOCATE ALL; DISCARD ALL; DISCARD PLANS; "
                     "DECLARE c CURSOR FOR SELECT 1; CLOSE c; CLOSE ALL")
    assert [u.tag for u in uses] == [b"DEALLOCATE", b"DEALLOCATE ALL", b"DISCARD ALL",
                                     b"DECLARE CURSOR", b"CLOSE CURSOR", b"CLOSE CURSOR ALL"]
    assert uses[0] == NameUse(deallocate="x")


def test_long_names_are_cut_as_postgresql_cuts_them() -> None:
    [use] = name_uses("PREPARE " + "b" * 70 + " AS SELECT 1")
    assert use.prepare == "b" * 63


def test_text_that_does_not_parse_uses_nothing() -> None:
    assert name_uses("EXECUTE") == ()
