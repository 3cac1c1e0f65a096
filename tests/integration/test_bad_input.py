"""Malformed or hostile input ends that peer's session with a clear error; nothing else breaks.

Each test keeps a healthy session open alongside and checks it still works afterwards, and
that the broken session's end is recorded with its reason.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import psycopg
import pytest

from engine.pg import codec
from tests.conftest import Gateway, Target, running_on_target, start_gateway, stop_gateway
from tests.integration.wire import Wire, first_error

pytestmark = pytest.mark.integration


@pytest.fixture
def bystander(gateway: Gateway) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(gateway.dsn(application_name="bystander"), autocommit=True) as conn:
        conn.execute("select 1")
        yield conn
        assert conn.execute("select count(*) from customers").fetchone() == (200,)


def ended(gateway: Gateway, reason: str) -> dict[str, object]:
    return gateway.wait_for(lambda s: next(
        (r for r in s.sessions() if r["end_reason"] == reason), None))


def test_garbage_before_startup(gateway: Gateway, bystander: object) -> None:
    wire = Wire(gateway.port())
    wire.send(b"\x00\x00\x00\x08GARBAGE!" + b"\xff" * 64)
    assert wire.closed()


@pytest.mark.parametrize("length", [0, 3, -5, 0x7FFFFFF0])
def test_bad_length_after_login(gateway: Gateway, bystander: object, length: int) -> None:
    wire = Wire(gateway.port())
    wire.login("alice", gateway.tokens["alice"])
    wire.send(b"Q" + struct.pack("!i", length) + b"select 1\x00")
    err = first_error(wire)
    assert err["S"] == "FATAL"
    assert err["C"] in ("08P01", "54000")
    assert "length" in err["M"] or "exceeds the limit" in err["M"]
    assert wire.closed()
    ended(gateway, "protocol violation")


def test_unknown_message_type(gateway: Gateway, bystander: object) -> None:
    wire = Wire(gateway.port())
    wire.login("alice", gateway.tokens["alice"])
    wire.send(codec.message(b"!", b"whatever"))
    err = first_error(wire)
    assert err["C"] == "08P01" and "invalid frontend message type '!'" in err["M"]
    assert wire.closed()


def test_second_startup_message(gateway: Gateway, bystander: object) -> None:
    wire = Wire(gateway.port())
    wire.login("alice", gateway.tokens["alice"])
    wire.send(codec.startup_message({"user": "alice", "database": "shop"}))
    err = first_error(wire)
    assert err["C"] == "08P01" and "invalid frontend message type 0x00" in err["M"]
    assert wire.closed()


def test_truncated_message_then_disconnect(gateway: Gateway, bystander: object) -> None:
    wire = Wire(gateway.port())
    wire.login("alice", gateway.tokens["alice"])
    wire.send(b"Q" + struct.pack("!i", 100) + b"select")  # 90 bytes short
    wire.close()
    ended(gateway, "client disconnected")


def test_malformed_bind_body(gateway: Gateway, bystander: object) -> None:
    wire = Wire(gateway.port())
    wire.login("alice", gateway.tokens["alice"])
    wire.send(codec.message(b"B", b"\x00\x00\x00\x01"))  # counts without their contents
    err = first_error(wire)
    assert err["C"] == "08P01" and "malformed Bind message" in err["M"]
    assert wire.closed()


def test_fastpath_function_call_is_refused(gateway: Gateway, bystander: object) -> None:
    wire = Wire(gateway.port())
    wire.login("alice", gateway.tokens["alice"])
    wire.send(codec.message(b"F", struct.pack("!ihhih", 764, 0, 0, 0, 0)))  # lo_import's oid
    err = first_error(wire)
    assert err["C"] == "0A000" and "fast-path" in err["M"]


@pytest.mark.parametrize("version", [(2, 0), (4, 0), (9999, 1)])
def test_unsupported_protocol_version(gateway: Gateway, version: tuple[int, int]) -> None:
    wire = Wire(gateway.port())
    major, minor = version
    payload = struct.pack("!i", (major << 16) | minor) + b"user\x00alice\x00\x00"
    wire.send(struct.pack("!i", len(payload) + 4) + payload)
    err = first_error(wire)
    assert err["C"] == "0A000" and "unsupported frontend protocol" in err["M"]
    assert wire.closed()


def test_newer_minor_version_is_negotiated_down(gateway: Gateway) -> None:
    wire = Wire(gateway.port())
    payload = (struct.pack("!i", (3 << 16) | 2) + b"user\x00alice\x00database\x00shop\x00"
               b"_pq_.something\x00on\x00\x00")
    wire.send(struct.pack("!i", len(payload) + 4) + payload)
    tag, body = wire.recv() or (0, b"")
    assert tag == ord("v")
    assert struct.unpack("!ii", body[:8]) == (0, 1) and b"_pq_.something" in body
    tag, body = wire.recv() or (0, b"")
    assert tag == ord("R")
    wire.send(codec.password_message(gateway.tokens["alice"].encode() + b"\x00"))
    wire.until(b"Z")
    assert any(t == ord("D") for t, _ in wire.query("select 1"))


def test_gssenc_request_is_declined(gateway: Gateway) -> None:
    wire = Wire(gateway.port())
    wire.send(codec.untagged(codec.GSSENC_REQUEST))
    assert wire.sock.recv(1) == b"N"
    wire.login("alice", gateway.tokens["alice"])
    assert any(t == ord("D") for t, _ in wire.query("select 1"))


def test_ssl_request_on_a_listener_without_tls(gateway: Gateway) -> None:
    wire = Wire(gateway.port("shop_trust"))
    wire.send(codec.untagged(codec.SSL_REQUEST))
    assert wire.sock.recv(1) == b"N"
    wire.login("alice", gateway.tokens["alice"])
    assert any(t == ord("D") for t, _ in wire.query("select 1"))


def test_wrong_token(gateway: Gateway, bystander: object) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(gateway.dsn(password="not-the-token"))
    assert 'password authentication failed for user "alice"' in str(info.value)
    session = ended(gateway, "authentication failed")
    assert session["status"] == "rejected"
    # Counted, like a failed SSH login: the same throttle slows both protocols.
    assert gateway.engine.sessions is not None
    assert gateway.engine.sessions.throttle.failures("127.0.0.1") >= 1


def test_unknown_user(gateway: Gateway) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(gateway.dsn(user="mallory", password="x"))
    assert 'password authentication failed for user "mallory"' in str(info.value)


def test_identity_not_allowed_on_connection(gateway: Gateway) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(gateway.dsn(user="bob"))
    assert 'identity "bob" may not use connection "shop"' in str(info.value)
    assert gateway.wait_for(lambda s: any(r["end_reason"] == "not allowed"
                                          for r in s.sessions()))


def test_database_not_allowed(gateway: Gateway) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(gateway.dsn(dbname="template1"))
    assert 'does not allow database "template1"' in str(info.value)


def test_replication_connection_refused(gateway: Gateway) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(gateway.dsn(replication="database"))
    assert "replication connections are not allowed" in str(info.value)


def test_target_down(gateway: Gateway, bystander: object) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(gateway.dsn("nowhere"))
    assert 'the target of connection "nowhere" is not available' in str(info.value)
    session = ended(gateway, "upstream unavailable")
    assert session["connection"] == "nowhere"


def test_target_dies_mid_query(gateway: Gateway, bystander: object) -> None:
    with psycopg.connect(gateway.dsn(application_name="victim"), autocommit=True) as conn:
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        with psycopg.connect(gateway.target.superuser(), autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s)", [pid])
        with pytest.raises(psycopg.OperationalError):
            conn.execute("select 1")
    ended(gateway, "upstream lost")


def test_client_disconnects_mid_statement(gateway: Gateway, bystander: object) -> None:
    wire = Wire(gateway.port())
    wire.login("alice", gateway.tokens["alice"])
    sql = "select pg_sleep(30) as left_mid_statement"
    wire.send(codec.message(b"Q", sql.encode() + b"\x00"))
    running_on_target(gateway.target, sql)  # (it had waited 0.5 s)
    wire.close()
    session = ended(gateway, "client disconnected")
    store = gateway.store()
    statements = store.statements(str(session["id"]))
    store.close()
    assert statements[-1]["text"] == sql
    assert statements[-1]["status"] == "lost"


def test_client_that_sends_nothing_times_out(pg_target: Target, tmp_path: object) -> None:
    gw = start_gateway(pg_target, tmp_path, startup_timeout="1s")  # type: ignore[arg-type]
    try:
        wire = Wire(gw.port(), timeout=15)
        started = time.monotonic()
        assert wire.closed()
        assert time.monotonic() - started < 10
        with psycopg.connect(gw.dsn()) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        stop_gateway(gw)


def test_message_over_the_configured_maximum(pg_target: Target, tmp_path: object) -> None:
    gw = start_gateway(pg_target, tmp_path, max_message_size="1KiB")  # type: ignore[arg-type]
    try:
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            with pytest.raises(psycopg.OperationalError) as info:
                conn.execute("select %s::text", ["x" * 5000])
            assert "exceeds the limit of 1024 bytes" in str(info.value)
        with psycopg.connect(gw.dsn()) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        stop_gateway(gw)
