"""The session's prepared statements: what each EXECUTE runs, and how strict that makes it."""

from __future__ import annotations

import pytest

from engine.guardrail import Guard, GuardrailSettings, Rule
from engine.guardrail.guard import SessionGuard
from engine.guardrail.rules import Match
from engine.pg.encoding import SessionEncoding
from engine.pg.names import Names
from engine.pg.prepared import NotYet, Prepared, Statement, executed, notes
from engine.pg.sqlnames import name_uses

UPDATE_ALL = "UPDATE t SET a = 0"


@pytest.fixture
def guard() -> SessionGuard:
    rules = (Rule("review-unbounded-writes", "review",
                  Match(statements=frozenset({"UPDATE WITHOUT WHERE"}))),)
    return Guard(rules, GuardrailSettings()).for_session("c", "u", frozenset())


def known(guard: SessionGuard, **statements: str) -> Prepared:
    prepared = Prepared(SessionEncoding())
    for name, text in statements.items():
        prepared.names.confirm(prepared.names.change(name.encode(), Statement(
            text, guard.judge(text), name_uses(text)), 1))
    return prepared


def test_execute_is_as_strict_as_what_it_runs(guard: SessionGuard) -> None:
    prepared = known(guard, x=UPDATE_ALL)
    plan = prepared.plan(name_uses("SELECT 1; EXECUTE x"), 2, guard)
    judgement = prepared.strictest(guard.judge("SELECT 1; EXECUTE x"), plan, 2, guard)
    assert (judgement.action, judgement.rule) == ("review", "review-unbounded-writes")
    assert judgement.verdict.reason == "EXECUTE x runs UPDATE WITHOUT WHERE t"
    assert UPDATE_ALL not in judgement.verdict.reason  # reasons are stored unmasked
    assert notes(plan) == (f"EXECUTE x runs: {UPDATE_ALL}",)


def test_statements_earlier_in_the_same_text_count(guard: SessionGuard) -> None:
    prepared = known(guard, x="SELECT 1")
    text = f"DEALLOCATE x; PREPARE x AS {UPDATE_ALL}; EXECUTE x; DEALLOCATE ALL; EXECUTE x"
    plan = prepared.plan(name_uses(text), 2, guard)
    first, last = executed(plan)
    assert first is not None and first.text == UPDATE_ALL and last is None
    judgement = prepared.strictest(guard.judge(text), plan, 2, guard)
    assert judgement.action == "block" and judgement.rule == "fallback"  # the last: unknown


def test_a_name_changed_in_an_earlier_segment_is_not_yet_known(guard: SessionGuard) -> None:
    prepared = known(guard, x="SELECT 1")
    prepared.names.change(b"x", Statement("SELECT 2", guard.judge("SELECT 2")), 2)
    with pytest.raises(NotYet) as wait:
        prepared.plan(name_uses("EXECUTE x"), 3, guard)
    assert wait.value.mark == 2


def test_an_execute_of_an_execute_is_followed_a_few_levels(guard: SessionGuard) -> None:
    prepared = known(guard, z=UPDATE_ALL, y="EXECUTE z")
    judgement = prepared.strictest(guard.judge("EXECUTE y"),
                                   prepared.plan(name_uses("EXECUTE y"), 2, guard), 2, guard)
    assert judgement.action == "review" and "EXECUTE y runs EXECUTE z runs" in (
        judgement.verdict.reason)
    loop = known(guard, a="EXECUTE a")
    judgement = loop.strictest(guard.judge("EXECUTE a"),
                               loop.plan(name_uses("EXECUTE a"), 2, guard), 2, guard)
    assert judgement.rule == "fallback"


def test_changes_go_to_the_right_names(guard: SessionGuard) -> None:
    prepared = known(guard)
    portals: Names[object] = Names()
    text = "PREPARE x AS SELECT 1; DECLARE c CURSOR FOR SELECT 1; CLOSE ALL; DISCARD ALL"
    ops = prepared.changes(prepared.plan(name_uses(text), 2, guard), 2, portals)
    assert ops is not None
    assert [(names is portals, change.tag) for names, change in ops] == [
        (False, b"PREPARE"), (True, b"DECLARE CURSOR"), (True, b"CLOSE CURSOR ALL"),
        (False, b"DISCARD ALL")]
    assert prepared.changes(prepared.plan(name_uses("EXECUTE x"), 2, guard), 2, portals) is None


@pytest.mark.parametrize(("given", "described", "types"), [
    ((), (701, 23), (701, 23)),  # the server's types for what the Parse left to it
    ((0, 23), (701, 23), (701, 23)),
    ((25,), (25, 16), (25, 16)),
    ((25,), (1043,), (25,)),  # contradicts what the Parse gave: not taken
    ((25, 23), (25,), (25, 23)),  # fewer than the Parse gave: not taken
    ((), None, ()),  # malformed
])
def test_a_statement_takes_the_types_the_server_described(
        given: tuple[int, ...], described: tuple[int, ...] | None,
        types: tuple[int, ...]) -> None:
    statement = Statement("SELECT $1", None, types=given)
    statement.described(described)
    assert statement.types == types
