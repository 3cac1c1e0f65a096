"""Kill with a lock-out: the identity's reconnections are refused (PostgreSQL and SSH alike, by
the session core), the lock-out is recorded in the audit chain, listed, lifted, and outlives an
engine restart. Issue 16: a kill alone let psql reconnect at once with the same token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import psycopg
import pytest

from engine.control import Peer
from store import lockouts as stored
from store import verify
from tests.conftest import Gateway, Target, start_gateway, stop_gateway
from tests.integration.guarded import cli_env, operator
from tests.integration.test_recording import run_cli
from tests.sshd import SshdTarget
from tests.sshgw import SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration


def live_session(gateway: Gateway, application: str) -> str:
    with operator(gateway) as client:
        live = client.call("sessions")["live"]
    return str(next(s["id"] for s in live if s["application_name"] == application))


def test_kill_with_a_lockout_keeps_psql_out_until_lifted(gateway: Gateway) -> None:
    env = cli_env(gateway)
    with psycopg.connect(gateway.dsn(application_name="doomed"), autocommit=True) as conn:
        conn.execute("select 1")
        sid = live_session(gateway, "doomed")
        killed = run_cli("kill", sid[:6], "--reason", "runaway", "--lock-out", "30m", env=env)
        assert killed.returncode == 0, killed.stderr
        assert f"session {sid} killed by oncall: runaway" in killed.stdout
        assert "alice kept out of every connection until" in killed.stdout
        with pytest.raises(psycopg.OperationalError, match="locked out of every connection"):
            conn.execute("select 1")
    # The same token at once, on this connection and on another: refused, and said why.
    for connection in ("shop", "shop_masked"):
        with pytest.raises(psycopg.OperationalError,
                           match='identity "alice" is locked out of every connection until'):
            psycopg.connect(gateway.dsn(connection=connection))
    # Others are not locked out.
    with psycopg.connect(gateway.dsn(user="oncall")) as other:
        other.execute("select 1")
    listed = run_cli("lockouts", env=env)
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    lockout_id = line.split()[1].rstrip(":")
    assert "alice kept out of every connection" in line and "by oncall: runaway" in line
    rejected = gateway.wait_for(lambda s: [r for r in s.sessions()
                                           if r["status"] == "rejected"])
    assert rejected[0]["end_reason"] == f"locked out ({lockout_id})"
    # Lifted by a prefix; alice gets in again.
    short = run_cli("unlock", lockout_id[:3], env=env)
    assert short.returncode == 1 and "too short" in short.stderr
    lifted = run_cli("unlock", lockout_id[:6], "--reason", "talked to alice", env=env)
    assert lifted.returncode == 0, lifted.stderr
    assert "alice may connect again" in lifted.stdout
    with psycopg.connect(gateway.dsn()) as again:
        again.execute("select 1")
    assert run_cli("lockouts", env=env).stdout.strip() == "no lock-outs are in force"
    [row] = gateway.wait_for(lambda s: [r for r in stored.lockouts(s) if r["lifted_by"]])
    assert (row["identity"], row["connection"], row["session_id"]) == ("alice", None, sid)
    assert (row["lifted_by"], row["lift_reason"]) == ("oncall", "talked to alice")
    assert gateway.wait_for(lambda s: verify(s).ok)


def test_a_connection_lockout_keeps_the_others_open(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn(application_name="doomed"), autocommit=True) as conn:
        conn.execute("select 1")
        sid = live_session(gateway, "doomed")
        with operator(gateway) as client:
            answer = client.call("kill", session=sid, reason="wrong db", lock_out="5m",
                                 scope="connection")
    assert answer["lockout"]["connection"] == "shop"
    assert answer["lockout"]["scope"] == "connection"
    with pytest.raises(psycopg.OperationalError, match="locked out of connection shop"):
        psycopg.connect(gateway.dsn())
    with psycopg.connect(gateway.dsn(connection="shop_masked")) as elsewhere:
        elsewhere.execute("select 1")


def test_kill_says_what_the_lockout_does_not_end(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn(application_name="doomed"), autocommit=True) as one, \
            psycopg.connect(gateway.dsn(application_name="other"), autocommit=True) as two:
        one.execute("select 1")
        two.execute("select 1")
        sid, other = live_session(gateway, "doomed"), live_session(gateway, "other")
        killed = run_cli("kill", sid, "--lock-out", "1h", env=cli_env(gateway))
        assert killed.returncode == 0, killed.stderr
        assert f"alice still has 1 live session the lock-out does not end: {other}" in (
            killed.stdout)
        two.execute("select 1")  # still on: the operator decides


def test_lockout_requests_that_cannot_be_taken(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn(application_name="doomed"), autocommit=True) as conn:
        conn.execute("select 1")
        sid = live_session(gateway, "doomed")
        env = cli_env(gateway)
        for args, said in (
                (["--lock-out", "soon"], "write it as 30m, 2h, 1h30m, 90s or 1d"),
                (["--lock-out", "90d"], "from 1s to 30d")):
            bad = run_cli("kill", sid, *args, env=env)
            assert bad.returncode == 1 and said in bad.stderr, bad.stderr
        scope = run_cli("kill", sid, "--scope", "connection", env=env)
        assert scope.returncode == 2 and "--scope goes with --lock-out" in scope.stderr
        short = run_cli("kill", sid[:1], env=env)
        assert short.returncode == 1 and "too short: give at least 4" in short.stderr
        conn.execute("select 1")  # none of these killed it


def test_a_lockout_outlives_an_engine_restart(pg_target: Target, tmp_path: Path) -> None:
    gw = start_gateway(pg_target, tmp_path)
    try:
        with psycopg.connect(gw.dsn(application_name="doomed"), autocommit=True) as conn:
            conn.execute("select 1")
            sid = live_session(gw, "doomed")
            with operator(gw) as client:
                client.call("kill", session=sid, lock_out="10m")
    finally:
        stop_gateway(gw)
    gw = start_gateway(pg_target, tmp_path)
    try:
        with pytest.raises(psycopg.OperationalError, match="locked out"):
            psycopg.connect(gw.dsn())
    finally:
        stop_gateway(gw)


@pytest.fixture(scope="module")
def ssh_gw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw"))
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


def ssh_connect(gw: SshGateway) -> asyncssh.connection._ConnectionContext:  # type: ignore[name-defined]
    known = asyncssh.import_known_hosts(gw.host_key_line() + "\n")
    return asyncssh.connect("127.0.0.1", gw.port(), username="alice",
                            password=gw.tokens["alice"], known_hosts=known, client_keys=None,
                            agent_path=None, config=None, preferred_auth="password")


async def test_an_ssh_lockout_is_kept_by_the_session_core(ssh_gw: SshGateway) -> None:
    gw = ssh_gw
    peer = Peer()
    peer.identity = gw.engine.identities.identity("oncall")
    async with ssh_connect(gw) as conn:
        assert (await conn.run("echo in", check=True)).stdout == "in\n"
        [sid] = [s for s, v in gw.engine.live().items()
                 if v.identity and v.identity.name == "alice"]
        answer = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
            gw.engine._kill(peer, {"session": sid, "reason": "runaway", "lock_out": "10m"}),
            gw.loop))
    # OpenSSH's client, as the user would: the disconnect says why.
    refused = await asyncio.create_subprocess_exec(
        *gw.ssh_argv("echo", "in"), env=gw.env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(refused.communicate(), 30)
    assert refused.returncode != 0 and out == b""
    assert b'identity "alice" is locked out of every connection until' in err, err
    deadline = time.monotonic() + 10
    while not gw.query("SELECT 1 FROM sessions WHERE status = 'rejected' AND end_reason = ?",
                       f"locked out ({answer['lockout']['id']})"):
        assert time.monotonic() < deadline, "the refused session was never recorded"
        await asyncio.sleep(0.05)
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
        gw.engine._unlock(peer, {"lockout": answer["lockout"]["id"]}), gw.loop))
    async with ssh_connect(gw) as conn:
        assert (await conn.run("echo back", check=True)).stdout == "back\n"
