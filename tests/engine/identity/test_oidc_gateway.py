"""OIDC through a real gateway: real PostgreSQL, real psql, tokens from the demo provider.

The engine builds its identities with ``CombinedIdentities.from_config``: the policies file's
``identity.oidc`` section turns OIDC on.
"""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from engine.config import Config, load_config
from engine.identity.fetch import post_form
from gatewatch.cli import login as cli
from gatewatch.cli.main import main
from gatewatch.demo.oidc import DemoOidcProvider
from gatewatch.demo.pgcluster import free_port
from tests import sshgw
from tests.conftest import TOKENS, Gateway, Target, need, stop_gateway, write_policy
from tests.engine.identity.tokens import FakeClock
from tests.enginethread import run_engine
from tests.sshd import SshdTarget, make_client_key

pytestmark = pytest.mark.integration


@pytest.fixture
def idp() -> Iterator[DemoOidcProvider]:
    with DemoOidcProvider() as provider:
        yield provider


@pytest.fixture
def oidc_gateway(pg_target: Target, tmp_path: Path, idp: DemoOidcProvider) -> Iterator[Gateway]:
    path = write_policy(pg_target, tmp_path, shop_port=free_port())  # connect reads the port
    with path.open("a") as f:
        f.write(f"identity:\n  oidc: {{issuer: '{idp.issuer}', audiences: [gatewatch], "
                "client_id: gatewatch-cli}\n")
    config = load_config(path)
    engine, loop, thread = run_engine(config)
    gw = Gateway(engine, loop, thread, tmp_path, pg_target)
    try:
        yield gw
    finally:
        stop_gateway(gw)


def agent_token(idp: DemoOidcProvider) -> str:
    info = idp.demo_info()
    status, body = post_form(info["token_endpoint"], {"grant_type": "client_credentials"},
                             timeout=5, basic_auth=(info["client_id"], info["client_secret"]))
    assert status == 200
    return str(body["access_token"])


def test_an_agent_signs_in_with_a_client_credentials_token(oidc_gateway: Gateway,
                                                           idp: DemoOidcProvider) -> None:
    info = idp.demo_info()
    with psycopg.connect(oidc_gateway.dsn(user=info["pg_user"]), password=agent_token(idp),
                         autocommit=True) as conn:
        assert conn.execute("select current_user").fetchone() == ("gw_scram",)
    session = oidc_gateway.wait_for(
        lambda store: [s for s in store.sessions() if s["identity"] == "triage-agent"])[0]
    assert session["identity_kind"] == "agent"


def test_static_tokens_still_open_sessions(oidc_gateway: Gateway) -> None:
    with psycopg.connect(oidc_gateway.dsn(), password=TOKENS["alice"], autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


@pytest.mark.parametrize("how", ["wrong user", "wrong audience", "expired"])
def test_bad_tokens_are_refused(oidc_gateway: Gateway, idp: DemoOidcProvider, how: str) -> None:
    user, token = {
        "wrong user": ("alice", agent_token(idp)),
        "wrong audience": ("alice", idp.user_token("alice", audience="other")),
        "expired": ("alice", idp.user_token("alice", lifetime=-3600)),
    }[how]
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(oidc_gateway.dsn(user=user), password=token)


def test_gatewatch_connect_runs_psql_with_the_cached_token(
        oidc_gateway: Gateway, idp: DemoOidcProvider, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    need("psql")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GATEWATCH_TOKEN", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    config: Config = oidc_gateway.engine.config
    clock = FakeClock(time.time())

    def person(seconds: float) -> None:  # approves at once: no real waiting
        clock.advance(seconds)
        for code in idp.pending_user_codes():
            idp.approve(code, "alice")

    cli.login(config, out=io.StringIO(), sleep=person, clock=clock)
    assert main(["connect", "-c", str(config.path), "shop", "--", "-At", "-c",
                 "select 'through the gateway as ' || current_user"]) == 0
    assert "through the gateway as gw_scram" in capfd.readouterr().out
    sessions = oidc_gateway.wait_for(
        lambda store: [s for s in store.sessions() if s["identity"] == "alice"])
    assert sessions


@pytest.fixture
def oidc_ssh_gateway(sshd: SshdTarget, idp: DemoOidcProvider, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[sshgw.SshGateway]:
    """An SSH connection (``web``) in front of the real sshd, with OIDC turned on."""
    work = tmp_path / "gw"
    work.mkdir(mode=0o700)  # the store lives here
    port = free_port()
    text = sshgw.POLICY.format(
        work=work, alice_key=make_client_key(work / "alice_key"), review_timeout="1m",
        sshd_port=sshd.port, sshd_user=sshd.user, client_key=sshd.client_key,
        known_hosts=sshd.known_hosts, forward_port=free_port(), dead_port=free_port())
    text = text.replace("listen: 127.0.0.1:0", f"listen: 127.0.0.1:{port}", 1)
    text += (f"identity:\n  oidc: {{issuer: '{idp.issuer}', audiences: [gatewatch], "
             "client_id: gatewatch-cli}\n")
    (work / "policies.yaml").write_text(text)
    for name, token in sshgw.TOKENS.items():
        monkeypatch.setenv(f"GWSSH_{name.upper()}_TOKEN", token)
    config = load_config(work / "policies.yaml")
    engine, loop, thread = run_engine(config)
    gw = sshgw.SshGateway(engine, loop, thread, work, sshd, work / "alice_key", 0)
    try:
        yield gw
    finally:
        sshgw.stop_ssh_gateway(gw)


def test_gatewatch_connect_runs_ssh_with_an_askpass_helper(
        oidc_ssh_gateway: sshgw.SshGateway, idp: DemoOidcProvider, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """The real OpenSSH client reaches the gateway with the cached OIDC token, typed by the
    askpass helper that ``connect`` provides; the token is never on its command line."""
    gw = oidc_ssh_gateway
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GATEWATCH_TOKEN", raising=False)
    config = gw.engine.config
    path = gw.work / "policies.yaml"
    clock = FakeClock(time.time())

    def person(seconds: float) -> None:
        clock.advance(seconds)
        for code in idp.pending_user_codes():
            idp.approve(code, "alice")

    cli.login(config, out=io.StringIO(), sleep=person, clock=clock)
    options = gw.client_options()
    at = options.index("PreferredAuthentications=password,keyboard-interactive")
    del options[at - 1:at + 1]  # connect chooses the authentication methods itself
    assert main(["connect", "-c", str(path), "web", "--", *options,
                 "echo", "through-the-gateway"]) == 0
    assert "through-the-gateway" in capfd.readouterr().out
    deadline = time.monotonic() + 10  # records reach SQLite within the checkpoint delay
    while not (rows := gw.query("SELECT identity FROM sessions WHERE protocol = 'ssh'")):
        assert time.monotonic() < deadline, "the session was never recorded"
        time.sleep(0.05)
    assert [r["identity"] for r in rows] == ["alice"]


def test_an_ssh_session_ends_when_its_token_expires(oidc_ssh_gateway: sshgw.SshGateway,
                                                    idp: DemoOidcProvider) -> None:
    gw = oidc_ssh_gateway
    env = gw.env("alice", idp.user_token("alice", lifetime=2))
    out = subprocess.run(gw.ssh_argv("sleep 60; echo never"), env=env, capture_output=True,
                         text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert "never" not in out.stdout and out.returncode != 0
    assert "token expired" in out.stderr
    deadline = time.monotonic() + 20
    while not (rows := gw.query("SELECT end_reason FROM sessions WHERE ended_at IS NOT NULL")):
        assert time.monotonic() < deadline, "the session's end was never recorded"
        time.sleep(0.05)
    assert [r["end_reason"] for r in rows] == ["token expired"]


def test_a_session_ends_when_its_token_expires(oidc_gateway: Gateway,
                                               idp: DemoOidcProvider) -> None:
    info = idp.demo_info()
    token = idp.agent_token(lifetime=2)
    with psycopg.connect(oidc_gateway.dsn(user=info["pg_user"]), password=token,
                         autocommit=True, application_name="short-lived") as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        deadline = time.monotonic() + 30
        with pytest.raises(psycopg.OperationalError, match="token expired"):
            while time.monotonic() < deadline:
                conn.execute("select 1")
                time.sleep(0.2)
    session = oidc_gateway.wait_for(
        lambda store: [s for s in store.sessions()
                       if s["application_name"] == "short-lived" and s["ended_at"]])[0]
    assert session["end_reason"] == "token expired"
