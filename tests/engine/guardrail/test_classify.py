"""``classify``: SQL → facts through PostgreSQL's parser, and the ways people try to hide things.

Each corpus entry pins the exact kinds, functions, reads and writes of one statement, so that a
statement that suddenly reports more (or less) than before is noticed.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.guardrail.classify import STATEMENT_KINDS, Facts, ParseFailure, classify

FUZZ = settings(database=None, deadline=None, max_examples=400)


def one(sql: str) -> Facts:
    """The facts of ``sql``, which must be exactly one statement."""
    facts = classify(sql)
    assert len(facts) == 1, [f.text for f in facts]
    return facts[0]


def case(sql: str, kinds: set[str], functions: set[str] | None = None,
         reads: set[str] | None = None, writes: set[str] | None = None,
         id: str | None = None) -> Any:
    return pytest.param(sql, kinds, functions or set(), reads or set(), writes or set(), id=id)


# A function in a language that can reach the operating system, whose body the gateway cannot
# read either.
UNTRUSTED_BODY = {"CREATE", "CREATE FUNCTION", "CREATE FUNCTION UNTRUSTED", "OPAQUE BODY"}

CORPUS = [
    # --- plain statements -------------------------------------------------------------------
    case("SELECT 1", {"SELECT"}, id="select"),
    case("SELECT * FROM public.orders", {"SELECT"}, reads={"public.orders"}, id="schema-read"),
    case("TABLE orders", {"SELECT"}, reads={"orders"}, id="table-shorthand"),
    case("INSERT INTO orders (id) VALUES (1)", {"INSERT", "SELECT"}, writes={"orders"},
         id="insert-values"),
    case("INSERT INTO t SELECT * FROM u", {"INSERT", "SELECT"}, reads={"u"}, writes={"t"},
         id="insert-select"),
    case("UPDATE orders SET total = 0 WHERE id = 1", {"UPDATE"}, writes={"orders"},
         id="update-where"),
    case("UPDATE t SET a = 1 FROM u WHERE t.id = u.id", {"UPDATE"}, reads={"u"}, writes={"t"},
         id="update-from"),
    case("DELETE FROM t USING u WHERE t.id = u.id", {"DELETE"}, reads={"u"}, writes={"t"},
         id="delete-using"),
    # A MERGE from a table deletes whatever the join matches: nothing restricts it further.
    case("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
         {"MERGE", "DELETE", "DELETE WITHOUT WHERE"}, reads={"s"}, writes={"t"}, id="merge"),
    case("SELECT * INTO newt FROM t", {"SELECT", "SELECT INTO"}, reads={"t"}, writes={"newt"},
         id="select-into"),
    case("CREATE TABLE x (a int)", {"CREATE", "CREATE TABLE"}, writes={"x"}, id="create-table"),
    case("ALTER TABLE t ADD COLUMN b int", {"ALTER", "ALTER TABLE", "ALTER TABLE ADD COLUMN"},
         writes={"t"}, id="alter-table"),
    case("TRUNCATE a, public.b", {"TRUNCATE"}, writes={"a", "public.b"}, id="truncate"),
    case("DROP TABLE a, s.b", {"DROP", "DROP TABLE"}, writes={"a", "s.b"}, id="drop-tables"),
    case("DROP VIEW v", {"DROP", "DROP VIEW"}, id="drop-view"),
    case("DROP SCHEMA s CASCADE", {"DROP", "DROP SCHEMA"}, id="drop-schema"),
    case("DROP FUNCTION f", {"DROP", "DROP FUNCTION"}, id="drop-function"),
    case("DROP DATABASE shop", {"DROP", "DROP DATABASE"}, id="drop-database"),
    # --- evasion: comments, case, quoting, qualification ------------------------------------
    case("DROP /* c */ TABLE public.Orders", {"DROP", "DROP TABLE"},
         writes={"public.orders"}, id="comment-between-keywords"),
    case("DROP -- line comment\nTABLE x", {"DROP", "DROP TABLE"}, writes={"x"},
         id="line-comment-between-keywords"),
    case("DROP /* nested /* c */ still */ TABLE x", {"DROP", "DROP TABLE"}, writes={"x"},
         id="nested-comment"),
    case("dRoP tAbLe Orders", {"DROP", "DROP TABLE"}, writes={"orders"}, id="mixed-case"),
    # Quoted names are folded too: a rule on `orders` also catches "Orders" (the strict side).
    case('DROP TABLE "Orders"', {"DROP", "DROP TABLE"}, writes={"orders"},
         id="quoted-table"),
    case("SELECT \"pg_read_file\"('/etc/passwd')", {"SELECT"}, {"pg_read_file"},
         id="quoted-function"),
    case("SELECT pg_catalog.pg_read_file('/etc/passwd')", {"SELECT"}, {"pg_read_file"},
         id="schema-qualified-function"),
    case("SELECT PG_READ_FILE('x')", {"SELECT"}, {"pg_read_file"}, id="upper-case-function"),
    case("SELECT U&\"\\0070g_read_file\"('x')", {"SELECT"}, {"pg_read_file"},
         id="unicode-escaped-function"),
    case("select * from Public.Orders o join \"public\".\"orders\" p on true", {"SELECT"},
         reads={"public.orders"}, id="qualified-and-quoted-read"),
    # --- what only looks like SQL: strings ---------------------------------------------------
    case("SELECT $$DROP TABLE x$$", {"SELECT"}, id="dollar-quoted"),
    case("SELECT $tag$ ; DELETE FROM t $tag$", {"SELECT"}, id="tagged-dollar-quote"),
    case("SELECT E'\\' ; DROP TABLE x; --'", {"SELECT"}, id="e-string-escaped-quote"),
    case("SELECT 'it''s ; DROP TABLE x'", {"SELECT"}, id="doubled-quote"),
    # --- DML wrapped in CTEs -----------------------------------------------------------------
    case("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
         {"SELECT", "DELETE", "DELETE WITHOUT WHERE"}, reads={"d"}, writes={"t"},
         id="cte-delete"),
    case("WITH d AS (UPDATE t SET a = 1 WHERE id = 1 RETURNING *) SELECT * FROM d",
         {"SELECT", "UPDATE"}, reads={"d"}, writes={"t"}, id="cte-bounded-update"),
    case("WITH x AS (INSERT INTO t VALUES (1) RETURNING id) "
         "DELETE FROM u WHERE id IN (SELECT id FROM x)",
         {"DELETE", "INSERT", "SELECT"}, reads={"x"}, writes={"t", "u"}, id="cte-insert"),
    # --- EXPLAIN: only ANALYZE runs the statement inside -------------------------------------
    case("EXPLAIN DELETE FROM t", {"EXPLAIN"}, id="explain"),
    case("EXPLAIN SELECT pg_read_file('x')", {"EXPLAIN"}, id="explain-select"),
    case("EXPLAIN ANALYZE DELETE FROM t",
         {"EXPLAIN", "EXPLAIN ANALYZE", "DELETE", "DELETE WITHOUT WHERE"}, writes={"t"},
         id="explain-analyze"),
    case("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t WHERE id = 1",
         {"EXPLAIN", "EXPLAIN ANALYZE", "DELETE"}, writes={"t"}, id="explain-analyze-options"),
    case("EXPLAIN ANALYSE SELECT pg_read_file('x')",
         {"EXPLAIN", "EXPLAIN ANALYZE", "SELECT"}, {"pg_read_file"}, id="explain-analyse"),
    # --- PREPARE judges the statement it names -----------------------------------------------
    case("PREPARE p AS DELETE FROM t", {"PREPARE", "DELETE", "DELETE WITHOUT WHERE"},
         writes={"t"}, id="prepare-delete"),
    case("PREPARE q (text) AS SELECT pg_read_file($1)", {"PREPARE", "SELECT"},
         {"pg_read_file"}, id="prepare-select"),
    case("EXECUTE p", {"EXECUTE"}, id="execute"),
    # --- functions: SQL bodies are judged, untrusted languages flagged ------------------------
    case("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ DELETE FROM t $$",
         {"CREATE", "CREATE FUNCTION", "DELETE", "DELETE WITHOUT WHERE"}, writes={"t"},
         id="sql-function-body"),
    case("CREATE FUNCTION f() RETURNS void AS $$ DELETE FROM t $$ LANGUAGE sql",
         {"CREATE", "CREATE FUNCTION", "DELETE", "DELETE WITHOUT WHERE"}, writes={"t"},
         id="sql-function-language-last"),
    case("CREATE OR REPLACE FUNCTION f() RETURNS text LANGUAGE SQL "
         "AS 'SELECT pg_read_file(''x'')'",
         {"CREATE", "CREATE FUNCTION", "SELECT"}, {"pg_read_file"}, id="sql-function-string"),
    case("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM t; SELECT 1; END",
         {"CREATE", "CREATE FUNCTION", "DELETE", "DELETE WITHOUT WHERE", "SELECT"},
         writes={"t"}, id="sql-function-begin-atomic"),
    case("CREATE PROCEDURE p() LANGUAGE sql AS $$ DELETE FROM t $$",
         {"CREATE", "CREATE FUNCTION", "DELETE", "DELETE WITHOUT WHERE"}, writes={"t"},
         id="sql-procedure-body"),
    case("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ not sql at all $$",
         {"CREATE", "CREATE FUNCTION", "CREATE FUNCTION UNPARSED BODY", "OPAQUE BODY"},
         id="sql-function-unparsed-body"),
    case("CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'lib', 'sym'",
         UNTRUSTED_BODY, id="language-c"),
    case("CREATE FUNCTION f() RETURNS int LANGUAGE \"C\" AS 'lib', 'sym'",
         UNTRUSTED_BODY, id="language-quoted-c"),
    case("CREATE FUNCTION f() RETURNS int LANGUAGE plpython3u AS $$ return 1 $$",
         UNTRUSTED_BODY, id="language-plpython3u"),
    case("CREATE FUNCTION f() RETURNS int LANGUAGE 'plpython3u' AS 'return 1'",
         UNTRUSTED_BODY,
         id="language-as-string"),
    case("CREATE FUNCTION f() RETURNS int LANGUAGE plperlu AS 'return 1'",
         UNTRUSTED_BODY, id="language-plperlu"),
    # LANGUAGE internal names a built-in C function: an alias of it is a call of it.
    case("CREATE FUNCTION f() RETURNS int LANGUAGE internal AS 'int4in'",
         {"CREATE", "CREATE FUNCTION", "CREATE FUNCTION UNTRUSTED"}, {"int4in"},
         id="language-internal"),
    # A PL/pgSQL body is judged statement by statement.
    case("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql "
         "AS $$ BEGIN DELETE FROM t; RETURN 1; END $$",
         {"CREATE", "CREATE FUNCTION", "DELETE", "DELETE WITHOUT WHERE"}, writes={"t"},
         id="language-plpgsql"),
    # A trusted language the gateway does not parse is opaque.
    case("CREATE FUNCTION f() RETURNS int LANGUAGE plperl AS 'return 1'",
         {"CREATE", "CREATE FUNCTION", "OPAQUE BODY"}, id="language-plperl"),
    # --- DO blocks are read like function bodies ---------------------------------------------
    case("DO $$ BEGIN DELETE FROM t; PERFORM pg_read_file('x'); END $$",
         {"DO", "DELETE", "DELETE WITHOUT WHERE", "SELECT"}, {"pg_read_file"}, writes={"t"},
         id="do"),
    case("DO LANGUAGE plpgsql $$ BEGIN DROP TABLE t; END $$", {"DO", "DROP", "DROP TABLE"},
         writes={"t"}, id="do-language"),
    case("DO LANGUAGE plperl $$ system('id') $$", {"DO", "OPAQUE BODY"}, id="do-plperl"),
    # --- COPY --------------------------------------------------------------------------------
    case("COPY t TO PROGRAM 'cat'", {"COPY", "COPY PROGRAM"}, reads={"t"}, id="copy-to-program"),
    case("COPY t FROM PROGRAM 'curl x'", {"COPY", "COPY PROGRAM", "INSERT"}, writes={"t"},
         id="copy-from-program"),
    case("COPY t FROM '/etc/passwd'", {"COPY", "COPY FILE", "INSERT"}, writes={"t"},
         id="copy-from-file"),
    case("COPY t TO '/tmp/x'", {"COPY", "COPY FILE"}, reads={"t"}, id="copy-to-file"),
    case("COPY t FROM STDIN", {"COPY", "INSERT"}, writes={"t"}, id="copy-from-stdin"),
    case("COPY t TO STDOUT", {"COPY"}, reads={"t"}, id="copy-to-stdout"),
    case("COPY (SELECT * FROM t) TO PROGRAM 'nc x 1'", {"COPY", "COPY PROGRAM", "SELECT"},
         reads={"t"}, id="copy-query-to-program"),
    case("COPY (SELECT pg_read_file('x')) TO STDOUT", {"COPY", "SELECT"}, {"pg_read_file"},
         id="copy-query-calls"),
    # --- functions wherever they hide --------------------------------------------------------
    case("SELECT * FROM t WHERE id IN (SELECT pg_sleep(1))", {"SELECT"}, {"pg_sleep"},
         reads={"t"}, id="function-in-subquery"),
    case("SELECT (SELECT pg_read_file('x'))", {"SELECT"}, {"pg_read_file"},
         id="function-in-scalar-subquery"),
    case("SELECT * FROM a, LATERAL (SELECT pg_read_file(a.x) FROM b) s", {"SELECT"},
         {"pg_read_file"}, reads={"a", "b"}, id="function-in-lateral"),
    case("SELECT * FROM a JOIN LATERAL dblink('c', 'SELECT 1') AS d(x int) ON true",
         {"SELECT"}, {"dblink"}, reads={"a"}, id="function-lateral-join"),
    case("SELECT * FROM pg_ls_dir('.')", {"SELECT"}, {"pg_ls_dir"}, id="function-in-from"),
    case("VALUES (1, pg_read_file('x')), (2, now())", {"SELECT"}, {"pg_read_file", "now"},
         id="function-in-values"),
    case("SELECT * FROM t ORDER BY pg_read_file('x')", {"SELECT"}, {"pg_read_file"},
         reads={"t"}, id="function-in-order-by"),
    case("INSERT INTO t VALUES (1) RETURNING pg_read_file('x')", {"INSERT", "SELECT"},
         {"pg_read_file"}, writes={"t"}, id="function-in-returning"),
    case("DELETE FROM t WHERE id = 1 RETURNING pg_read_file('x')", {"DELETE"},
         {"pg_read_file"}, writes={"t"}, id="function-in-delete-returning"),
    case("UPDATE t SET a = (SELECT pg_read_file('x')) WHERE id = 1", {"UPDATE", "SELECT"},
         {"pg_read_file"}, writes={"t"}, id="function-in-set"),
    # dblink runs its query text on a server, maybe this one: judged as the SQL it is.
    case("SELECT dblink_exec('c', 'DROP TABLE x')", {"SELECT", "DROP", "DROP TABLE"},
         {"dblink_exec"}, writes={"x"}, id="dblink-exec"),
    case("DECLARE c CURSOR FOR SELECT pg_read_file('x')", {"DECLARE CURSOR", "SELECT"},
         {"pg_read_file"}, id="cursor"),
]


@pytest.mark.parametrize(("sql", "kinds", "functions", "reads", "writes"), CORPUS)
def test_corpus(sql: str, kinds: set[str], functions: set[str], reads: set[str],
                writes: set[str]) -> None:
    facts = one(sql)
    assert facts.text == sql
    assert facts.kinds == kinds
    assert facts.functions == functions
    assert facts.reads == reads
    assert facts.writes == writes


KINDS = [
    ("CREATE ROLE bob", {"CREATE", "CREATE ROLE", "ROLE"}),
    ("CREATE USER bob", {"CREATE", "CREATE ROLE", "ROLE"}),
    ("ALTER ROLE bob SUPERUSER", {"ALTER", "ALTER ROLE", "ROLE"}),
    ("ALTER USER bob WITH PASSWORD 'x'", {"ALTER", "ALTER ROLE", "ROLE"}),
    ("DROP ROLE bob", {"DROP", "DROP ROLE", "ROLE"}),
    ("DROP USER bob", {"DROP", "DROP ROLE", "ROLE"}),
    ("GRANT SELECT ON t TO bob", {"GRANT"}),
    ("REVOKE SELECT ON t FROM bob", {"REVOKE"}),
    ("REVOKE admin FROM bob", {"REVOKE", "REVOKE ROLE", "ROLE"}),
    ("SET ROLE postgres", {"SET", "SET ROLE"}),
    ("SET LOCAL ROLE postgres", {"SET", "SET ROLE"}),
    ("SET SESSION AUTHORIZATION postgres", {"SET", "SET ROLE"}),
    ("RESET ROLE", {"SET", "SET ROLE"}),
    ("SET work_mem = '1GB'", {"SET"}),
    ("ALTER SYSTEM SET work_mem = '1GB'", {"ALTER", "ALTER SYSTEM"}),
    ("LOAD 'plpgsql'", {"LOAD"}),
    ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob",
     {"ALTER", "ALTER DEFAULT PRIVILEGES"}),
    ("CREATE EXTENSION dblink", {"CREATE", "CREATE EXTENSION"}),
    ("VACUUM t", {"VACUUM"}),
    ("VACUUM FULL t", {"VACUUM", "VACUUM FULL"}),
    ("VACUUM (FULL) t", {"VACUUM", "VACUUM FULL"}),
    ("BEGIN", {"TRANSACTION"}),
    ("COMMIT", {"TRANSACTION"}),
    ("SHOW work_mem", {"VARIABLE SHOW"}),
    ("CALL p()", {"CALL"}),
    ("LOCK TABLE t", {"LOCK"}),
    ("CREATE SCHEMA s", {"CREATE", "CREATE SCHEMA"}),
    ("CREATE TABLE x AS SELECT 1", {"CREATE", "CREATE TABLE AS", "SELECT"}),
]


@pytest.mark.parametrize(("sql", "kinds"), KINDS)
def test_statement_kinds(sql: str, kinds: set[str]) -> None:
    assert one(sql).kinds == kinds


def test_statement_kinds_hold_every_kind_the_classifier_reports() -> None:
    seen: set[str] = set()
    for param in CORPUS:
        seen |= one(param.values[0]).kinds
    for sql, _ in KINDS:
        seen |= one(sql).kinds
    for where in [*UNBOUNDED, *BOUNDED]:
        for sql in (f"UPDATE t SET a = 1 {where}", f"DELETE FROM t {where}"):
            seen |= one(sql).kinds
    # A rule can name everything the classifier produces, and the corpus reaches the kinds
    # that the example policy names.
    assert seen <= STATEMENT_KINDS, seen - STATEMENT_KINDS
    assert {"DROP", "TRUNCATE", "ALTER SYSTEM", "LOAD", "ROLE", "GRANT", "REVOKE", "SET ROLE",
            "COPY PROGRAM", "COPY FILE", "DO", "CREATE FUNCTION UNTRUSTED", "CREATE EXTENSION",
            "UPDATE WITHOUT WHERE", "DELETE WITHOUT WHERE", "EXPLAIN ANALYZE",
            "CREATE FUNCTION UNPARSED BODY", "VACUUM FULL", "SELECT INTO"} <= seen


# --- UPDATE/DELETE without a real WHERE ----------------------------------------------------

UNBOUNDED = [
    "", "WHERE true", "WHERE TRUE", "WHERE 1=1", "WHERE 'a'='a'", "WHERE 1<2", "WHERE x OR true",
    "WHERE NOT false", "WHERE id = id", "WHERE true AND true", "WHERE (1 = 1)", "WHERE 0 = 0",
    "WHERE 1 <> 2", "WHERE 1 != 2", "WHERE 1 >= 0", "WHERE -1 = -1", "WHERE 1::int = 1",
    "WHERE 't'::boolean", "WHERE NULL IS NULL", "WHERE 1 IS NOT NULL", "WHERE t.id = t.id",
    "WHERE \"id\" = ID", "WHERE id = 1 OR 1 = 1", "WHERE id = id AND true", "WHERE 'a' < 'b'",
    "WHERE 1.5 = 1.5",
]

BOUNDED = [
    "WHERE id = 1", "WHERE 1=2", "WHERE false OR id=1", "WHERE a IS NULL", "WHERE false",
    "WHERE NOT true", "WHERE 0 = 1", "WHERE 0 <> 0", "WHERE true AND id = 1", "WHERE id = other",
    "WHERE t.id = u.id", "WHERE NULL = NULL", "WHERE 1 = NULL", "WHERE id = 0",
    "WHERE NULL IS NOT NULL", "WHERE 1 IS NULL", "WHERE id IN (SELECT id FROM u)",
    "WHERE 'x' = 'x' AND id = 1", "WHERE CURRENT OF c",
]


@pytest.mark.parametrize("where", UNBOUNDED)
def test_update_and_delete_without_a_real_where(where: str) -> None:
    update = one(f"UPDATE t SET a = 1 {where}")
    assert update.kinds == {"UPDATE", "UPDATE WITHOUT WHERE"}
    delete = one(f"DELETE FROM t {where}")
    assert delete.kinds == {"DELETE", "DELETE WITHOUT WHERE"}
    assert update.writes == delete.writes == {"t"}


@pytest.mark.parametrize("where", BOUNDED)
def test_bounded_where_does_not_count(where: str) -> None:
    update = one(f"UPDATE t SET a = 1 {where}").kinds
    assert "UPDATE" in update
    assert "UPDATE WITHOUT WHERE" not in update
    delete = one(f"DELETE FROM t {where}").kinds
    assert "DELETE" in delete
    assert "DELETE WITHOUT WHERE" not in delete


def test_unbounded_write_inside_a_cte_counts() -> None:
    facts = one("WITH d AS (DELETE FROM t WHERE 1 = 1 RETURNING *) SELECT count(*) FROM d")
    assert "DELETE WITHOUT WHERE" in facts.kinds
    assert facts.functions == {"count"}


# --- stacked statements --------------------------------------------------------------------


@pytest.mark.parametrize(("sql", "texts"), [
    ("SELECT 1; DELETE FROM t; SELECT 2", ["SELECT 1", "DELETE FROM t", "SELECT 2"]),
    ("SELECT 1;DELETE FROM t WHERE id=1;", ["SELECT 1", "DELETE FROM t WHERE id=1"]),
    ("SELECT 'é'; DELETE FROM t; SELECT 'ü'", ["SELECT 'é'", "DELETE FROM t", "SELECT 'ü'"]),
    ("SELECT 1 /* ; */ ; DELETE FROM t", ["SELECT 1 /* ; */", "DELETE FROM t"]),
    ("SELECT $$;$$;\n  DELETE FROM t", ["SELECT $$;$$", "DELETE FROM t"]),
    ("SELECT E'\\\\'; DELETE FROM t", ["SELECT E'\\\\'", "DELETE FROM t"]),
    # standard_conforming_strings is on: a backslash does not escape the quote here.
    ("SELECT 'a\\'; DELETE FROM t; --'", ["SELECT 'a\\'", "DELETE FROM t"]),
])
def test_stacked_statements_give_one_facts_each_with_its_own_text(
        sql: str, texts: list[str]) -> None:
    facts = classify(sql)
    assert [f.text for f in facts] == texts
    assert facts[0].kinds == {"SELECT"}
    delete = facts[1]
    assert "DELETE" in delete.kinds
    assert delete.writes == {"t"}
    # What one statement does does not leak into its neighbours.
    assert all(f.writes == set() for f in facts if f is not delete)


def test_stacked_statements_are_judged_separately() -> None:
    first, second = classify("UPDATE t SET a = 1 WHERE 1=1; DELETE FROM t WHERE id = 1")
    assert first.kinds == {"UPDATE", "UPDATE WITHOUT WHERE"}
    assert second.kinds == {"DELETE"}


@pytest.mark.parametrize("sql", ["", "   ", ";", ";;", "-- only a comment", "/* c */\n"])
def test_empty_input_has_no_statements(sql: str) -> None:
    assert classify(sql) == []


# --- what the parser rejects ---------------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "DR/**/OP TABLE x",  # a comment ends a keyword: this is "DR" then "OP"
    "SELEC 1",
    "SELECT 'unterminated",
    "SELECT $$ unterminated",
    "DELETE t WHERE",
    "SELECT 1; DROP TABL x",  # one bad statement: the whole string is rejected
])
def test_unparseable_sql_raises_parse_failure(sql: str) -> None:
    with pytest.raises(ParseFailure) as info:
        classify(sql)
    assert str(info.value)
    cursor = info.value.cursor
    assert cursor is None or 0 <= cursor <= len(sql.encode())


def test_parse_failure_reports_where() -> None:
    with pytest.raises(ParseFailure) as info:
        classify("SELECT 1 FROM FROM t")
    assert "syntax error" in str(info.value)
    assert info.value.cursor == len("SELECT 1 FROM ")


# --- describe ------------------------------------------------------------------------------


def test_describe_in_the_operators_words() -> None:
    facts = one("WITH d AS (DELETE FROM t RETURNING *) SELECT pg_sleep(1) FROM d")
    assert facts.describe() == (
        "DELETE, DELETE WITHOUT WHERE, SELECT; calls pg_sleep; writes t; reads d")
    assert Facts("").describe() == "unknown statement"


# --- fuzzing -------------------------------------------------------------------------------

_TOKENS = [
    "SELECT", "DELETE", "FROM", "WHERE", "UPDATE", "SET", "INSERT", "INTO", "VALUES", "WITH",
    "AS", "(", ")", ",", ";", "t", "u.x", '"Q"', "1", "1.5", "'s'", "E'\\''", "$$", "$a$",
    "true", "NOT", "OR", "AND", "=", "<", "*", "--", "/*", "*/", "EXPLAIN", "ANALYZE",
    "CREATE", "FUNCTION", "f()", "RETURNS", "int", "LANGUAGE", "sql", "DO", "COPY", "TO",
    "PROGRAM", "STDIN", "PREPARE", "p", "DROP", "TABLE", "pg_read_file('x')", "RETURNING",
    "LATERAL", "ORDER", "BY", "NULL", "IS", "\n", "é",
]


def _check(sql: str) -> None:
    try:
        statements = classify(sql)
    except ParseFailure:
        return
    for facts in statements:
        assert facts.text in sql
        assert facts.kinds <= STATEMENT_KINDS


@FUZZ
@given(st.text())
def test_fuzz_arbitrary_text(sql: str) -> None:
    _check(sql)


@FUZZ
@given(st.lists(st.sampled_from(_TOKENS), max_size=25).map(" ".join))
def test_fuzz_sql_like_text(sql: str) -> None:
    _check(sql)


@FUZZ
@given(st.sampled_from([p.values[0] for p in CORPUS]), st.integers(0, 200), st.text(max_size=5))
def test_fuzz_mutated_corpus(sql: str, at: int, insert: str) -> None:
    at = min(at, len(sql))
    _check(sql[:at] + insert + sql[at:])


# --- known bugs (strict: each turns red once fixed, so the marker gets removed) -------------


@pytest.mark.parametrize("sql", ["SELECT '\udcff'", "\ud800"])
def test_lone_surrogate_is_a_parse_failure(sql: str) -> None:
    with pytest.raises(ParseFailure):
        classify(sql)


@pytest.mark.parametrize("sql", ["ANALYZE t", "ANALYZE"])
def test_analyze_is_its_own_kind(sql: str) -> None:
    assert one(sql).kinds == {"ANALYZE"}


@pytest.mark.parametrize("where", ["WHERE NOT (1 = 2)", "WHERE NOT (0 <> 0)",
                                   "WHERE NOT NOT true"])
def test_not_of_a_false_comparison_is_unbounded(where: str) -> None:
    assert "DELETE WITHOUT WHERE" in one(f"DELETE FROM t {where}").kinds


@pytest.mark.parametrize("where", ["WHERE 1 = 1.0", "WHERE 10.0 > 9.5", "WHERE 0 = 0.0"])
def test_numeric_comparisons_compare_numbers(where: str) -> None:
    assert "DELETE WITHOUT WHERE" in one(f"DELETE FROM t {where}").kinds


def test_false_decimal_comparison_is_bounded() -> None:
    assert one("DELETE FROM t WHERE 2.0 > 10.0").kinds == {"DELETE"}


@pytest.mark.parametrize("where", ["WHERE 'TRUE'::boolean", "WHERE NOT 'FALSE'::boolean",
                                   "WHERE 'On'::boolean"])
def test_boolean_strings_in_any_case(where: str) -> None:
    assert "DELETE WITHOUT WHERE" in one(f"DELETE FROM t {where}").kinds


def test_grant_role_kind() -> None:
    assert one("GRANT admin TO bob").kinds == {"GRANT", "GRANT ROLE", "ROLE"}


def test_called_procedure_is_a_function() -> None:
    assert one("CALL dblink_proc(pg_sleep(1))").functions == {"dblink_proc", "pg_sleep"}


def test_explain_analyze_false_does_not_run_the_statement() -> None:
    assert one("EXPLAIN (ANALYZE false) DELETE FROM t").kinds == {"EXPLAIN"}


@pytest.mark.parametrize("sql", ["CREATE VIEW v AS SELECT 1", "CREATE INDEX i ON t (a)",
                                 "CREATE DATABASE d", "CREATE RULE r AS ON INSERT TO t DO "
                                 "INSTEAD NOTHING"])
def test_every_create_is_create(sql: str) -> None:
    assert "CREATE" in one(sql).kinds


@pytest.mark.parametrize(("sql", "kind"), [("ALTER TABLE t RENAME TO u", "ALTER TABLE"),
                                           ("ALTER ROLE bob RENAME TO eve", "ROLE")])
def test_rename_is_an_alter(sql: str, kind: str) -> None:
    kinds = one(sql).kinds
    assert "ALTER" in kinds
    assert kind in kinds


def test_create_table_as_writes_its_table() -> None:
    assert one("CREATE TABLE x AS SELECT * FROM t").writes == {"x"}


# --- binding is calling: statements that make a function run later -------------------------

BINDINGS = [
    "CREATE OPERATOR @~@ (FUNCTION = pg_terminate_backend, LEFTARG = int, RIGHTARG = bigint)",
    "CREATE OPERATOR public.@~@ (PROCEDURE = pg_catalog.pg_terminate_backend, LEFTARG = int)",
    "create operator ~~~ (function = \"pg_terminate_backend\", rightarg = int)",
    "CREATE OPERATOR === (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int, "
    "RESTRICT = pg_terminate_backend)",
    "CREATE OPERATOR === (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int, "
    "JOIN = pg_terminate_backend)",
    "ALTER OPERATOR === (int, int) SET (RESTRICT = pg_terminate_backend)",
    "CREATE AGGREGATE a(int) (SFUNC = pg_terminate_backend, STYPE = int)",
    "CREATE AGGREGATE a(int) (SFUNC = int4pl, STYPE = int, FINALFUNC = pg_terminate_backend)",
    "CREATE AGGREGATE a(int) (SFUNC = int4pl, STYPE = int, COMBINEFUNC = pg_terminate_backend)",
    "CREATE AGGREGATE a(int) (SFUNC = int4pl, STYPE = int, MSFUNC = int4pl, "
    "MINVFUNC = pg_terminate_backend, MSTYPE = int)",
    "CREATE AGGREGATE a (BASETYPE = int, SFUNC = pg_terminate_backend, STYPE = int)",
    "CREATE CAST (int AS text) WITH FUNCTION pg_terminate_backend(int) AS IMPLICIT",
    "CREATE CAST (int AS text) WITH FUNCTION pg_catalog.pg_terminate_backend(int)",
    "CREATE TYPE ty (INPUT = pg_terminate_backend, OUTPUT = f_out)",
    "CREATE TYPE r AS RANGE (SUBTYPE = int, SUBTYPE_DIFF = pg_terminate_backend)",
    "CREATE TYPE r AS RANGE (SUBTYPE = int, CANONICAL = pg_terminate_backend)",
    "ALTER TYPE ty SET (RECEIVE = pg_terminate_backend)",
    "CREATE TABLE t (a int DEFAULT pg_terminate_backend(1)::int)",
    "CREATE TABLE t (a int, b bool GENERATED ALWAYS AS (pg_terminate_backend(a)) STORED)",
    "CREATE TABLE t (a int CHECK (pg_terminate_backend(a)))",
    "CREATE TABLE t (a int) PARTITION BY RANGE ((pg_terminate_backend(a)::int))",
    "ALTER TABLE t ALTER COLUMN a SET DEFAULT pg_terminate_backend(1)::int",
    "ALTER TABLE t ADD COLUMN b bool DEFAULT pg_terminate_backend(1)",
    "ALTER TABLE t ADD CONSTRAINT c CHECK (pg_terminate_backend(a))",
    "ALTER TABLE t ALTER COLUMN a TYPE bool USING pg_terminate_backend(a)",
    "CREATE DOMAIN d AS int CHECK (pg_terminate_backend(VALUE))",
    "CREATE DOMAIN d AS int DEFAULT pg_terminate_backend(1)::int",
    "ALTER DOMAIN d ADD CONSTRAINT c CHECK (pg_terminate_backend(VALUE))",
    "ALTER DOMAIN d SET DEFAULT pg_terminate_backend(1)::int",
    "CREATE INDEX i ON t ((pg_terminate_backend(a)))",
    "CREATE INDEX i ON t (a) WHERE pg_terminate_backend(a)",
    "CREATE STATISTICS s ON (pg_terminate_backend(a)::int), b FROM t",
    "CREATE POLICY p ON t USING (pg_terminate_backend(a))",
    "CREATE POLICY p ON t FOR INSERT WITH CHECK (pg_terminate_backend(a))",
    "CREATE VIEW v AS SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
    "CREATE MATERIALIZED VIEW v AS SELECT pg_terminate_backend(1)",
    "CREATE RULE r AS ON INSERT TO t DO ALSO SELECT pg_terminate_backend(1)",
    "CREATE RULE r AS ON INSERT TO t WHERE pg_terminate_backend(1) DO INSTEAD NOTHING",
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION pg_terminate_backend()",
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW WHEN (pg_terminate_backend(1)) "
    "EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE PROCEDURE pg_terminate_backend()",
    "CREATE FUNCTION f(int) RETURNS int LANGUAGE sql SUPPORT pg_terminate_backend "
    "AS 'SELECT 1'",
    "ALTER FUNCTION f(int) SUPPORT pg_terminate_backend",
    "CREATE FUNCTION f(x bool DEFAULT pg_terminate_backend(1)) RETURNS int LANGUAGE sql "
    "AS 'SELECT 1'",
    "CREATE FUNCTION f() RETURNS int LANGUAGE internal AS 'pg_terminate_backend'",
    "CREATE OPERATOR CLASS c FOR TYPE int USING btree AS OPERATOR 1 <, "
    "FUNCTION 1 pg_terminate_backend(int, int)",
    "ALTER OPERATOR FAMILY f USING btree ADD FUNCTION 1 (int, int) pg_terminate_backend(int, int)",
    "CREATE LANGUAGE x HANDLER pg_terminate_backend",
    "CREATE FOREIGN DATA WRAPPER w HANDLER pg_terminate_backend",
    "ALTER FOREIGN DATA WRAPPER w VALIDATOR pg_terminate_backend",
    "CREATE ACCESS METHOD am TYPE TABLE HANDLER pg_terminate_backend",
    "CREATE CONVERSION c FOR 'UTF8' TO 'LATIN1' FROM pg_terminate_backend",
    "CREATE TRANSFORM FOR int LANGUAGE plpgsql (FROM SQL WITH FUNCTION pg_terminate_backend("
    "internal), TO SQL WITH FUNCTION f2(internal))",
    "CREATE TEXT SEARCH PARSER p (START = pg_terminate_backend, GETTOKEN = g, END = e, "
    "LEXTYPES = l)",
    "CREATE TEXT SEARCH TEMPLATE tpl (LEXIZE = pg_terminate_backend)",
    "CREATE SCHEMA s CREATE TABLE t (a int DEFAULT pg_terminate_backend(1)::int)",
]


@pytest.mark.parametrize("sql", BINDINGS)
def test_binding_a_function_is_calling_it(sql: str) -> None:
    assert "pg_terminate_backend" in one(sql).functions


@pytest.mark.parametrize("sql", [
    "CREATE OPERATOR === (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int, "
    "COMMUTATOR = ===, NEGATOR = !==)",
    "CREATE AGGREGATE a(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0')",
    "CREATE CAST (int AS text) WITH INOUT",
    "CREATE TYPE ty AS (a int, b text)",
    "COMMENT ON FUNCTION pg_terminate_backend(int) IS 'x'",
])
def test_options_that_are_not_functions_are_not_calls(sql: str) -> None:
    assert "pg_terminate_backend" not in one(sql).functions
    assert not one(sql).functions - {"int4eq", "int4pl"}


# --- triggers judge the function they bind --------------------------------------------------

TRIGGER_FUNCTION = ("CREATE FUNCTION public.wipe() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN UPDATE t SET x = 0; RETURN NEW; END $$")


def test_a_trigger_is_judged_by_the_body_it_binds_when_the_same_text_creates_it() -> None:
    created, trigger = classify(f"{TRIGGER_FUNCTION}; CREATE TRIGGER tr AFTER INSERT ON u "
                                "FOR EACH ROW EXECUTE FUNCTION public.wipe()")
    assert "UPDATE WITHOUT WHERE" in created.kinds
    assert set(created.defines) == {"public.wipe()"}
    assert {"CREATE TRIGGER", "UPDATE", "UPDATE WITHOUT WHERE"} <= trigger.kinds
    assert "OPAQUE BODY" not in trigger.kinds
    assert trigger.writes == {"t", "u"}
    (bound,) = trigger.parts
    assert bound.origin == "trigger function public.wipe" and bound.deferred
    # From an earlier text, no: it may have failed, or been replaced since.
    (again,) = classify("CREATE TRIGGER tr AFTER INSERT ON u FOR EACH ROW EXECUTE FUNCTION "
                        "public.wipe()")
    assert "OPAQUE BODY" in again.kinds


@pytest.mark.parametrize("sql", [
    "CREATE TRIGGER tr AFTER INSERT ON u FOR EACH ROW EXECUTE FUNCTION unseen()",
    "CREATE TRIGGER tr AFTER INSERT ON u FOR EACH ROW EXECUTE PROCEDURE s.unseen('a', 'b')",
    "CREATE CONSTRAINT TRIGGER tr AFTER INSERT ON u DEFERRABLE FOR EACH ROW "
    "EXECUTE FUNCTION unseen()",
    "CREATE TRIGGER tr INSTEAD OF INSERT ON v FOR EACH ROW EXECUTE FUNCTION check_primary_key("
    "'id', 't', 'id')",
    "CREATE EVENT TRIGGER e ON sql_drop EXECUTE FUNCTION unseen()",
    "CREATE SCHEMA s CREATE TRIGGER tr AFTER INSERT ON u EXECUTE FUNCTION unseen()",
])
def test_a_trigger_on_a_function_the_gateway_never_saw_is_opaque(sql: str) -> None:
    facts = one(sql)
    assert "OPAQUE BODY" in facts.kinds


def test_built_in_trigger_functions_are_known_by_their_schema() -> None:
    facts = one("CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW "
                "EXECUTE FUNCTION pg_catalog.suppress_redundant_updates_trigger()")
    assert "OPAQUE BODY" not in facts.kinds
    # Unqualified, a function of the same name earlier in the search_path would be bound.
    facts = one("CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW "
                "EXECUTE FUNCTION suppress_redundant_updates_trigger()")
    assert "OPAQUE BODY" in facts.kinds


def test_a_trigger_on_a_function_in_a_language_the_gateway_cannot_read_is_opaque() -> None:
    _, trigger = classify("CREATE FUNCTION s.t() RETURNS trigger LANGUAGE plperl AS "
                          "'return'; CREATE TRIGGER tr AFTER INSERT ON u "
                          "EXECUTE FUNCTION s.t()")
    assert "OPAQUE BODY" in trigger.kinds


# --- rules: their actions run with every matching write ------------------------------------


@pytest.mark.parametrize(("sql", "inside"), [
    ("CREATE RULE r AS ON INSERT TO t DO ALSO DELETE FROM u", {"DELETE WITHOUT WHERE"}),
    ("CREATE RULE r AS ON UPDATE TO t DO INSTEAD (UPDATE u SET a = 0; DELETE FROM v "
     "WHERE id = old.id)", {"UPDATE WITHOUT WHERE", "DELETE"}),
    ("CREATE OR REPLACE RULE r AS ON DELETE TO t DO ALSO TRUNCATE u", set()),
    ("CREATE RULE r AS ON SELECT TO t DO INSTEAD SELECT pg_terminate_backend(1)", set()),
])
def test_rule_actions_are_judged_when_the_rule_is_created(sql: str, inside: set[str]) -> None:
    try:
        facts = one(sql)
    except ParseFailure:
        return  # TRUNCATE is no rule action: PostgreSQL's parser refuses it too
    assert {"CREATE", "CREATE RULE"} | inside <= facts.kinds
    assert facts.parts and all(p.deferred and p.origin.startswith("rule action")
                               for p in facts.parts)


# --- parts: what runs inside, for policy explain and the strictest verdict -------------------


def test_parts_say_where_they_are() -> None:
    facts = one("CREATE FUNCTION f(q text) RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n"
                "  EXECUTE q;\n  DELETE FROM t WHERE id = 1;\nEND $$")
    assert [(p.origin, p.text, sorted(p.kinds)) for p in facts.parts] == [
        ("body of f, line 3: EXECUTE", "q", ["DYNAMIC SQL"]),
        ("body of f, line 4: statement", "DELETE FROM t WHERE id = 1", ["DELETE"]),
    ]
    sql_body = one("CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC "
                   "DELETE FROM t; SELECT 1; END")
    assert [p.origin for p in sql_body.parts] == ["body of g, statement 1"]
    assert sql_body.defines["g()"].kinds >= {"DELETE", "DELETE WITHOUT WHERE"}
    returning = one("CREATE FUNCTION h() RETURNS bool LANGUAGE sql "
                    "RETURN pg_terminate_backend(1)")
    assert "pg_terminate_backend" in returning.functions
    assert "pg_terminate_backend" in returning.defines["h()"].functions
