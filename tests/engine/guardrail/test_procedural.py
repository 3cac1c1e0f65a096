"""``procedural``: PL/pgSQL bodies and DO blocks read as the SQL they will run.

Every place PL/pgSQL runs SQL is listed with a body that hides a call there; what the body
runs must come out, through ``procedural.read`` and through ``classify`` (which judges it as a
part of the creating statement). EXECUTE of a constant string is that SQL; EXECUTE of anything
else is DYNAMIC SQL; a body the compiler rejects is OPAQUE BODY.
"""

from __future__ import annotations

import pytest

from engine.guardrail import procedural
from engine.guardrail.classify import Facts, classify


def function(body: str, returns: str = "int", args: str = "", language: str = "plpgsql") -> str:
    return (f"CREATE OR REPLACE FUNCTION f({args}) RETURNS {returns} LANGUAGE {language} "
            f"AS $body$ {body} $body$")


def one(sql: str) -> Facts:
    facts = classify(sql)
    assert len(facts) == 1
    return facts[0]


# (where the SQL hides, body) — each body calls pg_terminate_backend there.
HIDING_PLACES = [
    ("statement", "BEGIN PERFORM pg_terminate_backend(1); RETURN 1; END"),
    ("select into", "DECLARE n int; BEGIN SELECT pg_terminate_backend(1) INTO n; RETURN 1; END"),
    ("return", "BEGIN RETURN pg_terminate_backend(1)::int; END"),
    ("assignment", "DECLARE b bool; BEGIN b := pg_terminate_backend(1); RETURN 1; END"),
    ("assignment with =", "DECLARE b bool; BEGIN b = pg_terminate_backend(1); RETURN 1; END"),
    ("field assignment", "DECLARE r record; BEGIN r.x := pg_terminate_backend(1); RETURN 1; END"),
    ("subscript", "DECLARE a int[]; BEGIN a[pg_terminate_backend(1)::int] := 1; RETURN 1; END"),
    ("declaration default", "DECLARE b bool := pg_terminate_backend(1); BEGIN RETURN 1; END"),
    ("declaration DEFAULT", "DECLARE b bool DEFAULT pg_terminate_backend(1); BEGIN RETURN 1; END"),
    ("composite default", "DECLARE r my_type := ROW(pg_terminate_backend(1)); BEGIN RETURN 1; "
     "END"),
    ("composite default =", "DECLARE c CONSTANT public.my_type = (SELECT x FROM t WHERE "
     "pg_terminate_backend(1)); BEGIN RETURN 1; END"),
    ("rowtype default", "DECLARE r t%ROWTYPE := pg_terminate_backend(1); BEGIN RETURN 1; END"),
    ("nested block", "BEGIN BEGIN DECLARE x int := 0; BEGIN PERFORM pg_terminate_backend(x); "
     "END; END; RETURN 1; END"),
    ("if condition", "BEGIN IF pg_terminate_backend(1) THEN RETURN 1; END IF; RETURN 0; END"),
    ("elsif branch", "BEGIN IF false THEN NULL; ELSIF true THEN PERFORM pg_terminate_backend(1);"
     " END IF; RETURN 1; END"),
    ("else branch", "BEGIN IF false THEN NULL; ELSE PERFORM pg_terminate_backend(1); END IF; "
     "RETURN 1; END"),
    ("case", "BEGIN CASE WHEN pg_terminate_backend(1) THEN NULL; END CASE; RETURN 1; END"),
    ("case operand", "BEGIN CASE 1 WHEN pg_terminate_backend(1)::int THEN NULL; ELSE NULL; "
     "END CASE; RETURN 1; END"),
    ("while", "BEGIN WHILE pg_terminate_backend(1) LOOP EXIT; END LOOP; RETURN 1; END"),
    ("exit when", "BEGIN LOOP EXIT WHEN pg_terminate_backend(1); END LOOP; RETURN 1; END"),
    ("for range", "DECLARE i int; BEGIN FOR i IN 1..pg_terminate_backend(1)::int LOOP NULL; "
     "END LOOP; RETURN 1; END"),
    ("for query", "DECLARE r record; BEGIN FOR r IN SELECT pg_terminate_backend(1) LOOP NULL; "
     "END LOOP; RETURN 1; END"),
    ("foreach", "DECLARE x int; BEGIN FOREACH x IN ARRAY ARRAY[pg_terminate_backend(1)::int] "
     "LOOP NULL; END LOOP; RETURN 1; END"),
    ("cursor", "DECLARE c CURSOR FOR SELECT pg_terminate_backend(1); BEGIN OPEN c; RETURN 1; "
     "END"),
    ("cursor argument", "DECLARE c CURSOR (p int) FOR SELECT p; BEGIN "
     "OPEN c(pg_terminate_backend(1)::int); RETURN 1; END"),
    ("open for query", "DECLARE c refcursor; BEGIN OPEN c FOR SELECT pg_terminate_backend(1); "
     "RETURN 1; END"),
    ("raise parameter", "BEGIN RAISE NOTICE '%', pg_terminate_backend(1); RETURN 1; END"),
    ("raise option", "BEGIN RAISE NOTICE 'x' USING DETAIL = pg_terminate_backend(1)::text; "
     "RETURN 1; END"),
    ("assert", "BEGIN ASSERT pg_terminate_backend(1); RETURN 1; END"),
    ("exception handler", "BEGIN RETURN 1/0; EXCEPTION WHEN others THEN "
     "PERFORM pg_terminate_backend(1); RETURN 0; END"),
    ("execute using", "BEGIN EXECUTE 'SELECT $1' USING pg_terminate_backend(1); RETURN 1; END"),
    ("execute constant", "BEGIN EXECUTE 'SELECT pg_terminate_backend(1)'; RETURN 1; END"),
    ("execute dollar constant", "BEGIN EXECUTE $q$SELECT pg_terminate_backend(1)$q$; RETURN 1; "
     "END"),
    ("execute e-string", "BEGIN EXECUTE E'SELECT pg_terminate_backend(1)'; RETURN 1; END"),
    ("execute cast constant", "BEGIN EXECUTE 'SELECT pg_terminate_backend(1)'::text; RETURN 1;"
     " END"),
    ("execute parenthesised", "BEGIN EXECUTE ('SELECT pg_terminate_backend(1)'); RETURN 1; END"),
    ("for in execute", "DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT pg_terminate_backend(1)'"
     " LOOP NULL; END LOOP; RETURN 1; END"),
    ("open for execute", "DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE "
     "'SELECT pg_terminate_backend(1)'; RETURN 1; END"),
    ("nested do", "BEGIN DO $x$ BEGIN PERFORM pg_terminate_backend(1); END $x$; RETURN 1; END"),
    ("nested function", "BEGIN CREATE FUNCTION g() RETURNS int LANGUAGE sql AS "
     "'SELECT pg_terminate_backend(1)::int'; RETURN 1; END"),
    ("nested plpgsql function", "BEGIN EXECUTE $x$CREATE FUNCTION g() RETURNS int LANGUAGE "
     "plpgsql AS 'BEGIN PERFORM pg_terminate_backend(1); RETURN 1; END'$x$; RETURN 1; END"),
    ("call", "BEGIN CALL p(pg_terminate_backend(1)); RETURN 1; END"),
    ("comment does not hide", "BEGIN /* ; */ PERFORM pg_terminate_backend(1); -- x\n RETURN 1;"
     " END"),
]


@pytest.mark.parametrize(("where", "body"), HIDING_PLACES, ids=[w for w, _ in HIDING_PLACES])
def test_every_place_sql_hides_is_read(where: str, body: str) -> None:
    facts = one(function(body))
    assert "pg_terminate_backend" in facts.functions, (where, facts)
    assert "OPAQUE BODY" not in facts.kinds
    assert "DYNAMIC SQL" not in facts.kinds
    assert any("pg_terminate_backend" in _all_functions(p) for p in facts.parts)
    assert all(p.deferred for p in facts.parts)  # the body runs later


def _all_functions(facts: Facts) -> set[str]:
    out = set(facts.functions)
    for part in facts.parts:
        out |= _all_functions(part)
    return out


@pytest.mark.parametrize(("where", "body"), HIDING_PLACES, ids=[w for w, _ in HIDING_PLACES])
def test_a_do_block_is_read_the_same_way(where: str, body: str) -> None:
    body = body.replace("RETURN 1/0;", "PERFORM 1/0;").replace("RETURN 1;", "").replace(
        "RETURN 0;", "").replace("RETURN pg_terminate_backend(1)::int;",
                                 "PERFORM pg_terminate_backend(1);")
    facts = one(f"DO $body$ {body} $body$")
    assert "DO" in facts.kinds
    assert "pg_terminate_backend" in facts.functions, (where, facts)
    assert not any(p.deferred for p in facts.parts)  # it runs now


DYNAMIC = [
    ("variable", "BEGIN EXECUTE q; RETURN 1; END"),
    ("variable into", "DECLARE n int; BEGIN EXECUTE q INTO n; RETURN n; END"),
    ("variable using", "BEGIN EXECUTE q USING 1, 2; RETURN 1; END"),
    ("parameter", "BEGIN EXECUTE $1; RETURN 1; END"),
    ("format", "BEGIN EXECUTE format('DROP TABLE %I', q); RETURN 1; END"),
    ("format of constants", "BEGIN EXECUTE format('DROP TABLE %I', 't'); RETURN 1; END"),
    ("concatenation", "BEGIN EXECUTE 'DROP TABLE ' || q; RETURN 1; END"),
    ("concatenation of constants", "BEGIN EXECUTE 'DROP ' || 'TABLE t'; RETURN 1; END"),
    ("quote_ident", "BEGIN EXECUTE 'DROP TABLE ' || quote_ident(q); RETURN 1; END"),
    ("function of a constant", "BEGIN EXECUTE lower('DROP TABLE T'); RETURN 1; END"),
    ("subquery", "BEGIN EXECUTE (SELECT q); RETURN 1; END"),
    ("for in execute", "DECLARE r record; BEGIN FOR r IN EXECUTE q LOOP NULL; END LOOP; "
     "RETURN 1; END"),
    ("open for execute", "DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE q; RETURN 1; END"),
    ("return query execute", "BEGIN RETURN QUERY EXECUTE q; END"),
    ("inside an exception handler", "BEGIN RETURN 1; EXCEPTION WHEN others THEN EXECUTE q; "
     "RETURN 0; END"),
]


@pytest.mark.parametrize(("what", "body"), DYNAMIC, ids=[w for w, _ in DYNAMIC])
def test_dynamic_sql_is_its_own_kind(what: str, body: str) -> None:
    returns = "SETOF int" if "RETURN QUERY" in body else "int"
    facts = one(function(body, returns=returns, args="q text"))
    assert "DYNAMIC SQL" in facts.kinds, what
    assert any("DYNAMIC SQL" in p.kinds for p in facts.parts)
    # A DO block with the same EXECUTE is dynamic too.
    if "RETURN QUERY" not in body and "$1" not in body:
        block = body.replace("RETURN 1;", "").replace("RETURN 0;", "").replace(
            "RETURN n;", "")
        assert "DYNAMIC SQL" in one(f"DO $$ DECLARE q text := 'x'; {block} $$").kinds


def test_what_builds_dynamic_sql_is_judged_too() -> None:
    facts = one(function("BEGIN EXECUTE format('SELECT %s', pg_read_file('/etc/passwd')); "
                         "RETURN 1; END"))
    assert {"DYNAMIC SQL"} <= facts.kinds
    assert {"format", "pg_read_file"} <= facts.functions


@pytest.mark.parametrize(("sql", "kinds", "writes"), [
    ("EXECUTE 'DROP TABLE t'", {"DROP", "DROP TABLE"}, {"t"}),
    ("EXECUTE 'ALTER ROLE CURRENT_USER PASSWORD ''x'''", {"ALTER ROLE", "ROLE"}, set()),
    ("EXECUTE 'TRUNCATE t'", {"TRUNCATE"}, {"t"}),
    ("EXECUTE 'DELETE FROM t; DROP TABLE u'", {"DELETE", "DELETE WITHOUT WHERE", "DROP TABLE"},
     {"t", "u"}),
    ("UPDATE t SET x = 0", {"UPDATE", "UPDATE WITHOUT WHERE"}, {"t"}),
    ("TRUNCATE t", {"TRUNCATE"}, {"t"}),
    ("ALTER TABLE t DROP COLUMN x", {"ALTER TABLE DROP COLUMN"}, {"t"}),
    ("INSERT INTO t VALUES (1)", {"INSERT"}, {"t"}),
])
def test_constant_sql_is_judged_as_what_it_is(sql: str, kinds: set[str],
                                              writes: set[str]) -> None:
    facts = one(function(f"BEGIN {sql}; RETURN 1; END"))
    assert kinds <= facts.kinds
    assert facts.writes == writes
    assert "DYNAMIC SQL" not in facts.kinds


def test_a_procedure_and_a_trigger_function_are_read() -> None:
    procedure = one("CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN TRUNCATE t; COMMIT; "
                    "END $$")
    assert {"CREATE FUNCTION", "TRUNCATE"} <= procedure.kinds
    trigger = one("CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                  "UPDATE t SET x = 0; NEW.y := pg_sleep(0); RETURN NEW; END $$")
    assert {"UPDATE", "UPDATE WITHOUT WHERE"} <= trigger.kinds
    assert "pg_sleep" in trigger.functions
    assert set(trigger.defines) == {"trg()"}
    assert "UPDATE WITHOUT WHERE" in trigger.defines["trg()"].kinds


@pytest.mark.parametrize("sql", [
    function("BEGIN FOOBAR 1; END"),  # not PL/pgSQL
    function("BEGIN RETURN QUERY SELECT 1; END"),  # RETURN QUERY in a non-SETOF function
    function("BEGIN undeclared := 1; RETURN 1; END"),
    function("BEGIN RETURN 1;"),  # unterminated
    "DO $$ BEGIN FOOBAR; END $$",
    function("BEGIN EXECUTE 'DROP TABL t'; RETURN 1; END"),  # the constant does not parse
])
def test_what_cannot_be_read_is_opaque(sql: str) -> None:
    facts = one(sql)
    assert "OPAQUE BODY" in facts.kinds
    assert any("OPAQUE BODY" in p.kinds for p in facts.parts)
    if sql.startswith("CREATE"):
        assert "CREATE FUNCTION UNPARSED BODY" in facts.kinds


@pytest.mark.parametrize(("language", "untrusted"), [
    ("plperl", False), ("pltcl", False), ("plv8", False), ("plperlu", True),
    ("plpython3u", True), ("pltclu", True), ("plsh", True), ("c", True),
])
def test_languages_the_gateway_cannot_read_are_opaque(language: str, untrusted: bool) -> None:
    facts = one(function("return 1", language=language))
    assert "OPAQUE BODY" in facts.kinds
    assert ("CREATE FUNCTION UNTRUSTED" in facts.kinds) == untrusted
    block = one(f"DO LANGUAGE {language} $$ system('id') $$")
    assert {"DO", "OPAQUE BODY"} <= block.kinds


def test_ordinary_functions_stay_ordinary() -> None:
    facts = one(function("DECLARE n int := 0; total numeric; BEGIN "
                         "SELECT sum(amount) INTO total FROM orders WHERE customer_id = cid; "
                         "UPDATE customers SET balance = total WHERE id = cid; "
                         "INSERT INTO audit_log (who, what) VALUES (cid, 'balance'); "
                         "IF total > 100 THEN n := n + 1; END IF; RETURN n; END",
                         args="cid int"))
    assert facts.kinds == {"CREATE", "CREATE FUNCTION", "SELECT", "UPDATE", "INSERT"}
    assert facts.writes == {"customers", "audit_log"}
    assert facts.reads >= {"orders"}
    assert not facts.settings


def test_settings_in_a_body_are_the_statements_too() -> None:
    # What a body sets is noted on the CREATE FUNCTION: the reading check refuses it there.
    facts = one(function("BEGIN PERFORM set_config('standard_conforming_strings', 'off', "
                         "false); RETURN 1; END"))
    assert facts.settings == {"standard_conforming_strings": "off"}
    assert any(p.settings for p in facts.parts)
    block = one("DO $$ BEGIN SET standard_conforming_strings = off; END $$")
    assert block.settings == {"standard_conforming_strings": "off"}


def test_read_returns_pieces_with_where_they_are() -> None:
    pieces = procedural.read(function("DECLARE r my_type := ROW(1); BEGIN\n"
                                      "  EXECUTE q;\n  EXECUTE 'SELECT 2';\n"
                                      "  PERFORM 3;\n  RETURN 1;\nEND", args="q text"),
                             " DECLARE r my_type := ROW(1); BEGIN EXECUTE q; END")
    shown = [(p.origin, p.sql, p.dynamic) for p in pieces]
    assert ("line 2: EXECUTE", "SELECT q", True) in shown
    assert ("line 3: EXECUTE of a constant string", "SELECT 2", False) in shown
    assert ("line 4: PERFORM", "SELECT 3", False) in shown
    assert ("declaration of r", "SELECT  ROW(1)", False) in shown


def test_a_declaration_section_ends_only_at_begin_where_a_declaration_starts() -> None:
    # "begin" inside a default's subquery is a column name, not the end of the section.
    facts = one(function("DECLARE r my_type := (SELECT begin FROM t WHERE "
                         "pg_terminate_backend(1)); BEGIN RETURN 1; END"))
    assert "pg_terminate_backend" in facts.functions


def test_depth_is_bounded() -> None:
    sql = "SELECT 1"
    for n in range(12):
        sql = f"DO $d{n}$ BEGIN EXECUTE $e{n}${sql}$e{n}$; END $d{n}$"
    facts = one(sql)
    assert "OPAQUE BODY" in facts.kinds  # past the depth the gateway reads


@pytest.mark.parametrize(("args", "returns"), [
    ("VARIADIC xs int[]", "int"), ("x t.c%TYPE", "int"), ("x public.t.c%TYPE, OUT y int", None),
    ("x t.c%TYPE", "TABLE (a int, \"B\" text)"), ("VARIADIC xs text[]", "SETOF int"),
])
def test_signatures_libpg_query_cannot_type_are_still_read(args: str,
                                                           returns: str | None) -> None:
    # Its compiler cannot look up %TYPE or the element type of a VARIADIC array; PostgreSQL
    # can, so the body is read with a signature it can handle.
    signature = f"RETURNS {returns} " if returns else ""
    facts = one(f"CREATE FUNCTION f({args}) {signature}LANGUAGE plpgsql AS $$ BEGIN "
                "DELETE FROM t WHERE id IS NOT NULL; EXECUTE 'TRUNCATE u'; END $$")
    assert "OPAQUE BODY" not in facts.kinds
    assert {"DELETE WITHOUT WHERE", "TRUNCATE"} <= facts.kinds
    procedure = one(f"CREATE PROCEDURE p({args.replace('OUT y int', 'INOUT y int')}) "
                    "LANGUAGE plpgsql AS $$ BEGIN TRUNCATE u; END $$")
    assert "TRUNCATE" in procedure.kinds and "OPAQUE BODY" not in procedure.kinds
