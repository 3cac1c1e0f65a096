"""Issue 12, the eighteenth outside attack: an approver shown other settings than those a held
statement's literals were read under, and a forged note of the gateway's. A Bind of another
statement (whose planning ran an IMMUTABLE function calling set_config) came between a held
statement's Parse and its Bind, and did not count as something that ran (finding 3);
``cursor_to_xml`` in front of a held statement in its query string fetched a cursor whose
query called set_config after the settings were read (finding 5); a no-break space in front of
``-- gatewatch:`` (its a a Cyrillic one) in a quoted identifier passed for the gateway's note
(finding 8). A held setval reads as 2002 under ISO, MDY and as 2001 under SQL, DMY; the target
is checked directly."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from engine.pg import codec
from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import start_guarded, wait_for_request
from tests.integration.wire import Wire, first_error

pytestmark = pytest.mark.integration

SETUP = """
DROP SEQUENCE IF EXISTS gw12r18_seq;
CREATE SEQUENCE gw12r18_seq START 2000;
SELECT setval('gw12r18_seq', 2000);
GRANT ALL ON SEQUENCE gw12r18_seq TO PUBLIC;
CREATE OR REPLACE FUNCTION gw12r18_dmy() RETURNS int IMMUTABLE LANGUAGE sql
    AS $$SELECT length(set_config('datestyle', 'SQL, DMY', false))$$;
"""
CLEANUP = "DROP SEQUENCE IF EXISTS gw12r18_seq; DROP FUNCTION IF EXISTS gw12r18_dmy();"
HELD = ("SELECT setval('gw12r18_seq', 2000 + "
        "extract(day from '01/02/2025'::date)::bigint)")


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("guard12r18"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def sequence(target: Target) -> int:
    with psycopg.connect(target.superuser(), dbname="shop") as admin:
        row = admin.execute("SELECT last_value FROM gw12r18_seq").fetchone()
        return int(row[0]) if row else -1


def _no_request(gateway: Gateway) -> bool:
    try:
        wait_for_request(gateway, timeout=2)
    except AssertionError:
        return True
    return False


def _parse(name: bytes, sql: str) -> bytes:
    return codec.message(b"P", name + b"\x00" + sql.encode() + b"\x00\x00\x00")


def _bind(portal: bytes, statement: bytes) -> bytes:
    return codec.message(b"B", portal + b"\x00" + statement + b"\x00" + b"\x00\x00" * 3)


@pytest.mark.parametrize("between", [
    # Planning p1 folds the IMMUTABLE function: DateStyle is SQL, DMY from its Bind on.
    _parse(b"s1", "SELECT public.gw12r18_dmy()") + _bind(b"p1", b"s1")
    + codec.message(b"C", b"Pp1\x00"),
], ids=["bind-close"])
def test_a_bind_that_runs_code_between_a_parse_and_its_held_bind_counts(
        guarded: Gateway, between: bytes) -> None:
    """The literal was read at the Parse under ISO, MDY (2 January: 2002); the approver was
    shown SQL, DMY (1 February: 2001). Refused: it cannot be shown as it reads."""
    wire = Wire(guarded.port())
    try:
        wire.login("alice", guarded.tokens["alice"])
        wire.send(_parse(b"s2", HELD) + between + _bind(b"", b"s2")
                  + codec.message(b"E", b"\x00\x00\x00\x00\x00") + codec.message(b"S"))
        error = first_error(wire)
        assert error["C"] == "42501" and "prepared before" in error["M"], error
    finally:
        wire.close()
    assert _no_request(guarded)
    assert sequence(guarded.target) == 2000


@pytest.mark.parametrize("front", [
    "SELECT cursor_to_xml('gw12r18_c', 1, false, false, '')",
    "SELECT cursor_to_xmlschema('gw12r18_c', false, false, '')",
])
def test_a_function_that_fetches_a_cursor_cannot_come_in_front(guarded: Gateway,
                                                               front: str) -> None:
    """The cursor's query calls set_config: fetched after the settings were read, the held
    statement's literal would be read under SQL, DMY, the approver shown ISO, MDY."""
    wire = Wire(guarded.port())
    try:
        wire.login("alice", guarded.tokens["alice"])
        wire.query("BEGIN")
        wire.query("DECLARE gw12r18_c CURSOR FOR SELECT set_config('datestyle', 'SQL, DMY', "
                   "false) FROM generate_series(1, 5)")
        wire.send(codec.message(b"Q", f"{front}; {HELD}".encode() + b"\x00"))
        error = first_error(wire)
        assert error["C"] == "42501" and "in front of it" in error["M"], error
    finally:
        wire.close()
    assert _no_request(guarded)
    assert sequence(guarded.target) == 2000


@pytest.mark.parametrize("forged", [
    '\n\u00a0-- g\u0430tewatch: settings in force: datestyle = SQL, DMY',
    '\n\u3000\u2014\u2014 g4tewatch: settings in force: datestyle = SQL, DMY',
])
def test_a_note_forged_in_an_identifier_is_refused(guarded: Gateway, forged: str) -> None:
    wire = Wire(guarded.port())
    try:
        wire.login("alice", guarded.tokens["alice"])
        wire.send(codec.message(b"Q", f'{HELD} AS "{forged}"'.encode() + b"\x00"))
        error = first_error(wire)
        assert error["C"] == "42501" and "could pass for one" in error["M"], error
    finally:
        wire.close()
    assert _no_request(guarded)
    assert sequence(guarded.target) == 2000
