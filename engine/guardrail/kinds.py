"""Statement kinds in the operator's words: the vocabulary rules name and classify reports.

Besides the explicit kinds, every PostgreSQL statement node type has a kind in words
(``AlterSystemStmt`` → ``ALTER SYSTEM``), every object type has ``CREATE``/``DROP``/``RENAME``
kinds (``DROP TABLE``, ``RENAME COLUMN``), and every ALTER TABLE subcommand has its own
(``ALTER TABLE DROP COLUMN``, ``ALTER TABLE SET DATA TYPE``), so that destruction not spelled
DROP can be named.
"""

from __future__ import annotations

import re

from pglast import ast, enums

# Whole-statement kinds beyond the node types' own names.
EXPLICIT = frozenset({
    "SELECT", "SELECT INTO", "INSERT", "UPDATE", "DELETE", "MERGE", "UPDATE WITHOUT WHERE",
    "DELETE WITHOUT WHERE", "CREATE", "ALTER", "DROP", "ROLE", "TRUNCATE", "GRANT", "REVOKE",
    "COPY", "COPY PROGRAM", "COPY FILE", "DO", "CREATE FUNCTION", "CREATE FUNCTION UNTRUSTED",
    "CREATE FUNCTION UNPARSED BODY", "VACUUM", "VACUUM FULL", "ANALYZE", "EXPLAIN",
    "EXPLAIN ANALYZE", "SET", "SET ROLE", "CREATE TABLE", "ALTER TABLE", "DROP DATABASE",
    "GRANT ROLE", "REVOKE ROLE", "CREATE VIEW", "CREATE INDEX", "CREATE DATABASE",
    "CREATE RULE", "CREATE TABLE AS", "ALTER ROLE", "RENAME", "CALL", "ALTER TYPE RENAME VALUE",
    # What the gateway cannot read: SQL built at run time, and code it cannot parse.
    "DYNAMIC SQL", "OPAQUE BODY",
    "CREATE TRIGGER", "CREATE EVENT TRIGGER", "ALTER TABLE RENAME", "ALTER TABLE RENAME COLUMN",
    "ALTER TABLE RENAME CONSTRAINT", "ALTER TABLE SET SCHEMA",
    # What turns a trigger, rule, policy or constraint off, and a foreign key whose actions
    # write later (``protection``).
    "DISABLE PROTECTION", "ADD CASCADING FOREIGN KEY",
    # A write of a system catalog (pg_class, pg_authid …): a rename, a role change or a
    # drop by another name, for a role allowed to.
    "CATALOG WRITE",
    # CREATE or ALTER FUNCTION … SECURITY DEFINER: the owner's privileges for every caller.
    "SECURITY DEFINER FUNCTION",
    # ADD COLUMN that writes every row under an exclusive lock (a volatile DEFAULT, serial,
    # identity, a stored generated column).
    "ALTER TABLE REWRITE",
})

_OBJECT_NAMES = {
    "OBJECT_FDW": "FOREIGN DATA WRAPPER", "OBJECT_FOREIGN_SERVER": "SERVER",
    "OBJECT_MATVIEW": "MATERIALIZED VIEW", "OBJECT_OPCLASS": "OPERATOR CLASS",
    "OBJECT_OPFAMILY": "OPERATOR FAMILY", "OBJECT_TABCONSTRAINT": "CONSTRAINT",
    "OBJECT_DOMCONSTRAINT": "DOMAIN CONSTRAINT", "OBJECT_STATISTIC_EXT": "STATISTICS",
    "OBJECT_TSCONFIGURATION": "TEXT SEARCH CONFIGURATION",
    "OBJECT_TSDICTIONARY": "TEXT SEARCH DICTIONARY", "OBJECT_TSPARSER": "TEXT SEARCH PARSER",
    "OBJECT_TSTEMPLATE": "TEXT SEARCH TEMPLATE", "OBJECT_LARGEOBJECT": "LARGE OBJECT",
    "OBJECT_DEFACL": "DEFAULT PRIVILEGES", "OBJECT_AMOP": "OPERATOR FAMILY OPERATOR",
    "OBJECT_AMPROC": "OPERATOR FAMILY FUNCTION", "OBJECT_PARAMETER_ACL": "PARAMETER",
    "OBJECT_PUBLICATION_NAMESPACE": "PUBLICATION SCHEMA",
    "OBJECT_PUBLICATION_REL": "PUBLICATION TABLE",
}
# ObjectType → words: OBJECT_TABLE → TABLE, OBJECT_FOREIGN_TABLE → FOREIGN TABLE.
OBJECT_WORDS = {
    e.name: _OBJECT_NAMES.get(e.name, e.name.removeprefix("OBJECT_").replace("_", " "))
    for e in enums.ObjectType
}

_ALTER_TABLE_NAMES = {
    "AT_AddColumnToView": "ADD COLUMN", "AT_ColumnDefault": "SET DEFAULT",
    "AT_CookedColumnDefault": "SET DEFAULT", "AT_SetTableSpace": "SET TABLESPACE",
    "AT_SetOptions": "ALTER COLUMN SET OPTIONS", "AT_ResetOptions": "ALTER COLUMN RESET OPTIONS",
    "AT_AddIndex": "ADD CONSTRAINT", "AT_ReAddIndex": "ADD CONSTRAINT",
    "AT_ReAddConstraint": "ADD CONSTRAINT", "AT_ReAddDomainConstraint": "ADD CONSTRAINT",
    "AT_AddIndexConstraint": "ADD CONSTRAINT", "AT_ReAddComment": "COMMENT",
    "AT_AlterColumnType": "SET DATA TYPE", "AT_AlterColumnGenericOptions": "ALTER COLUMN OPTIONS",
    "AT_ChangeOwner": "OWNER TO", "AT_DropCluster": "SET WITHOUT CLUSTER",
    "AT_SetUnLogged": "SET UNLOGGED", "AT_DropOids": "SET WITHOUT OIDS",
    "AT_SetRelOptions": "SET OPTIONS", "AT_ResetRelOptions": "RESET OPTIONS",
    "AT_ReplaceRelOptions": "SET OPTIONS", "AT_EnableTrig": "ENABLE TRIGGER",
    "AT_EnableAlwaysTrig": "ENABLE ALWAYS TRIGGER",
    "AT_EnableReplicaTrig": "ENABLE REPLICA TRIGGER",
    "AT_DisableTrig": "DISABLE TRIGGER", "AT_EnableTrigAll": "ENABLE TRIGGER",
    "AT_DisableTrigAll": "DISABLE TRIGGER", "AT_EnableTrigUser": "ENABLE TRIGGER",
    "AT_DisableTrigUser": "DISABLE TRIGGER", "AT_AddInherit": "INHERIT",
    "AT_DropInherit": "NO INHERIT", "AT_AddOf": "OF", "AT_DropOf": "NOT OF",
    "AT_EnableRowSecurity": "ENABLE ROW LEVEL SECURITY",
    "AT_DisableRowSecurity": "DISABLE ROW LEVEL SECURITY",
    "AT_ForceRowSecurity": "FORCE ROW LEVEL SECURITY",
    "AT_NoForceRowSecurity": "NO FORCE ROW LEVEL SECURITY", "AT_GenericOptions": "OPTIONS",
    "AT_DetachPartitionFinalize": "DETACH PARTITION", "AT_ReAddStatistics": "SET STATISTICS",
}


def words(name: str) -> str:
    """CamelCase → WORDS: AlterSystemStmt → ALTER SYSTEM, AT_DropColumn → DROP COLUMN."""
    base = name.removeprefix("AT_").removesuffix("Stmt")
    return " ".join(re.findall(r"[A-Z][a-z]*", base)).upper()


# AlterTableType → the subcommand in ALTER TABLE's own words.
ALTER_TABLE_WORDS = {e.name: _ALTER_TABLE_NAMES.get(e.name, words(e.name))
                     for e in enums.AlterTableType}


def _statement_node_types() -> set[str]:
    return {n for n in dir(ast) if n.endswith("Stmt") and n[:1].isupper()}


STATEMENT_KINDS = frozenset(
    EXPLICIT
    | {f"{verb} {w}" for w in OBJECT_WORDS.values() for verb in ("CREATE", "DROP", "RENAME")}
    | {f"ALTER TABLE {w}" for w in ALTER_TABLE_WORDS.values()}
    | {"ALTER TABLE DROP DEFAULT"}
    | {words(n) for n in _statement_node_types()}
)
