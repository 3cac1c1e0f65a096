"""The verdict cache by shape (``SessionGuard``): texts that differ only in their constants
share a verdict only where no constant could change it. A cached verdict must be exactly
what judging the text afresh gives, above all never an allow for a blocked or held text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pglast.parser import normalize

from engine.guardrail import GuardrailSettings, Rule
from engine.guardrail.classify import classify
from engine.guardrail.guard import SessionGuard, shape_blind
from engine.guardrail.rules import Match

RULES = (
    Rule("no-mass-delete", "block", Match(statements=frozenset({"DELETE WITHOUT WHERE"}))),
    Rule("no-mass-update", "block", Match(statements=frozenset({"UPDATE WITHOUT WHERE"}))),
    Rule("no-drop", "block", Match(statements=frozenset({"DROP"}))),
    Rule("no-kill", "block", Match(functions=("pg_terminate_backend",))),
    Rule("no-customers", "block", Match(tables=("customers",), access="read")),
    Rule("review-deletes", "review", Match(statements=frozenset({"DELETE"}))),
    Rule("review-untrusted", "review", Match(statements=frozenset({"CREATE FUNCTION"}))),
)
# A rule on the text itself: tried on each text, whatever its shape.
WITH_TEXT = (Rule("no-secrets", "block", Match(regex=re.compile(r"secret|'5'|\b2\b"))),
             *RULES)

# Templates with constant slots, and constants that flip their verdicts.
INTS = ["1", "2", "5", "-1", "NULL", "true", "false", "'1'", "'%'", "'a%'", "'5'", "'secret'"]
SQL = ["'select 1'", "'drop table t'", "'delete from t'", "'select * from customers'",
       "'select pg_terminate_backend(1)'", "'not sql at all('"]
SETTINGS = ["'client_encoding'", "'standard_conforming_strings'", "'search_path'"]
VALUES = ["'sjis'", "'utf8'", "'off'", "'on'", "'public'"]
NAMES = ["'pg_terminate_backend'", "'lower'", "'customers'", "'public.orders'"]
BODIES = ["'begin perform 1; end'", "'begin delete from t; end'", "'begin drop table t; end'",
          "'begin execute ''drop table t''; end'", "'begin'"]
FUNCTION_BODIES = ["'select 1'", "'delete from t returning 1'", "'drop table t'"]

TEMPLATES: list[tuple[str, list[list[str]]]] = [
    ("DELETE FROM t WHERE {} = {}", [INTS, INTS]),
    ("DELETE FROM t WHERE {}", [INTS]),
    ("DELETE FROM t WHERE id = {}", [INTS]),
    ("DELETE FROM t WHERE id = {} AND {}", [INTS, INTS]),
    ("DELETE FROM t WHERE id < {} OR id >= {}", [INTS, INTS]),
    ("DELETE FROM t WHERE id IN ({}, {})", [INTS, INTS]),
    ("DELETE FROM t WHERE {} IN ({}, {})", [INTS, INTS, INTS]),
    ("DELETE FROM t WHERE name LIKE {}", [INTS]),
    ("DELETE FROM t WHERE name ~ {}", [INTS]),
    ("DELETE FROM t WHERE id BETWEEN {} AND {}", [INTS, INTS]),
    ("DELETE FROM t WHERE {} BETWEEN {} AND {}", [INTS, INTS, INTS]),
    ("DELETE FROM t WHERE coalesce({}, id) = id", [INTS]),
    ("DELETE FROM t WHERE (id IS NULL) = {}", [INTS]),
    ("DELETE FROM t WHERE {} IS NULL", [INTS]),
    ("DELETE FROM t WHERE CASE WHEN {} THEN true ELSE id = 1 END", [INTS]),
    ("UPDATE t SET a = {} WHERE {} < {}", [INTS, INTS, INTS]),
    ("UPDATE t SET a = {} WHERE id = {}", [INTS, INTS]),
    ("UPDATE t SET a = 1 FROM u WHERE t.id = u.id AND u.x = {}", [INTS]),
    ("MERGE INTO t USING (VALUES ({})) v(id) ON t.id = v.id WHEN MATCHED THEN DELETE",
     [INTS]),
    ("SELECT query_to_xml({}, true, true, '')", [SQL]),
    ("SELECT * FROM dblink('conn', {}) AS x(a int)", [SQL]),
    ("SELECT * FROM crosstab({}) AS x(a int)", [SQL]),
    ("SELECT table_to_xml({}, true, true, '')", [NAMES]),
    ("SELECT table_to_xml({}::regclass, true, true, '')", [NAMES]),
    ("SELECT set_config({}, {}, false)", [SETTINGS, VALUES]),
    ("SET client_encoding = {}", [VALUES]),
    ("SET standard_conforming_strings = {}", [VALUES]),
    ("SELECT {}::regproc", [NAMES]),
    ("SELECT to_regproc({})", [NAMES]),
    ("SELECT {}::regclass", [NAMES]),
    ("DO {}", [BODIES]),
    ("DO LANGUAGE plpgsql {}", [BODIES]),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS {}", [FUNCTION_BODIES]),
    ("EXPLAIN (ANALYZE {}) DELETE FROM t", [INTS]),
    ("SELECT abalance FROM pgbench_accounts WHERE aid = {}", [INTS]),
    ("SELECT * FROM customers WHERE id = {}", [INTS]),
    ("SELECT pg_terminate_backend({})", [INTS]),
    ("INSERT INTO t (a, b) VALUES ({}, {})", [INTS, INTS]),
    ("SELECT {} /* a comment */, {}", [INTS, INTS]),
    ("SELECT {}; DELETE FROM t WHERE {}", [INTS, INTS]),
    ("/* secret */ SELECT * FROM t WHERE a = {} ; -- 2", [INTS]),
    ("  DELETE FROM t WHERE id = {};", [INTS]),
]


def fill(template: tuple[str, list[list[str]]]) -> st.SearchStrategy[str]:
    text, slots = template
    return st.tuples(*(st.sampled_from(s) for s in slots)).map(lambda v: text.format(*v))


def sequences() -> st.SearchStrategy[list[str]]:
    """Texts from a few templates at a time, so that texts of one shape meet often."""
    def texts(templates: list[tuple[str, list[list[str]]]]) -> st.SearchStrategy[list[str]]:
        return st.lists(st.sampled_from(templates).flatmap(fill), min_size=1, max_size=30)
    return st.lists(st.sampled_from(TEMPLATES), min_size=1, max_size=3).flatmap(texts)


def fresh(text: str, rules: tuple[Rule, ...]) -> tuple[str, str | None, str]:
    """The verdict on ``text`` judged afresh, by a guard that has seen nothing else."""
    j = SessionGuard(rules, GuardrailSettings()).judge(text)
    return j.action, j.rule, j.verdict.reason


@settings(max_examples=300, deadline=None)
@given(sequences(), st.sampled_from([1, 3, 10_000]),
       st.sampled_from([RULES, WITH_TEXT]))
def test_a_cached_verdict_is_the_verdict_judged_afresh(sequence: list[str], size: int,
                                                       rules: tuple[Rule, ...]) -> None:
    guard = SessionGuard(rules, GuardrailSettings(cache_size=size))
    for text in sequence:
        got = guard.judge(text)
        assert (got.action, got.rule, got.verdict.reason) == fresh(text, rules), text


@pytest.mark.parametrize("template", TEMPLATES, ids=[t[0] for t in TEMPLATES])
@pytest.mark.parametrize("rules", [RULES, WITH_TEXT], ids=["rules", "with-text"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_each_shape_judged_in_any_order(template: tuple[str, list[list[str]]],
                                        rules: tuple[Rule, ...], data: st.DataObject) -> None:
    sequence = data.draw(st.lists(fill(template), min_size=2, max_size=12))
    guard = SessionGuard(rules, GuardrailSettings())
    for text in sequence:
        got = guard.judge(text)
        assert (got.action, got.rule, got.verdict.reason) == fresh(text, rules), text


@pytest.mark.parametrize(("first", "then", "actions"), [
    ("DELETE FROM t WHERE 1 = 2", "DELETE FROM t WHERE 1 = 1", ("review", "block")),
    ("DELETE FROM t WHERE id < 5 OR id >= 6", "DELETE FROM t WHERE id < 5 OR id >= 5",
     ("review", "block")),
    ("DELETE FROM t WHERE name LIKE 'a%'", "DELETE FROM t WHERE name LIKE '%'",
     ("review", "block")),
    ("UPDATE t SET a = 1 WHERE 1 > 2", "UPDATE t SET a = 1 WHERE 2 > 1", ("allow", "block")),
    ("SELECT query_to_xml('select 1', true, true, '')",
     "SELECT query_to_xml('drop table t', true, true, '')", ("allow", "block")),
    ("SELECT query_to_xml('select 1', true, true, '')",
     "SELECT query_to_xml('delete from t where id = 1', true, true, '')", ("allow", "review")),
    ("SELECT set_config('search_path', 'public', false)",
     "SELECT set_config('client_encoding', 'sjis', false)", ("allow", "block")),
    ("SET client_encoding = 'utf8'", "SET client_encoding = 'sjis'", ("allow", "block")),
    ("DO 'begin perform 1; end'", "DO 'begin drop table t; end'", ("allow", "block")),
    ("SELECT table_to_xml('orders', true, true, '')",
     "SELECT table_to_xml('customers', true, true, '')", ("allow", "block")),
])
def test_literals_that_flip_a_verdict_are_judged_each(first: str, then: str,
                                                       actions: tuple[str, str]) -> None:
    assert normalize(first) == normalize(then)  # one shape: only the constants differ
    guard = SessionGuard(RULES, GuardrailSettings())
    for _ in range(2):
        assert (guard.judge(first).action, guard.judge(then).action) == actions


def test_texts_of_one_shape_share_one_verdict() -> None:
    guard = SessionGuard(RULES, GuardrailSettings())
    first = guard.judge("SELECT abalance FROM pgbench_accounts WHERE aid = 1")
    assert guard.judge("SELECT abalance FROM pgbench_accounts WHERE aid = 99") is first
    assert guard.judge("select abalance from pgbench_accounts where aid = 1") is not first
    held = guard.judge("DELETE FROM t WHERE id = 1 AND kind IN ('a', 'b')")
    assert held.action == "review"
    assert guard.judge("DELETE FROM t WHERE id = 7 AND kind IN ('c', 'd')") is held
    # The verdict kept names the shape, not one session's constants.
    assert first.verdict.statement == "SELECT abalance FROM pgbench_accounts WHERE aid = $1"


@pytest.mark.parametrize("text", [
    "DELETE FROM t WHERE 1 = 1", "SELECT query_to_xml('select 1', true, true, '')",
    "SET search_path = 'public'", "SELECT set_config('a', 'b', false)", "DO 'begin end'",
    "SELECT 'lower'::regproc", "SELECT to_regclass('t')", "DELETE FROM t WHERE name LIKE 'a'",
    "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'",
    "EXPLAIN (ANALYZE true) SELECT 1",
])
def test_what_read_a_constant_is_not_judged_by_shape(text: str) -> None:
    assert not all(f.by_shape for f in classify(text))


@pytest.mark.parametrize("text", [
    "SELECT abalance FROM pgbench_accounts WHERE aid = 5",
    "UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 7",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, now())",
    "DELETE FROM t WHERE id = 1 AND b BETWEEN 2 AND 3 AND c IN (4, 5) AND d IS NULL",
    "SELECT * FROM t WHERE a = 1 OR b = 2 LIMIT 10", "BEGIN", "COMMIT",
    "SELECT 1::int, interval '1 day'",
])
def test_ordinary_statements_are_judged_by_shape(text: str) -> None:
    assert all(f.by_shape for f in classify(text))


def test_a_rule_on_the_text_is_tried_on_each_text() -> None:
    assert shape_blind(WITH_TEXT)
    guard = SessionGuard(WITH_TEXT, GuardrailSettings())
    for _ in range(2):
        assert guard.judge("SELECT * FROM t WHERE a = 'public'").action == "allow"
        assert guard.judge("SELECT * FROM t WHERE a = 'secret'").action == "block"
        # Read in the statement only, as when judged afresh: not in a comment before it.
        assert guard.judge("/* secret */ SELECT * FROM t WHERE a = 'x'").action == "allow"
        assert guard.judge("/* secret */ SELECT * FROM t WHERE a = '5'").action == "block"


def test_texts_with_a_dollar_are_kept_by_exact_text() -> None:
    guard = SessionGuard(RULES, GuardrailSettings())
    # $1 and a constant would normalize alike, and so would $$…$$ bodies.
    assert guard.judge("DELETE FROM t WHERE $1").action == "block"
    assert guard.judge("DO $$begin perform 1; end$$").action == "allow"
    assert guard.judge("DO $$begin drop table t; end$$").action == "block"


def test_a_reload_forgets_verdicts_by_shape() -> None:
    guard = SessionGuard((), GuardrailSettings())
    assert guard.judge("DELETE FROM t WHERE id = 1").action == "allow"
    guard.replace(RULES, GuardrailSettings())
    assert guard.judge("DELETE FROM t WHERE id = 2").action == "review"


def test_without_rules_the_gateway_checks_still_decide() -> None:
    guard = SessionGuard((), GuardrailSettings())
    assert guard.judge("SELECT 1").action == "allow"
    assert guard.judge("SET client_encoding = 'utf8'").action == "allow"
    judged = guard.judge("SET client_encoding = 'sjis'")
    assert (judged.action, judged.rule) == ("block", "gateway-sql-reading")
    assert guard.judge("DO LANGUAGE plperlu 'system(1)'").action == "block"  # fallback
