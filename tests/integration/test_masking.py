"""Masking through the PostgreSQL gateway: what a client receives and what is recorded."""

from __future__ import annotations

import json
import re
import time

import asyncpg
import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

EMAIL = re.compile(r"[a-z]+\.[a-z]+\d+@example\.com", re.IGNORECASE)
CARDS = ("4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
         "4012888888881881", "5105105105105100")

EVASIONS = [
    "select email from customers order by id limit 5",
    "select upper(email) from customers order by id limit 5",
    "select email || '' from customers order by id limit 5",
    "select concat('<', email, '>') from customers order by id limit 5",
    "select format('%s / %s', full_name, email) from customers order by id limit 5",
    "select row_to_json(c) from customers c order by id limit 3",
    "select json_agg(email) from (select email from customers order by id limit 5) s",
    "select string_agg(email, ',') from (select email from customers order by id limit 5) s",
    "select email::varchar(200), card_number::text from customers order by id limit 5",
    "select email from customers where id = 1 union all select card_number from customers"
    " where id < 4",
    "select (select email from customers where id = 2) as x",
    "with c as (select email, card_number from customers order by id limit 4) select * from c",
    "select lower(email) as alias_hides_nothing, card_number as cn from customers limit 3",
]


def leaked(text: str) -> list[str]:
    return EMAIL.findall(text) + [c for c in CARDS if c in text]


@pytest.mark.parametrize("sql", EVASIONS, ids=[s[7:40] for s in EVASIONS])
def test_no_detected_value_reaches_the_client(gateway: Gateway, sql: str) -> None:
    with psycopg.connect(gateway.target.direct()) as direct:
        assert leaked(str(direct.execute(sql).fetchall())), "the query shows no personal data"
    for binary in (False, True):
        with psycopg.connect(gateway.dsn("shop_masked")) as conn:
            rows = conn.cursor(binary=binary).execute(sql).fetchall()
        assert rows and not leaked(str(rows)), (binary, rows)


def test_partial_and_hash_strategies_and_untouched_columns(gateway: Gateway) -> None:
    sql = "select id, full_name, card_number, national_id from customers where id in (1, 7)"
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        rows = conn.execute(sql + " order by id").fetchall()
    with psycopg.connect(gateway.target.direct()) as direct:
        raw = direct.execute(sql + " order by id").fetchall()
    assert [r[:2] for r in rows] == [r[:2] for r in raw]  # unmasked columns byte-identical
    assert rows[0][2] == "*" * 12 + raw[0][2][-4:]
    assert rows[0][3].startswith("h:") and rows[0][3] != raw[0][3]
    assert rows[1][3] == rows[0][3] if raw[1][3] == raw[0][3] else rows[1][3] != rows[0][3]


def test_errors_notices_and_copy_do_not_leak(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation) as info:
            conn.execute("select 'mallory.x42@example.com'::int")
        # (libpq adds the query the client itself sent as context: only the server's fields)
        assert "mallory.x42@example.com" not in (info.value.diag.message_primary or "")
        assert "invalid input syntax" in (info.value.diag.message_primary or "")
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("do $$ begin raise notice 'card 4111111111111111'; end $$")
        assert notices and "4111111111111111" not in notices[0]
        with conn.cursor().copy("copy (select email, card_number from customers order by id"
                                " limit 5) to stdout") as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        assert data.count(b"\n") == 5 and not leaked(data.decode())


async def test_asyncpg_decodes_masked_binary_results(gateway: Gateway) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=gateway.port("shop_masked"),
                                 user="alice", password=gateway.tokens["alice"],
                                 database="shop", ssl=False)
    try:
        rows = await conn.fetch("select id, email, national_id, row_to_json(c)::jsonb as j"
                                " from customers c order by id limit 3")
    finally:
        await conn.close()
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert not leaked(str([dict(r) for r in rows]))
    assert all(r["national_id"].startswith("h:") for r in rows)
    # the whole row holds national_id: masked whole (lineage: computed, so redacted, not
    # hashed — a hash of a piece is a dictionary lookup), and still valid JSON
    assert json.loads(rows[0]["j"]) == "****"


def test_recorded_statements_are_masked_and_counts_kept(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked", application_name="masked-probe")) as conn:
        conn.execute("select 'probe.one1@example.com' as x, email from customers limit 2")
    session = gateway.wait_for(lambda s: [r for r in s.sessions()
                                          if r["application_name"] == "masked-probe"
                                          and r["ended_at"]])[0]
    store = gateway.store()
    try:
        texts = [r["text"] for r in store.statements(session["id"])]
    finally:
        store.close()
    assert texts and not any("probe.one1@example.com" in t for t in texts)
    counts = json.loads(session["masked"])
    assert counts["personal-data:email/email"] >= 2
    assert counts["personal-data:email/recorded"] == 1


def test_an_exempt_identity_sees_values_and_the_exemption_is_recorded(
        gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked", user="second",
                                     application_name="auditor")) as conn:
        rows = conn.execute("select email from customers order by id limit 2").fetchall()
    assert all(EMAIL.fullmatch(r[0]) for r in rows)
    deadline = time.monotonic() + 10
    while True:
        rows2 = [r for r in gateway.sessions() if r["application_name"] == "auditor"
                 and r["ended_at"]]
        if rows2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert json.loads(rows2[0]["masked"]) == {"auditors-see-everything:exempt": 1}


def test_live_counts_are_served_over_the_control_api(gateway: Gateway) -> None:
    from tests.integration.test_control import ask

    with psycopg.connect(gateway.dsn("shop_masked", application_name="counted")) as conn:
        conn.execute("select email, card_number from customers order by id limit 3").fetchall()
        hello = json.dumps({"op": "hello", "token": gateway.tokens["oncall"]}).encode()
        request = json.dumps({"op": "sessions", "id": 1}).encode()
        _, answer = ask(gateway.work / "control.sock", hello, request)
        [live] = [s for s in answer["result"]["live"] if s["application_name"] == "counted"]
        assert live["masked"]["personal-data:email/email"] == 3
        assert live["masked"]["personal-data:payment_card/card_number"] == 3


# --- column rules follow the table column behind a result column ------------------------------


def test_an_alias_does_not_hide_a_table_column_from_its_rule(gateway: Gateway) -> None:
    sql = ("select c.national_id as nid, o.status as s, 'paid' as status"
           " from customers c join orders o on o.customer_id = c.id order by o.id limit 3")
    with psycopg.connect(gateway.target.direct()) as direct:
        raw = direct.execute(sql).fetchall()
    for binary in (False, True):
        with psycopg.connect(gateway.dsn("shop_masked")) as conn:
            rows = conn.cursor(binary=binary).execute(sql).fetchall()
        assert len(rows) == len(raw) == 3
        for got, was in zip(rows, raw, strict=True):
            assert got[0].startswith("h:") and got[0] != was[0]  # national-ids: hash
            assert got[1] != was[1] and was[1] not in got[1]  # public.orders.status: redact
            assert got[2] != "paid"  # computed, named like orders.status: masked too


def test_results_of_several_tables_in_one_query_are_each_resolved(gateway: Gateway) -> None:
    # Two RowDescriptions naming two tables, back to back in one simple query; and the same
    # through psycopg's pipeline mode, where results arrive without a round trip between them.
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        cur = conn.execute("select status from orders order by id limit 2;"
                           " select national_id as x from customers order by id limit 2")
        statuses = cur.fetchall()
        assert cur.nextset()
        second = cur.fetchall()
        with conn.pipeline():
            a = conn.execute("select status from orders order by id limit 2")
            b = conn.execute("select national_id from customers order by id limit 2")
            c = conn.execute("select id from orders order by id limit 2")
        first, third, ids = a.fetchall(), b.fetchall(), c.fetchall()
    assert all(r[0].startswith("h:") for r in second + third)
    assert all(r[0] not in ("new", "paid", "shipped", "refunded") for r in statuses + first)
    assert [r[0] for r in ids] == [1, 2]


def test_counts_are_kept_per_statement(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked", application_name="per-statement"),
                         autocommit=True) as conn:
        conn.execute("select email from customers order by id limit 3").fetchall()
        conn.execute("select id from customers order by id limit 3").fetchall()
        conn.execute("select national_id from customers order by id limit 2").fetchall()
    session = gateway.wait_for(lambda s: [r for r in s.sessions()
                                          if r["application_name"] == "per-statement"
                                          and r["ended_at"]])[0]
    store = gateway.store()
    try:
        statements = store.statements(session["id"])
    finally:
        store.close()
    counts = [json.loads(s["masked"]) if s["masked"] else None for s in statements]
    assert counts == [{"personal-data:email/email": 3}, None,
                      {"national-ids:column/customers.national_id": 2}]  # the table column


def test_a_table_the_catalog_cannot_be_read_for_is_masked(gateway: Gateway) -> None:
    # The gateway reads the catalog over a connection of its own. Once the session is open,
    # new logins of the target's role are made to fail (a library that does not exist must
    # be loaded at login), so that read is refused: fail closed.
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        direct.execute("drop table if exists notes_unread;"
                       " create table notes_unread (id int, body text);"
                       " insert into notes_unread values (1, 'plain words')")
    with psycopg.connect(gateway.target.superuser(), autocommit=True) as admin, \
            psycopg.connect(gateway.dsn("shop_masked", application_name="no-catalog")) as conn:
        admin.execute("alter role gw_scram set session_preload_libraries = 'no_such_library'")
        try:
            rows = conn.execute("select id, body from notes_unread").fetchall()
            again = conn.execute("select 'plain words' as body").fetchall()
        finally:
            admin.execute("alter role gw_scram reset session_preload_libraries")
    assert rows == [(None, "****")]  # an integer cannot hold "****": NULL
    assert again == [("plain words",)]  # computed columns are not the catalog's business
    session = gateway.wait_for(lambda s: [r for r in s.sessions()
                                          if r["application_name"] == "no-catalog"
                                          and r["ended_at"]])[0]
    assert json.loads(session["masked"])["catalog-unavailable:column/body"] == 1


def test_notify_payloads_are_masked(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as listener, \
            psycopg.connect(gateway.target.direct(), autocommit=True) as sender:
        listener.execute("listen paid")
        sender.execute("select pg_notify('paid', 'card 4111111111111111 of bob.x1@example.com')")
        notes = list(listener.notifies(timeout=10, stop_after=1))
    # column rules apply to this session: any payload, or the choice of channel, may be
    # computed from a masked column's value
    assert [(n.channel, n.payload) for n in notes] == [("****", "****")]


async def test_column_rules_apply_to_statements_a_driver_runs_without_describing(
        gateway: Gateway) -> None:
    # asyncpg describes a prepared statement once and then only binds and executes it; the
    # gateway describes each portal itself, and the client never sees those answers.
    conn = await asyncpg.connect(host="127.0.0.1", port=gateway.port("shop_masked"),
                                 user="alice", password=gateway.tokens["alice"],
                                 database="shop", ssl=False)
    try:
        statement = await conn.prepare("select c.id, national_id as nid, o.status"
                                       " from customers c join orders o on o.customer_id = c.id"
                                       " where c.id = $1 order by o.id limit 1")
        results = [await statement.fetch(i) for i in (1, 2, 3, 1)]
        again = await conn.fetch("select 1 as one")  # the session is still in step
    finally:
        await conn.close()
    assert [r[0]["id"] for r in results] == [1, 2, 3, 1]
    assert all(r[0]["nid"].startswith("h:") for r in results)
    assert results[0][0]["nid"] == results[3][0]["nid"]  # keyed hash: stable
    assert all(r[0]["status"] not in ("new", "paid", "shipped", "refunded") for r in results)
    assert [dict(r) for r in again] == [{"one": 1}]


def test_psycopg_prepared_statements_are_masked_by_column(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), prepare_threshold=0) as conn:
        rows = [conn.execute("select national_id from customers where id = %s", (i,),
                             prepare=True).fetchone() for i in (1, 2, 1)]
    assert all(r is not None and r[0].startswith("h:") for r in rows)


def test_each_portal_is_masked_by_its_own_columns(gateway: Gateway) -> None:
    """Two portals bound before either runs, and a portal suspended and run again after a
    Sync: each Execute's rows get the column rules of that portal's own columns."""
    from tests.engine.pg import build as b
    from tests.integration.wire import Wire

    wire = Wire(gateway.port("shop_masked"))
    wire.login("alice", gateway.tokens["alice"])
    try:
        wire.send(b.parse("select national_id from customers where id = 1", "s1")
                  + b.parse("select 'plain'::text", "s2")
                  + b.bind([], portal="p1", statement="s1")
                  + b.bind([], portal="p2", statement="s2")
                  + b.execute("p1") + b.execute("p2") + b.SYNC)
        rows = [body for tag, body in wire.until(b"Z") if tag == ord("D")]
        assert len(rows) == 2 and b"h:" in rows[0] and b"plain" in rows[1]
        wire.query("begin")
        wire.send(b.parse("select national_id from customers order by id limit 3", "s3")
                  + b.bind([], portal="p3", statement="s3") + b.execute("p3", 1) + b.SYNC)
        first = [body for tag, body in wire.until(b"Z") if tag == ord("D")]
        wire.send(b.execute("p3", 1) + b.SYNC)  # the same portal, after the Sync
        second = [body for tag, body in wire.until(b"Z") if tag == ord("D")]
        assert len(first) == len(second) == 1
        assert b"h:" in first[0] and b"h:" in second[0]
    finally:
        wire.close()


def test_a_multi_statement_query_counts_every_result(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked", application_name="multi-count"),
                         autocommit=True) as conn:
        conn.execute("select email from customers order by id limit 2;"
                     " select national_id from customers order by id limit 3")
    session = gateway.wait_for(lambda s: [r for r in s.sessions()
                                          if r["application_name"] == "multi-count"
                                          and r["ended_at"]])[0]
    store = gateway.store()
    try:
        [statement] = store.statements(session["id"])
    finally:
        store.close()
    assert json.loads(statement["masked"]) == {
        "personal-data:email/email": 2, "national-ids:column/customers.national_id": 3}
