"""Tokens travel only over TLS: a client that is not on loopback and has not negotiated TLS is
refused before the gateway asks for its token, unless the connection says ``tls: optional``.

The tests reach the gateway over loopback (they send nothing anywhere else), so the client's
address is what the gateway is told it is: a host on another network."""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from typing import Any

import psycopg
import pytest

import engine.engine as engine_module
from engine.config import Connection
from engine.pg.connection import PgContext
from engine.pg.side import Side
from tests.conftest import Gateway

pytestmark = pytest.mark.integration

ELSEWHERE = "192.0.2.77:40000"  # TEST-NET-1: never a real peer


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every client accepted from now on comes from ``ELSEWHERE``: its ``Side`` is told so
    where the engine hands it to the session (a compiled ``Side``'s methods cannot be
    patched)."""
    real = engine_module.serve_client

    def from_elsewhere(ctx: PgContext, conn: Connection, client: Side) -> Coroutine[
            Any, Any, None]:
        client._peer = ELSEWHERE
        return real(ctx, conn, client)

    monkeypatch.setattr(engine_module, "serve_client", from_elsewhere)
    yield


def test_a_remote_client_without_tls_is_refused_before_it_sends_its_token(
        gateway: Gateway, remote: None) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(gateway.dsn(), connect_timeout=10)
    assert 'connection "shop" takes tokens only over TLS' in str(info.value)
    row = gateway.wait_for(lambda s: next(
        (r for r in s.sessions() if r["client_addr"] == ELSEWHERE and r["ended_at"]), None))
    assert (row["status"], row["end_reason"]) == ("rejected", "no TLS")


def test_a_remote_client_over_tls_gets_in(gateway: Gateway, remote: None) -> None:
    with psycopg.connect(gateway.dsn(sslmode="require"), connect_timeout=10) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_a_connection_that_says_tls_optional_takes_tokens_in_clear(
        gateway: Gateway, remote: None) -> None:
    with psycopg.connect(gateway.dsn("shop_plain"), connect_timeout=10) as conn:
        assert conn.execute("select 2").fetchone() == (2,)


def test_a_loopback_client_may_go_without_tls(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn(), connect_timeout=10) as conn:
        assert conn.execute("select 3").fetchone() == (3,)
