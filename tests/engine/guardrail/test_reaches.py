"""Which statements run code of the target's that the gateway has not read (``Facts.reaches``),
and how a ``rows_over`` rule then counts them (only what that code writes)."""

from __future__ import annotations

import pytest

from engine.guardrail.classify import classify, classify_text
from engine.guardrail.memory import Known
from engine.guardrail.rules import Match, Rule, judge_statement

REACHES = [
    "SELECT purge()",
    "SELECT * FROM purge()",
    "CALL nightly()",
    "SELECT public.lower('x')",  # not pg_catalog's, whatever its name
    'SELECT "Lower"(\'x\')',  # quoted: another function than lower
    "SELECT 1 @~@ 2",
    "SELECT 1 OPERATOR(public.+) 2",
    "SELECT x FROM t WHERE id IN (SELECT purge())",
    "UPDATE t SET a = purge() WHERE id = 1",
    "SELECT query_to_xml('SELECT purge()', true, true, '')",
    "SELECT pg_catalog.no_such_function()",
    "SELECT count(*) FROM t GROUP BY purge(a)",
]
READS_ONLY = [
    "SELECT lower('x'), now(), count(*) FROM t",
    "SELECT pg_catalog.lower('x')",
    "SELECT 1 + 2 * 3 FROM t WHERE a BETWEEN 1 AND 2 AND b LIKE 'x%' AND c IN (1, 2)",
    "SELECT 1 OPERATOR(pg_catalog.+) 2",
    "SELECT a ->> 'k' FROM t WHERE b @> '{}' AND c ~* 'x' AND d IS DISTINCT FROM 1",
    # code stored for later is judged as it is created, not counted now
    "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM purge(); "
    "RETURN 1; END$$",
]


@pytest.mark.parametrize("sql", REACHES)
def test_calls_of_code_not_postgresql_s_own_reach(sql: str) -> None:
    assert classify(sql)[0].reaches


@pytest.mark.parametrize("sql", READS_ONLY)
def test_postgresql_s_own_functions_and_operators_do_not(sql: str) -> None:
    assert not classify(sql)[0].reaches


RULE = (Rule("big", "review", Match(rows_over=100)),)


def test_a_call_is_counted_by_what_its_code_writes_only() -> None:
    verdict = judge_statement(RULE, classify("SELECT purge()")[0])
    assert verdict.rows_over == 100 and not verdict.tag_counts
    assert "the code it calls" in verdict.reason
    update = judge_statement(RULE, classify("UPDATE t SET a = purge() WHERE id = 1")[0])
    assert update.rows_over == 100 and update.tag_counts


@pytest.mark.parametrize("sql", [
    "COPY t FROM STDIN WHERE purge() > 0",  # data flows while it is counted
    "WITH d AS (DELETE FROM t RETURNING 1) SELECT purge()",  # writes of its own, uncounted
    "DECLARE c CURSOR FOR SELECT purge()",  # runs at each FETCH
    "DECLARE c CURSOR WITH HOLD FOR SELECT purge()",  # and at COMMIT
    "PREPARE p AS SELECT purge()",  # runs at each EXECUTE
])
def test_calls_the_gateway_cannot_count_meet_the_rule(sql: str) -> None:
    verdict = judge_statement(RULE, classify(sql)[0])
    assert verdict.action == "review" and verdict.rows_over is None


def test_nothing_is_counted_for_reads_of_built_in_code() -> None:
    verdict = judge_statement(RULE, classify("SELECT lower(name) FROM t")[0])
    assert verdict.action == "allow"


CREATE_OWN = ("CREATE TABLE s.own (id int); CREATE FUNCTION s.tidy() RETURNS int "
              "LANGUAGE sql AS $$DELETE FROM s.own RETURNING 1$$;")
CREATE_OTHER = ("CREATE FUNCTION s.purge() RETURNS int LANGUAGE sql AS "
                "$$DELETE FROM s.orders RETURNING 1$$;")


def remembered(sql: str) -> Known:
    _, effects = classify_text(sql)
    return Known(dict(effects.functions), effects.tables)


def test_a_remembered_function_still_reaches_another_of_its_name() -> None:
    """The session created s.tidy(int); s.tidy() may be another function, created by
    someone else: the call is counted, whatever the remembered body does."""
    known = remembered(CREATE_OWN.replace("s.tidy()", "s.tidy(n int)"))
    [facts], _ = classify_text("SELECT s.tidy()", known=known)
    assert facts.reaches


def test_a_remembered_function_that_writes_other_tables_reaches() -> None:
    known = remembered(CREATE_OTHER)
    [facts], _ = classify_text("SELECT s.purge()", known=known)
    assert facts.reaches


@pytest.mark.parametrize(("setting", "shadowed"), [
    ("SET search_path = public, pg_catalog", True),
    ("SET search_path TO \"$user\", public", False),  # pg_catalog is looked in first
    ("SET search_path = pg_catalog, public", False),
    ("SELECT set_config('search_path', 'public, pg_catalog', false)", True),
    ("SELECT set_config('search_path', current_setting('x'), false)", True),
    ("SELECT set_config(name, 'v', false) FROM t", True),
])
def test_a_schema_ahead_of_pg_catalog_makes_every_unqualified_name_user_code(
        setting: str, shadowed: bool) -> None:
    _, effects = classify_text(setting)
    assert effects.shadowed is shadowed
    [facts], _ = classify_text("SELECT now()", shadowed=effects.shadowed)
    assert facts.reaches is shadowed
    [_, after], _ = classify_text(f"{setting}; SELECT lower('x')")
    assert after.reaches is shadowed


def test_in_a_shadowed_session_a_qualified_built_in_is_still_postgresql_s() -> None:
    [facts], _ = classify_text("SELECT pg_catalog.now()", shadowed=True)
    assert not facts.reaches


@pytest.mark.parametrize("sql", ["CREATE INDEX CONCURRENTLY i ON t (purge(a))",
                                 "REINDEX (CONCURRENTLY) INDEX i"])
def test_what_cannot_run_in_a_transaction_block_is_not_counted(sql: str) -> None:
    facts = classify(sql)[0]
    facts.reaches = True  # (REINDEX runs the index's expressions, named elsewhere)
    verdict = judge_statement(RULE, facts)
    assert verdict.action == "review" and verdict.rows_over is None


@pytest.mark.parametrize("sql", [
    "CREATE VIEW v AS SELECT purge()",
    "CREATE MATERIALIZED VIEW mv AS SELECT purge() WITH NO DATA",
    "CREATE TABLE t (x int DEFAULT purge())",
    "CREATE TABLE t (x int CHECK (purge() > 0))",
    "ALTER TABLE t ALTER COLUMN x SET DEFAULT purge()",
    "ALTER TABLE t ADD CONSTRAINT c CHECK (purge() > 0) NOT VALID",
    "CREATE DOMAIN d AS int CHECK (purge() > VALUE)",
    "CREATE INDEX i ON t (purge(x))",
    "CREATE RULE r AS ON INSERT TO t DO ALSO SELECT purge()",
    "CREATE CAST (int AS mytype) WITH FUNCTION to_mytype(int)",
    "CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = purge_eq)",
])
def test_code_stored_for_later_statements_is_opaque(sql: str) -> None:
    """What it stores runs in statements to come, where nothing counts what that code writes:
    the storing statement carries an OPAQUE BODY part (reviewed by the example policy)."""
    assert "OPAQUE BODY" in classify(sql)[0].kinds


@pytest.mark.parametrize("sql", [
    "CREATE VIEW v AS SELECT lower(a), now() FROM t",
    "CREATE TABLE t (id int DEFAULT nextval('s'), at timestamptz DEFAULT now())",
    "CREATE TABLE t2 AS SELECT purge()",  # runs now: counted, not stored
    "CREATE INDEX i ON t (lower(a))",
])
def test_built_in_code_stored_is_not(sql: str) -> None:
    assert "OPAQUE BODY" not in classify(sql)[0].kinds


def test_renaming_an_enum_value_is_its_own_kind() -> None:
    assert "ALTER TYPE RENAME VALUE" in classify("ALTER TYPE m RENAME VALUE 'a' TO 'b'")[0].kinds
    assert "ALTER TYPE RENAME VALUE" not in classify("ALTER TYPE m ADD VALUE 'c'")[0].kinds


def test_storing_a_function_the_session_created_is_judged_by_its_body() -> None:
    """Its body was judged when it was created, by the same rules: binding it adds nothing
    unread (a user's function the gateway never saw stays opaque)."""
    known = remembered("CREATE FUNCTION s.keep(t text) RETURNS text LANGUAGE plpgsql AS "
                       "$$BEGIN INSERT INTO s.log VALUES (t); RETURN t; END$$;")
    for sql in ("CREATE AGGREGATE s.agg(text) (SFUNC = s.keep, STYPE = text)",
                "CREATE VIEW s.v AS SELECT s.keep(name) FROM s.t"):
        [facts], _ = classify_text(sql, known=known)
        assert "OPAQUE BODY" not in facts.kinds, sql
        [unknown], _ = classify_text(sql.replace("s.keep", "s.other"), known=known)
        assert "OPAQUE BODY" in unknown.kinds, sql


def test_plain_explain_plans_and_so_reaches_what_planning_runs() -> None:
    """EXPLAIN does not run the statement, but planning runs IMMUTABLE functions of constants
    and STABLE ones for estimates; what it is, EXPLAIN stays (not an UPDATE)."""
    facts = classify("EXPLAIN UPDATE t SET a = 1 WHERE id = imm(1)")[0]
    assert facts.reaches and facts.kinds == {"EXPLAIN"}
    assert not classify("EXPLAIN SELECT lower(a) FROM t")[0].reaches


def test_extended_statistics_over_code_are_stored_code() -> None:
    """ANALYZE (and autovacuum's) runs a statistics object's expressions."""
    assert "OPAQUE BODY" in classify("CREATE STATISTICS s ON (purge(c)) FROM t")[0].kinds


@pytest.mark.parametrize("created", [
    # a parameter's DEFAULT runs at every call that leaves it out
    "CREATE FUNCTION s.own(a int DEFAULT purge()) RETURNS int LANGUAGE plpgsql AS "
    "$$BEGIN RETURN a; END$$",
    # its body calls code the gateway never read
    "CREATE FUNCTION s.own() RETURNS int LANGUAGE plpgsql AS "
    "$$BEGIN PERFORM purge(); RETURN 1; END$$",
])
def test_a_session_function_that_calls_unread_code_does_not_vouch_for_a_view(
        created: str) -> None:
    known = remembered(created + ";")
    [facts], _ = classify_text("CREATE VIEW s.v AS SELECT s.own()", known=known)
    assert "OPAQUE BODY" in facts.kinds
