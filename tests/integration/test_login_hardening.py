"""Logins that an attacker drives (found by an outside review of the session core):

- an SSH client that sends its next password guess before the answer to the last one still has
  every guess counted, and is disconnected at the connection's ``login_attempts``;
- a failed SSH login is recorded as a rejected session, as a failed PostgreSQL login is;
- a PostgreSQL client waiting for just-in-time access is a live session (listed, killable), and
  what it pipelines meanwhile is not read without bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncssh
import pytest
from asyncssh.constants import MSG_USERAUTH_REQUEST
from asyncssh.packet import Boolean, String

from engine.pg import codec
from engine.pg.connection import PgConnection
from engine.pg.side import HANDSHAKE_BUFFER
from tests.conftest import Gateway
from tests.integration.guarded import wait_for_request
from tests.integration.wire import Wire
from tests.sshd import SshdTarget
from tests.sshgw import SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration


@pytest.fixture
def sshgw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshhard"))
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


async def test_guesses_sent_early_are_all_counted(sshgw: SshGateway) -> None:
    right = sshgw.tokens["alice"]
    guesses = [f"wrong-{i}" for i in range(40)] + [right]

    class Guesser(asyncssh.SSHClient):
        def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
            self.conn = conn

        async def password_auth_requested(self) -> str | None:
            for guess in guesses:  # each one without waiting for the answer to the last
                self.conn.send_packet(MSG_USERAUTH_REQUEST, String("alice"),
                                      String("ssh-connection"), String("password"),
                                      Boolean(False), String(guess))
                await asyncio.sleep(0.005)
            return None

    known = asyncssh.import_known_hosts(sshgw.host_key_line() + "\n")
    with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError, OSError)):
        conn, _ = await asyncio.wait_for(asyncssh.create_connection(
            Guesser, "127.0.0.1", sshgw.port(), username="alice", known_hosts=known,
            preferred_auth=["password"], client_keys=None, agent_path=None, config=None), 60)
        conn.close()  # logged in: the guard was walked around
    assert sshgw.engine.sessions is not None
    assert sshgw.engine.sessions.throttle.failures("127.0.0.1") >= 3


def test_a_failed_ssh_login_is_recorded(sshgw: SshGateway) -> None:
    import subprocess

    result = subprocess.run(sshgw.ssh_argv("echo no"), env=sshgw.env(token="not-it"),
                            input=b"", capture_output=True, timeout=60)
    assert result.returncode == 255
    deadline = time.monotonic() + 10
    while not (rows := sshgw.query("SELECT identity, status, end_reason FROM sessions"
                                   " WHERE status = 'rejected'")):
        assert time.monotonic() < deadline, "the failed login was not recorded"
        time.sleep(0.05)
    assert (rows[0]["identity"], rows[0]["end_reason"]) == ("alice", "authentication failed")


def test_a_session_waiting_for_access_is_live_and_can_be_killed(guarded: Gateway) -> None:
    import subprocess

    client = subprocess.Popen(["psql", "-X", "-At", "-d", guarded.dsn("shop_jit"), "-c",
                               "select 'in'"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    request = wait_for_request(guarded)
    [session] = [s for s in guarded.engine.live().values() if s.conn.name == "shop_jit"]
    assert session.describe().waiting_for == request["id"]
    from engine.control import Peer

    peer = Peer()
    peer.identity = guarded.engine.identities.identity("oncall")
    guarded.call(guarded.engine._kill(peer, {"session": session.id, "reason": "not now"}))
    out, err = client.communicate(timeout=30)
    assert out.strip() != "in" and "not now" in err
    assert request["id"] not in (guarded.engine.broker.pending if guarded.engine.broker else {})


def test_what_a_client_pipelines_before_access_is_not_read_without_bound(
        guarded: Gateway) -> None:
    wire = Wire(guarded.port("shop_jit"))
    wire.send(codec.startup_message({"user": "alice", "database": "shop"}))
    wire.recv()  # the password request
    wire.send(codec.password_message(guarded.tokens["alice"].encode() + b"\x00"))
    wait_for_request(guarded)
    query = b"Q" + (4 + 1 << 20).to_bytes(4, "big") + b"-" * ((1 << 20) - 1) + b"\x00"
    wire.sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 10
    moved = time.monotonic()
    # the gateway stops reading: sends stall (a second without progress ends the attempt)
    while sent < 64 << 20 and time.monotonic() < deadline and time.monotonic() - moved < 1:
        try:
            sent += wire.sock.send(query)
            moved = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
    [session] = [s for s in guarded.engine.live().values() if s.conn.name == "shop_jit"]
    assert isinstance(session.transport, PgConnection)
    assert session.transport.client.buffered <= HANDSHAKE_BUFFER + (1 << 20)
    assert sent < 64 << 20
    wire.sock.close()

