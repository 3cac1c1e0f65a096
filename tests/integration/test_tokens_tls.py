"""Tokens travel only over TLS: a client that is not on loopback and has not negotiated TLS is
refused before the gateway asks for its token, unless the connection says ``tls: optional``.

The tests reach the gateway over loopback (they send nothing anywhere else), so the client's
address is what the gateway is told it is: a host on another network."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from engine.pg.side import Side
from tests.conftest import Gateway

pytestmark = pytest.mark.integration

ELSEWHERE = "192.0.2.77:40000"  # TEST-NET-1: never a real peer


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(Side, "peer", lambda self: ELSEWHERE)
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
