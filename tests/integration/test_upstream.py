"""The gateway logs in to the target itself: SCRAM-SHA-256, MD5, trust, and TLS upstream."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import Gateway, Target, start_gateway, stop_gateway

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("connection", "target_user"),
    [("shop", "gw_scram"), ("shop_md5", "gw_md5"), ("shop_trust", "gw_trust"),
     ("shop_tls", "gw_scram")],
)
def test_target_login_methods(gateway: Gateway, connection: str, target_user: str) -> None:
    with psycopg.connect(gateway.dsn(connection)) as conn:
        user, count = conn.execute(
            "select current_user, (select count(*) from customers)").fetchone()  # type: ignore[misc]
        assert (user, count) == (target_user, 200)
        ssl = conn.execute(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
        assert ssl == (connection == "shop_tls",)


def test_client_never_sees_the_target_credential(gateway: Gateway) -> None:
    """Invariant 5: nothing the client receives carries the target's password."""
    secret = gateway.target.passwords["gw_scram"]
    with psycopg.connect(gateway.dsn()) as conn:
        params = conn.info.get_parameters()
        assert all(secret not in str(v) for v in params.values())
        row = conn.execute("select current_setting('application_name')").fetchone()
        assert row is not None and secret not in str(row)
    store = gateway.store()
    try:
        dump = "\n".join(store.conn.iterdump())
    finally:
        store.close()
    assert secret not in dump
    assert gateway.tokens["alice"] not in dump


def test_backend_key_is_the_gateways_own(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn()) as conn:
        client_pid = conn.info.backend_pid
        real_pid = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    assert client_pid != real_pid


def test_only_the_allowed_authentication_methods_are_answered(pg_target: Target,
                                                              tmp_path: Path) -> None:
    """A connection that allows only SCRAM never hands its password to a target that asks
    for MD5 (or cleartext): a spoofed target would learn it."""
    gw = start_gateway(pg_target, tmp_path, md5_auth="[scram-sha-256]")
    try:
        with pytest.raises(psycopg.OperationalError, match="is not available"):
            psycopg.connect(gw.dsn("shop_md5"))
        assert gw.wait_for(lambda s: [r for r in s.sessions()
                                      if r["end_reason"] == "upstream unavailable"])
    finally:
        stop_gateway(gw)
