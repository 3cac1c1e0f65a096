"""Binding a function without a call, in every spelling (issue 12, finding 3: ``CREATE
AGGREGATE mk(bytea) (SFUNC1 = lo_from_bytea, …)`` used the old aggregate syntax's option name,
which the gateway did not know). Options are matched case-insensitively, every option that
names a function in PostgreSQL 15's CREATE/ALTER statements counts, and an option the gateway
does not know whose value is a name counts as binding a function of that name."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.guardrail.classify import classify
from engine.guardrail.guard import SessionGuard

REPO = Path(__file__).resolve().parents[3]


F = "lo_from_bytea"
BINDINGS = [
    # CREATE AGGREGATE, old syntax and new, any case, quoted, as a string, qualified.
    f"CREATE AGGREGATE mk(bytea) (SFUNC1 = {F}, STYPE1 = oid, INITCOND1 = '0')",
    f"CREATE AGGREGATE mk (BASETYPE = bytea, SFUNC1 = {F}, STYPE1 = oid)",
    f"CREATE AGGREGATE mk (BASETYPE = bytea, SFUNC = {F}, STYPE = oid)",
    f'CREATE AGGREGATE mk (BASETYPE = bytea, "SFUNC1" = {F}, STYPE = oid)',
    f"create aggregate mk (basetype = bytea, sfunc1 = '{F}', stype = oid)",
    f"CREATE AGGREGATE mk(bytea) (SFUNC1 = pg_catalog.{F}, STYPE1 = oid)",
    f"CREATE AGGREGATE mk(int) (SFUNC = int4pl, STYPE = int, FINALFUNC = {F})",
    f"CREATE AGGREGATE mk(int) (SFUNC = int4pl, STYPE = int, COMBINEFUNC = {F})",
    f"CREATE AGGREGATE mk(int) (SFUNC = int4pl, STYPE = internal, SERIALFUNC = {F}, "
    "DESERIALFUNC = d)",
    f"CREATE AGGREGATE mk(int) (SFUNC = int4pl, STYPE = int, MSFUNC = {F}, MINVFUNC = m, "
    "MSTYPE = int)",
    f"CREATE AGGREGATE mk(int) (SFUNC = int4pl, STYPE = int, MFINALFUNC = {F})",
    f"CREATE AGGREGATE mk(ORDER BY int) (SFUNC = {F}, STYPE = int)",
    f"CREATE OR REPLACE AGGREGATE mk(int) (SFUNC = {F}, STYPE = int)",
    # CREATE/ALTER OPERATOR
    f"CREATE OPERATOR @~@ (FUNCTION = {F}, LEFTARG = bytea)",
    f"CREATE OPERATOR @~@ (PROCEDURE = {F}, LEFTARG = bytea)",
    f"CREATE OPERATOR @~@ (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int, RESTRICT = {F})",
    f"CREATE OPERATOR @~@ (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int, JOIN = {F})",
    f"ALTER OPERATOR @~@ (int, int) SET (RESTRICT = {F})",
    f"ALTER OPERATOR @~@ (int, int) SET (JOIN = {F})",
    # CREATE TYPE, ranges, ALTER TYPE … SET
    f"CREATE TYPE t (INPUT = {F}, OUTPUT = o)",
    f"CREATE TYPE t (INPUT = i, OUTPUT = {F})",
    f"CREATE TYPE t (INPUT = i, OUTPUT = o, RECEIVE = {F})",
    f"CREATE TYPE t (INPUT = i, OUTPUT = o, SEND = {F})",
    f"CREATE TYPE t (INPUT = i, OUTPUT = o, TYPMOD_IN = {F})",
    f"CREATE TYPE t (INPUT = i, OUTPUT = o, TYPMOD_OUT = {F})",
    f"CREATE TYPE t (INPUT = i, OUTPUT = o, ANALYZE = {F})",
    f"CREATE TYPE t (INPUT = i, OUTPUT = o, SUBSCRIPT = {F})",
    f"CREATE TYPE r AS RANGE (SUBTYPE = int4, CANONICAL = {F})",
    f"CREATE TYPE r AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = {F})",
    f"ALTER TYPE t SET (RECEIVE = {F})",
    f"ALTER TYPE t SET (SEND = {F})",
    f"ALTER TYPE t SET (TYPMOD_IN = {F})",
    f"ALTER TYPE t SET (TYPMOD_OUT = {F})",
    f"ALTER TYPE t SET (ANALYZE = {F})",
    f"ALTER TYPE t SET (SUBSCRIPT = {F})",
    # CREATE CAST, CONVERSION, TRANSFORM, LANGUAGE, FOREIGN DATA WRAPPER, ACCESS METHOD
    f"CREATE CAST (bytea AS oid) WITH FUNCTION {F}(bytea)",
    f"CREATE CAST (bytea AS oid) WITH FUNCTION pg_catalog.{F}(bytea) AS IMPLICIT",
    f"CREATE DEFAULT CONVERSION c FOR 'UTF8' TO 'LATIN1' FROM {F}",
    f"CREATE TRANSFORM FOR bytea LANGUAGE plpgsql (FROM SQL WITH FUNCTION {F}(internal), "
    "TO SQL WITH FUNCTION g(internal))",
    f"CREATE OR REPLACE TRANSFORM FOR bytea LANGUAGE plpgsql (TO SQL WITH FUNCTION {F}("
    "internal))",
    f"CREATE LANGUAGE l HANDLER {F}",
    f"CREATE TRUSTED PROCEDURAL LANGUAGE l HANDLER h INLINE {F}",
    f"CREATE LANGUAGE l HANDLER h VALIDATOR {F}",
    f"CREATE FOREIGN DATA WRAPPER w HANDLER {F}",
    f"CREATE FOREIGN DATA WRAPPER w VALIDATOR {F}",
    f"ALTER FOREIGN DATA WRAPPER w HANDLER {F}",
    f"ALTER FOREIGN DATA WRAPPER w VALIDATOR {F}",
    f"CREATE ACCESS METHOD am TYPE INDEX HANDLER {F}",
    # TEXT SEARCH PARSER / TEMPLATE
    f"CREATE TEXT SEARCH PARSER p (START = {F}, GETTOKEN = g, END = e, LEXTYPES = l)",
    f"CREATE TEXT SEARCH PARSER p (START = s, GETTOKEN = g, END = e, LEXTYPES = l, "
    f"HEADLINE = {F})",
    f"CREATE TEXT SEARCH TEMPLATE t (INIT = {F}, LEXIZE = l)",
    f"CREATE TEXT SEARCH TEMPLATE t (LEXIZE = {F})",
    # OPERATOR CLASS / FAMILY support functions
    f"CREATE OPERATOR CLASS c FOR TYPE bytea USING btree AS FUNCTION 1 {F}(bytea)",
    f"ALTER OPERATOR FAMILY f USING btree ADD FUNCTION 1 (bytea, bytea) {F}(bytea)",
    # CREATE / ALTER FUNCTION … SUPPORT
    f"CREATE FUNCTION g(int) RETURNS int LANGUAGE sql SUPPORT {F} AS 'SELECT 1'",
    f"ALTER FUNCTION g(int) SUPPORT {F}",
    # An option the gateway does not know, whose value is a name: fail closed.
    f"CREATE AGGREGATE mk(int) (SFUNC = int4pl, STYPE = int, NEWFUNC = {F})",
    f"CREATE TYPE t (INPUT = i, OUTPUT = o, SOMETHING_NEW = {F})",
]


@pytest.mark.parametrize("sql", BINDINGS)
def test_every_spelling_that_binds_a_function_binds_it(shipped: SessionGuard, sql: str) -> None:
    [facts] = classify(sql)
    assert F in facts.functions, facts.describe()
    assert shipped.judge(sql).rule == "no-server-file-functions"


@pytest.mark.parametrize("sql", [
    "CREATE AGGREGATE a(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0', PARALLEL = safe)",
    "CREATE AGGREGATE a (BASETYPE = int, SFUNC1 = int4pl, STYPE1 = int, INITCOND1 = '0')",
    "CREATE OPERATOR === (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int, "
    "COMMUTATOR = ===, NEGATOR = !==, HASHES, MERGES)",
    "CREATE TYPE t (INPUT = i, OUTPUT = o, INTERNALLENGTH = 4, PASSEDBYVALUE, ALIGNMENT = int4, "
    "STORAGE = plain, CATEGORY = 'U', ELEMENT = int4, DELIMITER = ',', COLLATABLE = false)",
    "CREATE COLLATION c (LOCALE = 'fr_FR', PROVIDER = icu, DETERMINISTIC = false)",
    "ALTER FUNCTION g(int) IMMUTABLE STRICT SECURITY DEFINER LEAKPROOF COST 5 ROWS 3 "
    "PARALLEL SAFE",
])
def test_options_that_name_no_function_bind_none(sql: str) -> None:
    [facts] = classify(sql)
    assert facts.functions <= {"int4pl", "int4eq", "i", "o"}, facts.describe()
