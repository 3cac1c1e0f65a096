"""Where lineage cannot follow a value, the gateway masks it (ARCHITECTURE.md invariant 9):
relations the catalog does not show, names no relation has, cursors and prepared statements it
did not follow, SQL-standard bodies, a catalog changed by DDL, values written into other
tables, errors of statements whose reads are not known, notifications. Conversations with
``ResultMasker`` and ``StatementFlow``, without sockets."""

from __future__ import annotations

from collections import Counter
from typing import Any

from engine.config import MaskingRule
from engine.masking.detectors import BUILTIN
from engine.masking.flow import StatementFlow
from engine.masking.lineage import UNKNOWN, Analyzer, Function, Relation, Source, parse
from engine.masking.pg import HIDDEN_ERROR, ResultMasker
from engine.masking.policy import SessionMasking, for_session
from engine.pg import codec
from engine.pg.messages import error_fields
from tests.engine.masking.test_pg import split
from tests.engine.pg import build as b

CUSTOMERS = ("id", "full_name", "email", "card_number", "national_id")
NID = Source("public", "customers", "national_id")


class Catalog:
    """The catalog as lineage sees it, with the connection's memory of what was written."""

    def __init__(self) -> None:
        self.rels: dict[str, list[Relation]] = {
            "customers": [Relation("public", "customers", "r", CUSTOMERS)],
            "copy_t": [Relation("public", "copy_t", "r", ("id", "y"))],
        }
        self.fns: dict[str, list[Function]] = {
            # LANGUAGE sql RETURN (...): prosrc is empty, the body is in prosqlbody
            "std": [Function("public", "std", "sql", "")],
        }
        self.written: dict[tuple[str, str], frozenset[Source]] = {}
        self.invalidated = 0

    def relations(self, name: str) -> list[Relation] | None:
        return self.rels.get(name, [])

    def functions(self, name: str) -> list[Function] | None:
        return self.fns.get(name, [])

    def taint(self, table: str, column: str, sources: frozenset[Source]) -> None:
        key = (table, "*" if column == "\0any" else column)
        self.written[key] = self.written.get(key, frozenset()) | sources

    def derived(self, table: str, column: str) -> frozenset[Source]:
        return (self.written.get((table, column), frozenset())
                | self.written.get((table, "*"), frozenset()))

    def invalidate(self) -> None:
        self.invalidated += 1


def session() -> SessionMasking:
    rules = (MaskingRule("cards", detectors=("payment_card",), strategy="redact"),
             MaskingRule("ids", columns=("national_id",), strategy="hash"))
    return for_session(rules, "db", "alice", frozenset(), b"k" * 32)


def analyzer(catalog: Catalog, masking: SessionMasking) -> Analyzer:
    return Analyzer(catalog, masking.masked_source, names=masking.masked_name)


def lineage_of(sql: str, catalog: Catalog | None = None) -> Any:
    stmts = parse(sql)
    assert stmts is not None
    return analyzer(catalog or Catalog(), session()).statement(stmts[0])


# --- lineage ---------------------------------------------------------------------------------


def test_a_relation_the_catalog_does_not_show_is_unknown_not_empty() -> None:
    # a temporary table, or one created since the lookup: the server reads it, the gateway
    # cannot see what it holds
    lineage = lineage_of("select * from tmp_copy")
    assert lineage.columns == (frozenset({UNKNOWN}),)
    assert UNKNOWN in lineage_of("select x || '' from tmp_copy").columns[0]


def test_a_name_no_relation_has_is_unknown() -> None:
    # renamed or added since the catalog was read (or a system column)
    lineage = lineage_of("select renamed_nid || '', xmin from customers")
    assert lineage.columns == (frozenset({UNKNOWN}), frozenset({UNKNOWN}))
    assert lineage_of("select id from customers").columns == (
        frozenset({Source("public", "customers", "id")}),)


def test_fetch_and_execute_of_what_was_not_followed_have_no_columns_and_read_unknown() -> None:
    for sql in ("fetch 5 from c", "execute p"):
        lineage = lineage_of(sql)
        assert lineage.columns is None and UNKNOWN in lineage.reads, sql


def test_a_sql_standard_body_is_not_safe() -> None:
    lineage = lineage_of("select std(id) from customers")
    assert lineage.columns is not None and UNKNOWN in lineage.columns[0]


def test_what_was_written_into_a_column_is_read_back_with_it() -> None:
    catalog = Catalog()
    catalog.taint("copy_t", "y", frozenset({NID}))
    lineage = lineage_of("select y, id from copy_t", catalog)
    assert lineage.columns is not None and NID in lineage.columns[0]
    assert NID not in lineage.columns[1]


def test_writes_name_the_tables_written() -> None:
    lineage = lineage_of("insert into copy_t select id, national_id from customers")
    assert lineage.written == frozenset({"copy_t"})
    assert (Source(None, "copy_t", "y"), frozenset({NID})) in lineage.writes


# --- conversations ---------------------------------------------------------------------------


class Conversation:
    def __init__(self) -> None:
        self.catalog = Catalog()
        self.masking = session()
        self.flow = StatementFlow(analyzer(self.catalog, self.masking))
        assert self.masking.values is not None
        self.results = ResultMasker(self.masking.values, self.masking.column_rule,
                                    flow=self.flow, lineage_rule=self.masking.lineage_rule)

    def query(self, sql: str, answer: bytes) -> tuple[bytes, Counter[tuple[str, str]]]:
        self.flow.sent(b.query(sql))
        return self.results.rewrite(answer)


def rows(data: bytes) -> list[bytes]:
    return [body for tag, body in split(data) if tag == ord("D")]


def test_rows_after_ddl_in_the_same_transaction_are_masked_whole() -> None:
    c = Conversation()
    c.query("begin", b.command_complete("BEGIN") + b.ready(b"T"))
    c.query("create or replace view v as select national_id as n from customers",
            b.command_complete("CREATE VIEW") + b.ready(b"T"))
    out, counts = c.query("select id from customers",
                          b.row_description("id") + b.data_row(b"907-01-1013")
                          + b.command_complete("SELECT 1") + b.ready(b"T"))
    assert b"907-01-1013" not in out and counts[("lineage-unknown", "customers.?")] + sum(
        counts.values()) >= 1
    assert c.catalog.invalidated == 0  # not before the transaction ends
    c.query("commit", b.command_complete("COMMIT") + b.ready(b"I"))
    assert c.catalog.invalidated == 1 and not c.flow.catalog_changed
    out, _ = c.query("select id from customers", b.row_description("id") + b.data_row(b"7")
                     + b.command_complete("SELECT 1") + b.ready())
    assert rows(out) == rows(b.data_row(b"7"))


def test_a_statement_that_writes_masked_values_taints_what_it_writes() -> None:
    c = Conversation()
    c.query("insert into copy_t select id, national_id from customers",
            b.command_complete("INSERT 0 200") + b.ready())
    assert NID in c.catalog.derived("copy_t", "y")
    c.query("update customers set email = national_id",
            b.command_complete("UPDATE 200") + b.ready())
    assert NID in c.catalog.derived("customers", "email")
    c.query("create table t9 as select * from customers",
            b.command_complete("SELECT 200") + b.ready())
    assert NID in c.catalog.derived("t9", "national_id")
    out, _ = c.query("select y from copy_t", b.row_description("y")
                     + b.data_row(b"907-01-1013") + b.command_complete("SELECT 1") + b.ready())
    assert b"907-01-1013" not in out


def test_a_renamed_column_keeps_its_rule() -> None:
    c = Conversation()
    c.query("alter table customers rename column national_id to nid",
            b.command_complete("ALTER TABLE") + b.ready())
    assert Source(None, "customers", "national_id") in c.catalog.derived("customers", "nid")


def test_a_fetch_of_a_cursor_not_followed_is_masked_whole() -> None:
    c = Conversation()
    c.query("declare c cursor for select * from nowhere_known",
            b.command_complete("DECLARE CURSOR") + b.ready(b"T"))
    out, _ = c.query("fetch 1 from c", b.row_description("a", "b")
                     + b.data_row(b"907-01-1013", b"x") + b.command_complete("FETCH 1")
                     + b.ready(b"T"))
    assert b"907-01-1013" not in out and b"x" not in rows(out)[0][2:]


def error(message: str, detail: str = "") -> bytes:
    return codec.error_response(message, "23505", detail=detail or None)


def test_errors_of_statements_whose_reads_lineage_does_not_know_are_hidden() -> None:
    quoted = error('could not create unique index "i"', "Key (x)=(907-01-1013) is duplicated.")
    for sql in ("create unique index i on t9 ((national_id::int))",
                "alter table t9 add column k int generated always as (national_id::int) stored",
                "commit", "fetch 1 from c", "execute p"):
        c = Conversation()
        out, _ = c.query(sql, quoted + b.ready())
        fields = error_fields(split(out)[0][1])
        assert fields["M"] == HIDDEN_ERROR and "907" not in fields.get("D", ""), sql
        assert fields["C"] == "23505"
        assert c.results.recorded_error('could not create unique index "i"')[0] == HIDDEN_ERROR
    # a statement lineage proves reads no masked column keeps its error
    c = Conversation()
    out, _ = c.query("select id::int from customers", error("division by zero") + b.ready())
    assert error_fields(split(out)[0][1])["M"] == "division by zero"


def test_a_notification_is_masked_whole_where_column_rules_apply() -> None:
    # The channel too: a client that listens to "p1_A" … "p1_Z" learns a masked column's
    # first character from which of them pg_notify('p1_' || substr(col, 1, 1), …) names.
    c = Conversation()
    body = b"\x00\x00\x00\x07" + b"p1_N\x00" + b"3101-10-709\x00"
    out, counts = c.results.rewrite(b"A" + len(body + b"1234").to_bytes(4, "big") + body)
    [(tag, got)] = split(out)
    assert tag == ord("A") and got == b"\x00\x00\x00\x07****\x00****\x00"
    assert counts == Counter({("notification", ""): 2})
    body = b"\x00\x00\x00\x07" + b"p1_N\x00\x00"  # an empty payload stays empty
    out, counts = c.results.rewrite(b"A" + len(body + b"1234").to_bytes(4, "big") + body)
    assert split(out) == [(ord("A"), b"\x00\x00\x00\x07****\x00\x00")]


# --- policy and detectors ----------------------------------------------------------------------


def test_a_partial_rule_redacts_a_computed_column_whole() -> None:
    rule = MaskingRule("cards", columns=("customers.card_number",), strategy="partial",
                       keep_last=4)
    masking = for_session((rule,), "db", "alice", frozenset(), b"k" * 32)
    action = masking.lineage_rule(frozenset({Source(None, "customers", "card_number")}))
    assert action is not None and action.strategy("55554444") == "****"
    by_name = masking.column_rule("card_number", 0, 0)  # substr(...) AS card_number
    assert by_name is not None and by_name.strategy("55554444") == "****"


def test_numeric_forms_of_a_card_number_are_found() -> None:
    card = BUILTIN["payment_card"]
    for text in ("5555555555554444.00", "5555555555554444.0", "$5,555,555,555,554,444.00",
                 "5555,5555,5555,4444", " 378,2822,4631,0005", "4111111111111111e0",
                 "4.111111111111111e+15", "values (1, 4111111111111111.0)"):
        assert list(card.find(text)), text
    for text in ("1234567890123.5", "version 1.2.3", "4111111111111114.00"):
        assert not list(card.find(text)), text
