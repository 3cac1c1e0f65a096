"""``kinds``: statement kinds in the operator's words, destruction not spelled DROP included."""

from __future__ import annotations

import pytest
from pglast import enums

from engine.guardrail.classify import classify
from engine.guardrail.kinds import ALTER_TABLE_WORDS, OBJECT_WORDS, STATEMENT_KINDS, words


def kinds(sql: str) -> set[str]:
    facts = classify(sql)
    assert len(facts) == 1
    return facts[0].kinds


@pytest.mark.parametrize(("sql", "expected"), [
    ("ALTER TABLE t DROP COLUMN x", "ALTER TABLE DROP COLUMN"),
    ("ALTER TABLE t DROP x", "ALTER TABLE DROP COLUMN"),
    ("ALTER TABLE IF EXISTS t DROP COLUMN IF EXISTS x CASCADE", "ALTER TABLE DROP COLUMN"),
    ("ALTER TABLE ONLY public.t DROP COLUMN x", "ALTER TABLE DROP COLUMN"),
    ("alter table t add column y int, drop column x", "ALTER TABLE DROP COLUMN"),
    ("ALTER FOREIGN TABLE ft DROP COLUMN x", "ALTER TABLE DROP COLUMN"),
    ("ALTER TABLE t DROP CONSTRAINT t_pkey", "ALTER TABLE DROP CONSTRAINT"),
    ("ALTER TABLE t ALTER COLUMN x TYPE text", "ALTER TABLE SET DATA TYPE"),
    ("ALTER TABLE t ALTER x SET DATA TYPE int USING 0", "ALTER TABLE SET DATA TYPE"),
    ("ALTER TABLE t DETACH PARTITION p", "ALTER TABLE DETACH PARTITION"),
    ("ALTER TABLE t DETACH PARTITION p CONCURRENTLY", "ALTER TABLE DETACH PARTITION"),
    ("ALTER TABLE t DETACH PARTITION p FINALIZE", "ALTER TABLE DETACH PARTITION"),
    ("ALTER TABLE t ATTACH PARTITION p FOR VALUES IN (1)", "ALTER TABLE ATTACH PARTITION"),
    ("ALTER TABLE t ALTER COLUMN x DROP DEFAULT", "ALTER TABLE DROP DEFAULT"),
    ("ALTER TABLE t ALTER COLUMN x SET DEFAULT 0", "ALTER TABLE SET DEFAULT"),
    ("ALTER TABLE t ALTER COLUMN x DROP NOT NULL", "ALTER TABLE DROP NOT NULL"),
    ("ALTER TABLE t ALTER COLUMN x DROP IDENTITY", "ALTER TABLE DROP IDENTITY"),
    ("ALTER TABLE t ALTER COLUMN x DROP EXPRESSION", "ALTER TABLE DROP EXPRESSION"),
    ("ALTER TABLE t DISABLE TRIGGER ALL", "ALTER TABLE DISABLE TRIGGER"),
    ("ALTER TABLE t DISABLE TRIGGER USER", "ALTER TABLE DISABLE TRIGGER"),
    ("ALTER TABLE t DISABLE TRIGGER audit", "ALTER TABLE DISABLE TRIGGER"),
    ("ALTER TABLE t DISABLE RULE r", "ALTER TABLE DISABLE RULE"),
    ("ALTER TABLE t DISABLE ROW LEVEL SECURITY", "ALTER TABLE DISABLE ROW LEVEL SECURITY"),
    ("ALTER TABLE t NO FORCE ROW LEVEL SECURITY", "ALTER TABLE NO FORCE ROW LEVEL SECURITY"),
    ("ALTER TABLE t NO INHERIT parent", "ALTER TABLE NO INHERIT"),
    ("ALTER TABLE t SET UNLOGGED", "ALTER TABLE SET UNLOGGED"),
    ("ALTER TABLE t OWNER TO bob", "ALTER TABLE OWNER TO"),
    ("ALTER TABLE t SET TABLESPACE ts", "ALTER TABLE SET TABLESPACE"),
    ("ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0)", "ALTER TABLE ADD CONSTRAINT"),
    ("ALTER TABLE t REPLICA IDENTITY FULL", "ALTER TABLE REPLICA IDENTITY"),
    # Renames: ALTER TABLE RENAME and RENAME TABLE say the same.
    ("ALTER TABLE t RENAME TO u", "ALTER TABLE RENAME"),
    ("ALTER TABLE t RENAME TO u", "RENAME TABLE"),
    ("ALTER TABLE IF EXISTS public.t RENAME TO u", "ALTER TABLE RENAME"),
    ("ALTER FOREIGN TABLE ft RENAME TO u", "RENAME TABLE"),
    ("ALTER TABLE t RENAME COLUMN a TO b", "ALTER TABLE RENAME COLUMN"),
    ("ALTER TABLE t RENAME a TO b", "RENAME COLUMN"),
    ("ALTER TABLE t RENAME CONSTRAINT c TO d", "ALTER TABLE RENAME CONSTRAINT"),
    ("ALTER VIEW v RENAME TO w", "RENAME VIEW"),
    ("ALTER VIEW v RENAME COLUMN a TO b", "RENAME COLUMN"),
    ("ALTER MATERIALIZED VIEW v RENAME TO w", "RENAME MATERIALIZED VIEW"),
    ("ALTER INDEX i RENAME TO j", "RENAME INDEX"),
    ("ALTER SCHEMA s RENAME TO r", "RENAME SCHEMA"),
    ("ALTER SEQUENCE s RENAME TO r", "RENAME SEQUENCE"),
    ("ALTER FUNCTION f() RENAME TO g", "RENAME FUNCTION"),
    ("ALTER TABLE t SET SCHEMA archive", "ALTER TABLE SET SCHEMA"),
    # Objects defined with DefineStmt, in their own words.
    ("CREATE OPERATOR === (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int)", "CREATE OPERATOR"),
    ("CREATE AGGREGATE a(int) (SFUNC = int4pl, STYPE = int)", "CREATE AGGREGATE"),
    ("CREATE TYPE ty (INPUT = f_in, OUTPUT = f_out)", "CREATE TYPE"),
    ("CREATE TEXT SEARCH PARSER p (START = s, GETTOKEN = g, END = e, LEXTYPES = l)",
     "CREATE TEXT SEARCH PARSER"),
    ("CREATE TRIGGER tr AFTER INSERT ON t EXECUTE FUNCTION f()", "CREATE TRIGGER"),
    ("CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
     "CREATE EVENT TRIGGER"),
    ("DROP OPERATOR === (int, int)", "DROP OPERATOR"),
    ("DROP TRIGGER tr ON t", "DROP TRIGGER"),
])
def test_kinds_in_the_operators_words(sql: str, expected: str) -> None:
    found = kinds(sql)
    assert expected in found
    assert found <= STATEMENT_KINDS


def test_renames_and_drops_write_their_table() -> None:
    for sql in ("ALTER TABLE t RENAME TO u", "ALTER TABLE t RENAME COLUMN a TO b",
                "ALTER TABLE t DROP COLUMN a", "ALTER TABLE t SET SCHEMA s"):
        assert classify(sql)[0].writes == {"t"}


def test_existing_names_keep_working() -> None:
    assert {"ALTER", "ALTER TABLE", "RENAME"} <= kinds("ALTER TABLE t RENAME TO u")
    assert {"ALTER", "ALTER TABLE"} <= kinds("ALTER TABLE t DROP COLUMN x")
    assert {"CREATE", "CREATE TRIG"} <= kinds("CREATE TRIGGER tr AFTER INSERT ON t "
                                              "EXECUTE FUNCTION f()")
    assert "DEFINE" in kinds("CREATE OPERATOR === (FUNCTION = int4eq, LEFTARG = int)")
    assert "ALTER OBJECT SCHEMA" in kinds("ALTER TABLE t SET SCHEMA s")
    assert "DROP" not in kinds("ALTER TABLE t DROP COLUMN x")  # DROP means DROP statements


def test_every_subcommand_and_object_has_words() -> None:
    for subtype in enums.AlterTableType:
        assert f"ALTER TABLE {ALTER_TABLE_WORDS[subtype.name]}" in STATEMENT_KINDS
    for objtype in enums.ObjectType:
        word = OBJECT_WORDS[objtype.name]
        assert {f"DROP {word}", f"CREATE {word}", f"RENAME {word}"} <= STATEMENT_KINDS
    assert {"DYNAMIC SQL", "OPAQUE BODY", "CREATE FUNCTION UNPARSED BODY"} <= STATEMENT_KINDS


@pytest.mark.parametrize(("name", "expected"), [
    ("AlterSystemStmt", "ALTER SYSTEM"), ("CreateExtensionStmt", "CREATE EXTENSION"),
    ("AT_DropColumn", "DROP COLUMN"), ("AT_SetNotNull", "SET NOT NULL"),
])
def test_words(name: str, expected: str) -> None:
    assert words(name) == expected
