"""Issue 12, the ninth outside attack, through the gateway with the shipped rules: a sequence
moved back by ``setval`` (the next insert collides with an existing id) and a SECURITY
DEFINER function (every role may then read what its owner reads: a grant by another name).
Both are stopped; the target is checked directly."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest
from psycopg import errors

from engine.pg import codec
from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import (
    denied_sql,
    operator,
    refused_held,
    start_guarded,
    wait_for_request,
)
from tests.integration.wire import Wire, first_error

pytestmark = pytest.mark.integration

UNSHOWN = "cannot be shown to an approver"  # what a refusal of unshowable parameters says

SETUP = """
DROP TABLE IF EXISTS gw12r9_orders CASCADE;
CREATE TABLE gw12r9_orders (id serial PRIMARY KEY, note text);
INSERT INTO gw12r9_orders (note) SELECT 'n' FROM generate_series(1, 20);
GRANT ALL ON gw12r9_orders, gw12r9_orders_id_seq TO PUBLIC;
"""
CLEANUP = """DROP TABLE IF EXISTS gw12r9_orders, gw12r9_items CASCADE;
DROP FUNCTION IF EXISTS gw12r9_peek(), gw12r9_plain();"""


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("guard12r9"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def next_id(target: Target) -> int:
    with psycopg.connect(target.superuser(), dbname="shop") as admin:
        row = admin.execute("SELECT last_value FROM gw12r9_orders_id_seq").fetchone()
        return int(row[0]) if row else -1


@pytest.mark.parametrize("sql", [
    "SELECT setval(pg_get_serial_sequence('gw12r9_orders', 'id'), 1, false)",
    "SELECT pg_catalog.setval('gw12r9_orders_id_seq', 1)",
    "SELECT s FROM (SELECT setval('gw12r9_orders_id_seq'::regclass, 2, true) AS s) x",
])
def test_a_sequence_moved_by_setval_is_held(guarded: Gateway, sql: str) -> None:
    request = denied_sql(guarded, sql)
    assert request["rule"] == "review-sequence-resets", request
    assert next_id(guarded.target) == 20


@pytest.mark.parametrize("sql", [
    "CREATE FUNCTION gw12r9_peek() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER "
    "AS 'SELECT note FROM gw12r9_orders'",
    "CREATE FUNCTION gw12r9_peek() RETURNS int LANGUAGE plpgsql EXTERNAL SECURITY DEFINER "
    "AS $$ BEGIN RETURN 1; END $$",
])
def test_a_security_definer_function_is_refused(guarded: Gateway, sql: str) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(sql)  # type: ignore[arg-type]
    with psycopg.connect(guarded.target.superuser(), dbname="shop") as admin:
        assert admin.execute("SELECT count(*) FROM pg_proc WHERE proname = 'gw12r9_peek'"
                             ).fetchone() == (0,)


def test_making_one_security_definer_afterwards_is_refused(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("CREATE FUNCTION gw12r9_plain() RETURNS int LANGUAGE sql "
                     "SECURITY INVOKER AS 'SELECT 1'")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("ALTER FUNCTION gw12r9_plain() SECURITY DEFINER")
    with psycopg.connect(guarded.target.superuser(), dbname="shop") as admin:
        assert admin.execute("SELECT prosecdef FROM pg_proc WHERE proname = 'gw12r9_plain'"
                             ).fetchone() == (False,)


def _bind_binary(value: bytes) -> bytes:
    """A Bind of the unnamed statement with one binary parameter, results in text."""
    return (b"\x00\x00" + struct.pack("!hh", 1, 1) + struct.pack("!h", 1)
            + struct.pack("!i", len(value)) + value + struct.pack("!h", 0))


def test_a_binary_parameter_is_shown_to_its_approver_as_its_declared_type(
        guarded: Gateway) -> None:
    """Outside attack on issue 12 (round 10): a float8 1.0 was shown to the approver as the
    int8 its bytes read as (4607182418800017408: a sequence moved forward), and the sequence
    was set to 1."""
    wire = Wire(guarded.port())
    try:
        wire.login("alice", guarded.tokens["alice"])
        sql = b"SELECT setval('gw12r9_orders_id_seq', $1::bigint)"
        wire.send(codec.message(b"P", b"\x00" + sql + b"\x00" + struct.pack("!hI", 1, 701))
                  + codec.message(b"B", _bind_binary(struct.pack("!d", 1.0)))
                  + codec.message(b"E", b"\x00\x00\x00\x00\x00")
                  + codec.message(b"S"))
        request = wait_for_request(guarded)
        with operator(guarded) as client:
            client.call("deny", request=request["id"], reason="issue 12")
        assert first_error(wire)["C"] == "42501"
    finally:
        wire.close()
    shown = request["statement"]
    assert "'1.0' (binary float8)" in shown, shown
    assert "4607182418800017408" not in shown
    assert next_id(guarded.target) == 20


def test_every_parameter_is_shown_to_its_approver_whole(guarded: Gateway) -> None:
    """Outside attack on issue 12 (round 10): the 17th and 18th parameters, and the end of a
    long one, ran unseen by the approver (the record's preview shows 16, each cut at 64
    characters)."""
    decoy = "gw12r9_scratch_" + "x" * 80

    request = denied_sql(
        guarded, "SELECT setval(coalesce(%s, %s)::regclass, 1), "
        + ", ".join(["%s::text"] * 15) + ", length(%s)",
        params=[None, "gw12r9_orders_id_seq", *(["100"] * 15), decoy])
    shown = request["statement"]
    assert "gw12r9_orders_id_seq" in shown and decoy in shown, shown
    assert next_id(guarded.target) == 20


def test_a_parameter_longer_than_an_approver_is_shown_is_refused(guarded: Gateway) -> None:
    """What an approver cannot see whole cannot be approved: a held statement whose parameter
    is longer than what is shown is refused at once, counted or not."""
    long = "gw12r9_orders_id_seq" + " " * 9000
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match=UNSHOWN):
            conn.execute("SELECT setval(trim(%s)::regclass, 1)", [long])
    assert next_id(guarded.target) == 20
    with psycopg.connect(guarded.target.superuser(), dbname="shop", autocommit=True) as admin:
        admin.execute("DROP TABLE IF EXISTS gw12r9_notes; CREATE TABLE gw12r9_notes AS "
                      "SELECT g AS id, 'n'::text AS note FROM generate_series(1, 150) g; "
                      "GRANT ALL ON gw12r9_notes TO PUBLIC")
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            with pytest.raises(errors.InsufficientPrivilege, match=UNSHOWN):
                conn.execute("UPDATE gw12r9_notes SET note = %s WHERE id > 0", ["x" * 9000])
        assert admin.execute("SELECT count(*) FROM gw12r9_notes WHERE note <> 'n'"
                             ).fetchone() == (0,)
        admin.execute("DROP TABLE gw12r9_notes")


def _numeric(value: int) -> bytes:
    """A non-negative integer in PostgreSQL's binary numeric form."""
    groups: list[int] = []
    while value:
        value, group = divmod(value, 10000)
        groups.insert(0, group)
    return struct.pack("!hhHh", len(groups), len(groups) - 1, 0, 0) + struct.pack(
        f"!{len(groups)}h", *groups)


def _held_extended(guarded: Gateway, sql: bytes, types: tuple[int, ...], value: bytes,
                   ) -> tuple[dict[str, object] | None, dict[str, str]]:
    """Parse (with ``types``), Bind of one binary ``value``, Execute, Sync: the request an
    operator sees (denied), or None when the gateway refused at once; the client's error."""
    wire = Wire(guarded.port())
    try:
        wire.login("alice", guarded.tokens["alice"])
        wire.send(codec.message(b"P", b"\x00" + sql + b"\x00" + struct.pack(
                      f"!h{len(types)}I", len(types), *types))
                  + codec.message(b"B", _bind_binary(value))
                  + codec.message(b"E", b"\x00\x00\x00\x00\x00")
                  + codec.message(b"S"))
        request = None
        try:
            request = wait_for_request(guarded, timeout=3)
        except AssertionError:
            pass
        if request is not None:
            with operator(guarded) as client:
                client.call("deny", request=request["id"], reason="issue 12")
        return request, first_error(wire)
    finally:
        wire.close()


@pytest.mark.parametrize(("sql", "types", "value", "shown"), [
    # round 11: a numeric of 29 digits was shown rounded to 28 (10^28), which reads as a
    # harmless move; the server read every digit
    (b"SELECT setval('gw12r9_orders_id_seq', "
     b"coalesce(nullif(($1 - 1e28)::bigint, 0), 2001))", (1700,), _numeric(10**28 + 1),
     "'10000000000000000000000000001' (binary numeric)"),
    # round 11: binary text past 4,096 bytes was shown as hex of its start
    (b"SELECT setval(split_part($1, ',', 2)::regclass, 1)", (25,),
     b"scratch_seq" + b" " * 5000 + b",gw12r9_orders_id_seq", ",gw12r9_orders_id_seq'"),
], ids=["numeric-of-29-digits", "binary-text-past-4096-bytes"])
def test_a_declared_binary_parameter_is_shown_as_the_server_reads_it(
        guarded: Gateway, sql: bytes, types: tuple[int, ...], value: bytes,
        shown: str) -> None:
    request, error = _held_extended(guarded, sql, types, value)
    assert request is not None and shown in str(request["statement"]), request
    assert error["C"] == "42501"
    assert next_id(guarded.target) == 20


def test_a_binary_parameter_of_a_type_not_given_cannot_be_approved(guarded: Gateway) -> None:
    """Round 11: with no type in the Parse, a float8 1.0 was shown only as what its bytes read
    as (an int8), and approved. Its reading is the server's: nothing to show, refused."""
    request, error = _held_extended(
        guarded, b"SELECT setval('gw12r9_orders_id_seq', $1::float8::bigint)", (),
        struct.pack("!d", 1.0))
    assert request is None
    assert error["C"] == "42501" and "cannot be shown to an approver" in error["M"], error
    assert next_id(guarded.target) == 20


def test_a_binary_parameter_typed_by_the_server_is_shown_and_can_be_decided(
        guarded: Gateway) -> None:
    """asyncpg gives no types in its Parse: it asks the server (Describe) and sends binary
    parameters of the types described. The gateway reads the same ParameterDescription, so
    its held statements are shown as the server reads them, and decided, not refused."""
    heard: list[BaseException] = []

    async def run() -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=guarded.port(), user="alice",
                                     password=guarded.tokens["alice"], database="shop",
                                     ssl=False)
        try:
            await conn.fetchval(
                "SELECT setval('gw12r9_orders_id_seq', ($1::float8 + $2)::bigint)", 1.0, 0)
        except asyncpg.PostgresError as exc:
            heard.append(exc)
        finally:
            await conn.close()

    request = refused_held(guarded, lambda: asyncio.run(run()))
    shown = str(request["statement"])
    assert "'1.0' (binary float8)" in shown and "'0.0' (binary float8)" in shown, shown
    assert [type(e) for e in heard] == [asyncpg.InsufficientPrivilegeError], heard
    assert next_id(guarded.target) == 20


def test_renaming_a_key_s_constraint_is_held(guarded: Gateway) -> None:
    """Round 11: RENAME CONSTRAINT of a primary key renames its index, which ALTER INDEX …
    RENAME may not."""
    denied_sql(guarded, "ALTER TABLE gw12r9_orders RENAME CONSTRAINT gw12r9_orders_pkey "
               "TO gw12r9_old")
    with psycopg.connect(guarded.target.superuser(), dbname="shop") as admin:
        assert admin.execute("SELECT count(*) FROM pg_class WHERE relname = "
                             "'gw12r9_orders_pkey'").fetchone() == (1,)


def test_a_numeric_whose_text_an_approver_cannot_see_whole_is_refused(
        guarded: Gateway) -> None:
    """Round 12: a binary numeric of 4,210 bytes prints 8,404 digits; shown cut ("5000…"),
    its tail ("0001") set the sequence."""
    request, error = _held_extended(
        guarded, b"SELECT setval('gw12r9_orders_id_seq', right($1::text, 4)::bigint)", (1700,),
        _numeric(5 * 10**8403 + 1))
    assert request is None and UNSHOWN in error["M"], (request, error)
    assert next_id(guarded.target) == 20


def test_a_binary_xml_parameter_is_shown_as_its_bytes(guarded: Gateway) -> None:
    """Round 12: binary xml is read in the encoding its declaration names, not the session's:
    decoded in the session's, an approver read another document than the server."""
    request, error = _held_extended(
        guarded, b"SELECT setval('gw12r9_orders_id_seq', 1 + 0 * length($1::text))", (142,),
        b"<a>x</a>")
    assert request is not None and error["C"] == "42501"
    shown = str(request["statement"])
    assert "\\x3c613e783c2f613e (binary type 142)" in shown and "<a>" not in shown, shown


def test_settings_that_change_what_text_means(guarded: Gateway) -> None:
    """Round 12: with transform_null_equals on, a held CASE WHEN NULL = NULL THEN 1 ELSE 2001
    read as 2001 and ran as 1. Such settings cannot be changed; a date style or time zone
    changed since login is shown to the approver."""
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        for sql in ("SET transform_null_equals TO on", "SET array_nulls TO off",
                    "SELECT set_config('transform_null_equals', 'on', false)"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(sql)  # type: ignore[arg-type]
        conn.execute("SET transform_null_equals TO off")  # its default: allowed

    request = denied_sql(guarded, "SET datestyle TO 'ISO, DMY'",
                         "SELECT setval('gw12r9_orders_id_seq', "
                         "extract(day from '01/02/2025'::date)::bigint)")
    assert "datestyle = ISO, DMY" in request["statement"], request["statement"]
    assert next_id(guarded.target) == 20


def test_adding_an_identity_to_a_column_is_held(guarded: Gateway) -> None:
    """Round 12: every INSERT naming the column fails afterwards."""
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE gw12r9_items (gw12r9_n int NOT NULL DEFAULT 0)")

    denied_sql(guarded, "ALTER TABLE gw12r9_items ALTER COLUMN gw12r9_n "
               "ADD GENERATED ALWAYS AS IDENTITY")
    with psycopg.connect(guarded.target.superuser(), dbname="shop") as admin:
        assert admin.execute("SELECT attidentity FROM pg_attribute WHERE attname = 'gw12r9_n'"
                             ).fetchone() == ("",)
        admin.execute("DROP TABLE gw12r9_items")
        admin.commit()


def test_an_approver_is_shown_the_settings_that_change_what_literals_mean(
        guarded: Gateway) -> None:
    """Round 13: a DateStyle given at login, and an extra_float_digits set by a statement
    (neither reported as a change since login), made a held setval read otherwise than it
    ran. Every setting in force that changes what literals mean is shown."""
    wire = Wire(guarded.port())
    try:
        wire.send(codec.startup_message({"user": "alice", "database": "shop",
                                         "datestyle": "SQL, DMY"}))
        tag, _ = wire.recv() or (0, b"")
        assert tag == ord("R")
        wire.send(codec.password_message(guarded.tokens["alice"].encode() + b"\x00"))
        wire.until(b"Z")
        assert not [m for m in wire.query("SET extra_float_digits = -14") if m[0] == ord("E")]
        wire.send(codec.message(b"Q", b"SELECT setval('gw12r9_orders_id_seq', "
                                b"extract(day from '01/02/2025'::date)::bigint)\x00"))
        request = wait_for_request(guarded)
        with operator(guarded) as client:
            client.call("deny", request=request["id"], reason="issue 12")
        assert first_error(wire)["C"] == "42501"
    finally:
        wire.close()
    shown = str(request["statement"])
    assert "datestyle = SQL, DMY" in shown and "extra_float_digits = -14" in shown, shown
    assert next_id(guarded.target) == 20


def test_a_setting_a_rollback_undid_is_shown_as_it_is(guarded: Gateway) -> None:
    """Round 14: a SET undone by a rollback (bytea_output, which the server does not report)
    left the approver's note out, and a held setval read as 2001 ran as 1. The settings are
    read from the session when a statement is held: the value the rollback left is shown.
    And xmlbinary, which changes what xmlelement prints, is shown."""
    held = ("SELECT setval('gw12r9_orders_id_seq', "
            "8001 - 1000 * length(('\\x0102'::bytea)::text))")
    request = denied_sql(guarded, "SET bytea_output = 'escape'", "BEGIN",
                         "SET bytea_output = 'hex'", "ROLLBACK", held)
    assert "bytea_output = escape" in str(request["statement"]), request
    assert next_id(guarded.target) == 20

    def work() -> None:
        wire = Wire(guarded.port())
        try:
            wire.login("alice", guarded.tokens["alice"])
            assert not [m for m in wire.query("SET xmlbinary = 'hex'") if m[0] == ord("E")]
            wire.query("SELECT setval('gw12r9_orders_id_seq', 2001 + 1000 * "
                       "(11 - length(xmlelement(name a, '\\x010203'::bytea)::text)))")
        finally:
            wire.close()

    worker = threading.Thread(target=work)
    worker.start()
    request = wait_for_request(guarded)
    with operator(guarded) as client:
        client.call("deny", request=request["id"], reason="issue 12")
    worker.join(30)
    assert "xmlbinary = hex" in str(request["statement"]), request
    assert next_id(guarded.target) == 20
