"""The statement flow's names: prepared statements (Parse, PREPARE) share one namespace, and
portals and cursors (Bind, DECLARE) another, as on the target; a name changes when the target
confirms it. Driven with the frontend bytes the relay forwards and the backend tags in order."""

from __future__ import annotations

import struct

from engine.masking.flow import StatementFlow
from engine.masking.lineage import UNKNOWN, Analyzer, Function, Lineage, Relation, Source
from engine.pg import codec

NID = Source("public", "customers", "national_id")
LEAK = "select national_id || '' from customers"
HARMLESS = "select 'x'::text"


class Catalog:
    def relations(self, name: str) -> list[Relation] | None:
        if name == "customers":
            return [Relation("public", "customers", "r", ("full_name", "national_id"))]
        return []

    def functions(self, name: str) -> list[Function] | None:
        return []


def flow() -> StatementFlow:
    return StatementFlow(Analyzer(Catalog(), lambda s: s == NID))


def parse(name: str, text: str) -> bytes:
    return codec.message(b"P", codec.cstr(name) + codec.cstr(text) + struct.pack("!h", 0))


def bind(portal: str, statement: str) -> bytes:
    return codec.message(b"B", codec.cstr(portal) + codec.cstr(statement)
                         + struct.pack("!hhh", 0, 0, 0))


def describe(kind: bytes, name: str) -> bytes:
    return codec.message(b"D", kind + codec.cstr(name))


def query(text: str) -> bytes:
    return codec.message(b"Q", codec.cstr(text))


SYNC = codec.message(b"S")


def answered(f: StatementFlow, *tags: int, status: int = ord("I")) -> None:
    for tag in tags:
        f.advance(tag)
        if tag == 90:
            f.ready(status)


def described(f: StatementFlow) -> Lineage:
    """The lineage of the RowDescription about to come."""
    statement = f.upcoming(84)
    assert statement is not None
    lineage = f.lineage(statement)
    assert lineage is not None
    f.advance(84)
    return lineage


def test_sql_execute_runs_what_a_parse_named() -> None:
    f = flow()
    f.sent(query(f"prepare g1 as {HARMLESS}"))
    answered(f, 67, 90)
    f.sent(codec.message(b"C", b"S" + codec.cstr("g1")) + parse("g1", LEAK) + SYNC)
    answered(f, 51, 49, 90)
    f.sent(query("execute g1"))
    lineage = described(f)
    assert lineage.opaque is None
    assert lineage.columns is not None and NID in lineage.columns[0]


def test_a_parse_the_target_refused_names_nothing() -> None:
    f = flow()
    f.sent(query(f"prepare g2 as {LEAK}"))
    answered(f, 67, 90)
    f.sent(parse("g2", HARMLESS) + SYNC)
    answered(f, 69, 90)  # already exists
    f.sent(bind("", "g2") + describe(b"P", "") + SYNC)
    answered(f, 50)
    lineage = described(f)
    assert lineage.columns is not None and NID in lineage.columns[0]


def test_a_portal_replaced_by_a_cursor_is_the_cursor() -> None:
    f = flow()
    f.sent(query("begin"))
    answered(f, 67, 90, status=ord("T"))
    f.sent(parse("st", HARMLESS) + bind("p1", "st") + SYNC)
    answered(f, 49, 50, 90, status=ord("T"))
    f.sent(query("close p1"))
    answered(f, 67, 90, status=ord("T"))
    f.sent(query(f"declare p1 cursor for {LEAK}"))
    answered(f, 67, 90, status=ord("T"))
    f.sent(describe(b"P", "p1"))
    lineage = described(f)
    assert lineage.columns is not None and NID in lineage.columns[0]


def test_execute_of_a_prepared_close_and_declare() -> None:
    f = flow()
    f.sent(parse("st", HARMLESS) + bind("p6", "st") + parse("cl", "close p6")
           + parse("de", f"declare p6 cursor for {LEAK}") + SYNC)
    answered(f, 49, 50, 49, 49, 90, status=ord("T"))
    f.sent(query("execute cl"))
    answered(f, 67, 90, status=ord("T"))
    f.sent(query("execute de"))
    answered(f, 67, 90, status=ord("T"))
    f.sent(describe(b"P", "p6"))
    lineage = described(f)
    assert lineage.columns is not None and NID in lineage.columns[0]


def test_portals_end_with_their_transaction_but_holdable_cursors() -> None:
    f = flow()
    f.sent(query("begin"))
    answered(f, 67, 90, status=ord("T"))
    f.sent(parse("st", HARMLESS) + bind("p4", "st") + SYNC)
    answered(f, 49, 50, 90, status=ord("T"))
    f.sent(query(f"declare h4 cursor with hold for {LEAK}"))
    answered(f, 67, 90, status=ord("T"))
    f.sent(query("commit"))
    answered(f, 67, 90)
    f.sent(describe(b"P", "p4"))
    assert f.upcoming(84) is None  # gone: unknown, masked whole
    f.advance(84)
    f.sent(describe(b"P", "h4"))
    lineage = described(f)
    assert lineage.columns is not None and NID in lineage.columns[0]


def test_a_holdable_cursor_of_a_rolled_back_transaction_is_gone() -> None:
    f = flow()
    f.sent(query("begin"))
    answered(f, 67, 90, status=ord("T"))
    f.sent(query(f"declare h5 cursor with hold for {HARMLESS}"))
    answered(f, 67, 90, status=ord("T"))
    f.sent(query("rollback"))
    answered(f, 67, 90)
    f.sent(describe(b"P", "h5"))
    assert f.upcoming(84) is None


def test_execute_of_a_name_never_prepared_is_unknown() -> None:
    f = flow()
    f.sent(query("execute nosuch"))
    statement = f.upcoming(84)
    assert statement is not None
    lineage = f.lineage(statement)
    assert lineage is not None and lineage.opaque is not None
    assert UNKNOWN in lineage.reads


def test_a_simple_query_drops_the_unnamed_portal() -> None:
    f = flow()
    f.sent(query("begin"))
    answered(f, 67, 90, status=ord("T"))
    f.sent(parse("", HARMLESS) + bind("", "") + SYNC)
    answered(f, 49, 50, 90, status=ord("T"))
    f.sent(query("select 1"))
    answered(f, 84, 68, 67, 90, status=ord("T"))
    f.sent(describe(b"P", ""))
    assert f.upcoming(84) is None  # not the harmless statement's: masked whole


def test_a_bind_of_an_sql_prepared_statement_is_that_statement() -> None:
    f = flow()
    f.sent(parse("h1", HARMLESS) + SYNC)
    answered(f, 49, 90)
    f.sent(query("deallocate all"))
    answered(f, 67, 90)
    f.sent(query(f"prepare h1 as {LEAK}"))
    answered(f, 67, 90)
    f.sent(bind("", "h1") + describe(b"P", "") + SYNC)
    answered(f, 50)
    lineage = described(f)
    assert lineage.columns is not None and NID in lineage.columns[0]
