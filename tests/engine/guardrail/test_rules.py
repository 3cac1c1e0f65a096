"""Rules: what a ``Match`` matches, which rules apply to a session, and first-match order."""

from __future__ import annotations

import re

import pytest

from engine.guardrail.classify import Facts, classify
from engine.guardrail.rules import SEVERITY, Match, Rule, Verdict, _table_matches, judge_statement


def facts(kinds: set[str] | None = None, functions: set[str] | None = None,
          reads: set[str] | None = None, writes: set[str] | None = None,
          text: str = "stmt") -> Facts:
    return Facts(text, kinds or set(), functions or set(), reads or set(), writes or set())


def rule(name: str, action: str = "block", **match: object) -> Rule:
    return Rule(name, action, Match(**match))  # type: ignore[arg-type]


# --- statements ----------------------------------------------------------------------------


def test_statements_match_any_listed_kind() -> None:
    m = Match(statements=frozenset({"DROP", "TRUNCATE"}))
    assert m.test(facts({"DROP", "DROP FUNCTION"})) is not None
    assert m.test(facts({"TRUNCATE"})) == "TRUNCATE"
    assert m.test(facts({"SELECT"})) is None
    assert m.test(facts({"DROPDB"})) is None  # kinds are whole names, not prefixes
    assert m.test(facts()) is None


def test_statements_reason_says_precisely_what_was_refused() -> None:
    m = Match(statements=frozenset({"DROP"}))
    [drop] = classify("DROP TABLE orders")
    assert m.test(drop) == "DROP TABLE orders"
    assert m.test(facts({"DROP", "DROP FUNCTION"})) == "DROP FUNCTION"
    both = Match(statements=frozenset({"TRUNCATE", "SELECT"}))
    assert both.test(facts({"SELECT", "TRUNCATE"})) == "SELECT and TRUNCATE"


def test_statements_reason_names_each_kind_once() -> None:
    m = Match(statements=frozenset({"DELETE", "DELETE WITHOUT WHERE"}))
    [stmt] = classify("DELETE FROM t")
    why = m.test(stmt)
    assert why is not None
    assert why.count("DELETE WITHOUT WHERE") == 1


# --- functions -----------------------------------------------------------------------------


@pytest.mark.parametrize(("called", "hit"), [
    ({"dblink"}, "calls dblink"),
    ({"dblink_exec", "now"}, "calls dblink_exec"),
    ({"dblink_connect", "dblink"}, "calls dblink, dblink_connect"),
    ({"my_dblink"}, None),  # a glob anchors at both ends
    ({"now"}, None),
    (set(), None),
])
def test_functions_are_globs(called: set[str], hit: str | None) -> None:
    assert Match(functions=("dblink*",)).test(facts(functions=called)) == hit


def test_functions_list_is_ored() -> None:
    m = Match(functions=("pg_read_file", "lo_*"))
    assert m.test(facts(functions={"lo_import"})) == "calls lo_import"
    assert m.test(facts(functions={"pg_read_file"})) == "calls pg_read_file"
    assert m.test(facts(functions={"pg_read_binary_file"})) is None


def test_functions_match_what_classify_reports_for_qualified_and_quoted_calls() -> None:
    m = Match(functions=("pg_read_file",))
    for sql in ("SELECT pg_catalog.pg_read_file('x')", "SELECT \"pg_read_file\"('x')",
                "SELECT * FROM t WHERE a IN (SELECT PG_READ_FILE('x'))"):
        [stmt] = classify(sql)
        assert m.test(stmt) == "calls pg_read_file", sql


# --- tables: the qualification rules of _table_matches -------------------------------------


@pytest.mark.parametrize(("table", "pattern", "matches"), [
    ("public.customers", "public.customers", True),
    ("customers", "public.customers", True),  # may resolve to public through search_path
    ("audit.customers", "public.customers", False),  # explicitly another schema
    ("public.customers", "customers", True),  # unqualified pattern: any schema
    ("audit.customers", "customers", True),
    ("customers", "customers", True),
    ("customers2", "customers", False),
    ("public.customers2", "customers", False),
    ("sales.customers", "cust*", True),
    ("customers", "cust*", True),
    ("orders", "cust*", False),
    ("public.orders", "public.*", True),
    ("orders", "public.*", True),
    ("audit.orders", "public.*", False),
    ("public.orders", "*.orders", True),
    ("orders", "*.orders", True),
    ("public.orders", "*", True),
    ("public.orders", "pub?ic.orders", True),
])
def test_table_qualification(table: str, pattern: str, matches: bool) -> None:
    assert _table_matches(table, pattern) is matches


def test_tables_reason_and_access() -> None:
    read = facts({"SELECT"}, reads={"public.customers"})
    written = facts({"UPDATE"}, writes={"customers"})
    both = facts({"INSERT"}, reads={"customers"}, writes={"orders"})
    any_ = Match(tables=("public.customers",))
    assert any_.test(read) == "uses public.customers"
    assert any_.test(written) == "uses customers"
    assert any_.test(both) == "uses customers"
    reads = Match(tables=("public.customers",), access="read")
    assert reads.test(read) == "reads public.customers"
    assert reads.test(written) is None
    writes = Match(tables=("public.customers",), access="write")
    assert writes.test(written) == "writes customers"
    assert writes.test(read) is None
    assert writes.test(both) is None  # customers is only read there


def test_tables_list_is_ored() -> None:
    m = Match(tables=("orders", "customers"))
    assert m.test(facts(reads={"customers"})) == "uses customers"
    assert m.test(facts(reads={"orders", "customers", "items"})) == "uses customers, orders"
    assert m.test(facts(reads={"items"})) is None


# --- schemas -------------------------------------------------------------------------------


def test_schemas_match_qualified_names_only() -> None:
    m = Match(schemas=frozenset({"audit", "billing"}))
    assert m.test(facts(reads={"audit.log"})) == "uses audit.log"
    assert m.test(facts(writes={"billing.invoices", "public.x"})) == "uses billing.invoices"
    assert m.test(facts(reads={"log"})) is None  # an unqualified name names no schema
    assert m.test(facts(reads={"audit"})) is None  # not even a table called like the schema
    assert m.test(facts(reads={"auditx.log"})) is None
    assert m.test(facts(reads={"public.audit"})) is None


def test_schemas_with_access() -> None:
    m = Match(schemas=frozenset({"audit"}), access="write")
    assert m.test(facts(reads={"audit.log"})) is None
    assert m.test(facts(writes={"audit.log"})) == "writes audit.log"
    assert Match(schemas=frozenset({"audit"}), access="read").test(
        facts(writes={"audit.log"})) is None


# --- regex ---------------------------------------------------------------------------------


def test_regex_searches_the_statement_text() -> None:
    m = Match(regex=re.compile(r"(?i)pg_sleep"))
    assert m.test(facts(text="SELECT PG_SLEEP(10)")) == "text matches /(?i)pg_sleep/"
    assert m.test(facts(text="SELECT 1")) is None
    anchored = Match(regex=re.compile(r"^SELECT"))
    assert anchored.test(facts(text="SELECT 1")) is not None
    assert anchored.test(facts(text="  select 1")) is None


# --- AND across keys -----------------------------------------------------------------------


def test_criteria_are_anded_across_keys() -> None:
    m = Match(statements=frozenset({"DELETE"}), tables=("orders",), access="write")
    why = m.test(facts({"DELETE"}, writes={"public.orders"}))
    assert why is not None
    assert why.endswith("; writes public.orders")
    assert m.test(facts({"DELETE"}, writes={"items"})) is None  # right kind, wrong table
    assert m.test(facts({"UPDATE"}, writes={"orders"})) is None  # right table, wrong kind
    assert m.test(facts({"DELETE"}, reads={"orders"}, writes={"items"})) is None


def test_every_key_together() -> None:
    m = Match(statements=frozenset({"SELECT"}), functions=("dblink*",), tables=("orders",),
              schemas=frozenset({"public"}), access="read", regex=re.compile("secret"))
    hit = facts({"SELECT"}, {"dblink"}, reads={"public.orders"}, text="SELECT secret")
    why = m.test(hit)
    assert why is not None
    assert why.startswith("SELECT; calls dblink; reads public.orders; ")
    assert why.endswith("; text matches /secret/")
    for miss in (
        facts({"INSERT"}, {"dblink"}, reads={"public.orders"}, text="SELECT secret"),
        facts({"SELECT"}, {"now"}, reads={"public.orders"}, text="SELECT secret"),
        facts({"SELECT"}, {"dblink"}, reads={"orders"}, text="SELECT secret"),  # no schema
        facts({"SELECT"}, {"dblink"}, writes={"public.orders"}, text="SELECT secret"),
        facts({"SELECT"}, {"dblink"}, reads={"public.orders"}, text="SELECT 1"),
    ):
        assert m.test(miss) is None, miss


def test_empty_match() -> None:
    assert Match().empty()
    assert Match(access="write").empty()  # access alone says nothing
    assert not Match(regex=re.compile("x")).empty()
    assert not Match(schemas=frozenset({"s"})).empty()
    assert not Match(tables=("t",)).empty()
    assert not Match(functions=("f",)).empty()
    assert not Match(statements=frozenset({"DROP"})).empty()


# --- Rule.applies --------------------------------------------------------------------------

ENG = frozenset({"engineering"})
OPS = frozenset({"operators"})


def scoped(**scope: frozenset[str] | None) -> Rule:
    return Rule("r", "block", Match(statements=frozenset({"DROP"})), **scope)  # type: ignore[arg-type]


def test_unscoped_rule_applies_to_everyone() -> None:
    assert scoped().applies("shop", "alice", ENG)
    assert scoped().applies("other", "bob", frozenset())


def test_connections_scope() -> None:
    r = scoped(connections=frozenset({"shop"}))
    assert r.applies("shop", "alice", ENG)
    assert not r.applies("warehouse", "alice", ENG)


def test_groups_scope() -> None:
    r = scoped(groups=frozenset({"engineering", "agents"}))
    assert r.applies("shop", "alice", ENG)
    assert r.applies("shop", "bot", frozenset({"agents", "x"}))
    assert not r.applies("shop", "oncall", OPS)
    assert not r.applies("shop", "nobody", frozenset())


def test_identities_scope() -> None:
    r = scoped(identities=frozenset({"alice"}))
    assert r.applies("shop", "alice", frozenset())
    assert not r.applies("shop", "bob", ENG)


def test_groups_and_identities_are_alternatives() -> None:
    r = scoped(groups=OPS, identities=frozenset({"alice"}))
    assert r.applies("shop", "alice", ENG)  # named
    assert r.applies("shop", "oncall", OPS)  # in the group
    assert not r.applies("shop", "bob", ENG)


def test_connection_scope_narrows_identities_and_groups() -> None:
    r = scoped(connections=frozenset({"shop"}), groups=OPS, identities=frozenset({"alice"}))
    assert not r.applies("warehouse", "alice", ENG)
    assert not r.applies("warehouse", "oncall", OPS)
    assert r.applies("shop", "oncall", OPS)


def test_empty_scope_lists_apply_to_nobody() -> None:
    assert not scoped(identities=frozenset()).applies("shop", "alice", ENG)
    assert not scoped(groups=frozenset()).applies("shop", "alice", ENG)
    assert not scoped(connections=frozenset()).applies("shop", "alice", ENG)


# --- judge_statement: first match wins -----------------------------------------------------


def test_first_matching_rule_wins() -> None:
    rules = (
        rule("allow-audit-reads", "allow", tables=("audit.*",), access="read"),
        rule("review-audit", "review", schemas=frozenset({"audit"})),
        rule("no-drop", "block", statements=frozenset({"DROP"})),
    )
    verdict = judge_statement(rules, facts({"SELECT"}, reads={"audit.log"}, text="q1"))
    assert (verdict.action, verdict.rule) == ("allow", "allow-audit-reads")
    verdict = judge_statement(rules, facts({"INSERT"}, writes={"audit.log"}, text="q2"))
    assert (verdict.action, verdict.rule) == ("review", "review-audit")
    assert verdict.reason == "uses audit.log"
    assert verdict.statement == "q2"
    # The order decides, not the severity: a DROP of an audit table is only reviewed.
    verdict = judge_statement(rules, facts({"DROP"}, writes={"audit.log"}))
    assert (verdict.action, verdict.rule) == ("review", "review-audit")
    verdict = judge_statement(rules[2:] + rules[:2], facts({"DROP"}, writes={"audit.log"}))
    assert (verdict.action, verdict.rule) == ("block", "no-drop")


def test_no_match_allows_and_describes() -> None:
    stmt = facts({"SELECT"}, {"now"}, reads={"t"}, text="SELECT now() FROM t")
    verdict = judge_statement((rule("no-drop", statements=frozenset({"DROP"})),), stmt)
    assert verdict == Verdict("allow", None, "SELECT; calls now; reads t", "SELECT now() FROM t")
    assert judge_statement((), stmt).action == "allow"


def test_verdict_carries_the_rules_message_as_hint() -> None:
    r = Rule("no-drop", "block", Match(statements=frozenset({"DROP"})), message="Use a migration.")
    verdict = judge_statement((r,), facts({"DROP"}))
    assert verdict.hint == "Use a migration."
    assert verdict.severity == 2


def test_severity_order() -> None:
    assert SEVERITY["allow"] < SEVERITY["review"] < SEVERITY["block"]
    assert [Verdict(a, None, "", "").severity for a in ("allow", "review", "block")] == [0, 1, 2]
