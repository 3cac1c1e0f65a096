"""Stored code the server reads differently from the gateway (issue 12, finding 1).

PostgreSQL reads a function body, an EXECUTE'd string or a query string handed to query_to_xml
when it runs, under the ``standard_conforming_strings`` of that moment. So (a) a setting that
changes how SQL is read is refused wherever it is changed — at the top level, in a body, in a
CREATE/ALTER FUNCTION's SET clause, for a role or database — and (b) text read at run time
whose reading could depend on the setting (a plain ``'…'`` string holding a backslash) is
opaque, whatever the gateway's one reading found in it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.guardrail.classify import classify
from engine.guardrail.guard import SessionGuard
from engine.guardrail.literals import reads_differently_without_scs

REPO = Path(__file__).resolve().parents[3]


def body(code: str, language: str = "plpgsql") -> str:
    return f"CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE {language} AS $gw${code}$gw$"


# --- (a) settings that change how SQL is read, changed anywhere ---------------------------

SETTING_CHANGES = [
    body("BEGIN SET LOCAL standard_conforming_strings = off; PERFORM b(); END"),
    body("BEGIN SET standard_conforming_strings TO 'off'; END"),
    body("BEGIN SET SESSION standard_conforming_strings = false; END"),
    body("BEGIN RESET standard_conforming_strings; END"),
    body("BEGIN SET standard_conforming_strings TO DEFAULT; END"),
    body("BEGIN SET standard_conforming_strings FROM CURRENT; END"),
    body("BEGIN PERFORM set_config('standard_conforming_strings', 'off', true); END"),
    body("DECLARE x text := set_config('standard_conforming_strings', 'off', true); "
         "BEGIN NULL; END"),
    body("BEGIN IF set_config('Standard_Conforming_Strings', 'off', true) = '' THEN "
         "NULL; END IF; END"),
    body("DECLARE n text := 'standard_conforming_strings'; "
         "BEGIN PERFORM set_config(n, 'off', true); END"),
    body("BEGIN PERFORM set_config('client_encoding', 'SJIS', false); END"),
    body("BEGIN SET client_encoding = 'BIG5'; END"),
    body("BEGIN EXECUTE 'SET LOCAL standard_conforming_strings = off'; END"),
    body("BEGIN EXECUTE format('SELECT %s', set_config('standard_conforming_strings', "
         "'off', true)); END"),
    body("SET LOCAL standard_conforming_strings = off; SELECT b()", "sql"),
    body("SELECT set_config('standard_conforming_strings', 'off', true)", "sql"),
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC "
    "SELECT set_config('standard_conforming_strings', 'off', true); END",
    "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN "
    "SET LOCAL standard_conforming_strings = off; CALL q(); END$$",
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql SET standard_conforming_strings = off "
    "AS 'SELECT b()'",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql SET client_encoding = 'SJIS' "
    "AS $$BEGIN NULL; END$$",
    "ALTER FUNCTION f() SET standard_conforming_strings = off",
    "ALTER PROCEDURE p() SET standard_conforming_strings TO off",
    "ALTER ROUTINE f RESET standard_conforming_strings",
    "ALTER ROLE CURRENT_USER SET standard_conforming_strings = off",
    "ALTER ROLE CURRENT_USER IN DATABASE shop SET standard_conforming_strings = off",
    "ALTER USER alice SET client_encoding = 'SJIS'",
    "ALTER DATABASE shop SET standard_conforming_strings TO off",
    "ALTER SYSTEM SET standard_conforming_strings = off",
    "CREATE RULE r AS ON INSERT TO t DO ALSO "
    "SELECT set_config('standard_conforming_strings', 'off', true)",
    "DO $$BEGIN PERFORM set_config('standard_conforming_strings', 'off', true); END$$",
    "SELECT query_to_xml('SELECT set_config(''standard_conforming_strings'', ''off'', "
    "true)', true, true, '')",
]


@pytest.mark.parametrize("sql", SETTING_CHANGES)
def test_reading_settings_changed_anywhere_are_refused(shipped: SessionGuard, sql: str) -> None:
    judged = shipped.judge(sql)
    assert (judged.action, judged.rule) == ("block", "gateway-sql-reading"), judged.verdict


@pytest.mark.parametrize("sql", [
    body("BEGIN SET LOCAL search_path = public; SET LOCAL work_mem = '64MB'; END"),
    body("BEGIN SET LOCAL standard_conforming_strings = on; END"),
    "ALTER FUNCTION f() SET search_path = public",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = public AS 'SELECT 1'",
])
def test_other_settings_in_bodies_are_not_refused(shipped: SessionGuard, sql: str) -> None:
    assert shipped.judge(sql).rule != "gateway-sql-reading"


# --- (b) bodies whose reading depends on standard_conforming_strings ----------------------

# Each reads as something harmless with the setting on, and runs the DROP with it off.
TWO_READINGS = [
    # The attacker's body: PERFORM of two strings with the setting on.
    body(r"BEGIN PERFORM 'a\', '\n; ALTER ROLE CURRENT_USER PASSWORD 'x'; DROP TABLE v5; "
         r"-- '; END"),
    # A RAISE format string is no SQL expression: only the whole body shows the backslash.
    body(r"BEGIN RAISE NOTICE 'a\', '; DROP TABLE v5; --'; END"),
    body(r"DECLARE s text := 'a\'; BEGIN NULL; END; --'; BEGIN DROP TABLE v5; END"),
    # A SQL function's body, given as an escaped string.
    body(r"SELECT 'a\', $$; DROP TABLE v5; --'", "sql"),
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'SELECT ''a\\'', ''; DROP TABLE v5; --'''",
    # A string the body EXECUTEs, whose own text holds the backslash.
    body(r"BEGIN EXECUTE $q$SELECT 'a\', $x$; DROP TABLE v5; --'$x$$q$; END"),
    # Query text handed to a function that runs it when it is called.
    r"SELECT query_to_xml($q$SELECT 'a\', $$; DROP TABLE v5; --'$q$, true, true, '')",
    r"SELECT * FROM ts_stat($q$SELECT 'a\'::tsvector$q$)",
    # A DO block, a procedure, a trigger function.
    r"DO $$BEGIN PERFORM 'a\', '; DROP TABLE v5; --'; END$$",
    "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN PERFORM 'x\\'; END$$",
    "CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS "
    "$$BEGIN NEW.note := 'a\\b'; RETURN NEW; END$$",
    # A string continued on the next line keeps its kind.
    body("BEGIN PERFORM 'a'\n'\\'; END"),
]


@pytest.mark.parametrize("sql", TWO_READINGS)
def test_text_read_at_run_time_that_could_read_two_ways_is_opaque(
        shipped: SessionGuard, sql: str) -> None:
    [facts] = classify(sql)
    assert "OPAQUE BODY" in facts.kinds, facts.describe()
    assert shipped.judge(sql).action != "allow"


@pytest.mark.parametrize("sql", [
    body(r"BEGIN RETURN; END"),
    body(r"BEGIN PERFORM E'a\n', $x$\d+$x$, 'plain', U&'\0061'; END"),
    body(r"BEGIN PERFORM 1; -- a comment with a \ backslash" "\nEND"),
    body(r'BEGIN PERFORM "weird\name" FROM t; END'),
    body(r"SELECT E'\\', $$\$$", "sql"),
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT 'a\\b'; END",
    "CREATE RULE r AS ON INSERT TO t DO ALSO SELECT 'a\\b'",  # stored as a tree
    r"SELECT query_to_xml('SELECT E''\\n''', true, true, '')",
])
def test_backslashes_that_read_the_same_either_way_are_read(sql: str) -> None:
    [facts] = classify(sql)
    assert "OPAQUE BODY" not in facts.kinds, facts.describe()


@pytest.mark.parametrize(("text", "differs"), [
    ("SELECT 'a'", False),
    (r"SELECT 'a\'", True),
    (r"SELECT 'a\''", True),
    (r"SELECT E'a\''", False),
    (r"SELECT e'a\''", False),
    (r"SELECT N'a\'", True),
    (r"SELECT $$a\$$", False),
    (r"SELECT $t$a\$t$", False),
    (r'SELECT "a\"', False),
    (r"SELECT 1 /* \ */", False),
    (r"SELECT B'0\1'", False),
    ("SELECT 'unterminated", True),
])
def test_which_text_reads_differently(text: str, differs: bool) -> None:
    assert reads_differently_without_scs(text) is differs
