"""Just-in-time access over SSH: a connection that opens only with an approval holds the session
(nothing reaches the target) until an operator approves; a denial ends it; a grant lets the same
identity in again without asking; a client that leaves while it waits withdraws the request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncssh
import pytest

from engine.approvals import ApprovalRequest
from tests.sshd import SshdTarget
from tests.sshgw import SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration


@pytest.fixture
def gw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshjit"))
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


class Client(asyncssh.SSHClient):
    """Remembers why the gateway hung up (the disconnect's reason)."""

    def __init__(self) -> None:
        self.lost: Exception | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc


def connect(gw: SshGateway, user: str = "alice",
            client: Client | None = None) -> asyncssh.connection._ConnectionContext:  # type: ignore[name-defined]
    known = asyncssh.import_known_hosts(gw.host_key_line("web_jit") + "\n")
    return asyncssh.connect("127.0.0.1", gw.port("web_jit"), username=user,
                            password=gw.tokens[user], known_hosts=known, client_keys=None,
                            agent_path=None, config=None, preferred_auth="password",
                            client_factory=(lambda: client) if client else None)


async def pending(gw: SshGateway) -> ApprovalRequest:
    deadline = time.monotonic() + 10
    while True:
        assert gw.engine.broker is not None
        waiting = list(gw.engine.broker.pending.values())
        if waiting:
            return waiting[0]
        assert time.monotonic() < deadline, "no approval request appeared"
        await asyncio.sleep(0.05)


async def channel_open(gw: SshGateway) -> None:
    from engine.ssh.session import SshSession

    deadline = time.monotonic() + 10
    while not any(isinstance(s.transport, SshSession) and s.transport.bridges
                  for s in gw.engine.live().values() if s.conn.name == "web_jit"):
        assert time.monotonic() < deadline, "the client's channel never opened"
        await asyncio.sleep(0.02)


def decide(gw: SshGateway, request: ApprovalRequest, approve: bool, reason: str | None) -> None:
    oncall = gw.engine.identities.identity("oncall")
    assert oncall is not None and gw.engine.broker is not None
    gw.call(gw.engine.broker.decide(request.id, oncall, approve, reason))


def sessions_on(gw: SshGateway) -> list[dict[str, object]]:
    return gw.query("SELECT id, status, end_reason FROM sessions WHERE connection = 'web_jit'"
                    " ORDER BY started_at")


async def test_the_session_waits_for_access_then_runs(gw: SshGateway) -> None:
    async with connect(gw) as conn:
        run = asyncio.ensure_future(conn.run("echo jit-ran", check=False))
        request = await pending(gw)
        assert request.rule == "access-approval"
        assert request.statement.startswith("-- open sessions on web_jit as alice for 1 min")
        assert gw.query("SELECT count(*) AS n FROM statements s JOIN sessions x"
                        " ON x.id = s.session_id WHERE x.connection = 'web_jit'")[0]["n"] == 0
        assert not run.done()  # nothing reached the target while it waited
        decide(gw, request, True, None)
        result = await asyncio.wait_for(run, 20)
        assert result.stdout == "jit-ran\n"
        assert f"request {request.id} is waiting for an operator" in str(result.stderr)
    # The grant lets alice in again without a new request.
    async with connect(gw) as conn:
        result = await asyncio.wait_for(conn.run("echo again", check=False), 20)
        assert result.stdout == "again\n"
    assert gw.engine.broker is not None and not gw.engine.broker.pending


async def test_a_denied_session_never_reaches_the_target(gw: SshGateway) -> None:
    client = Client()
    async with connect(gw, client=client) as conn:
        run = asyncio.ensure_future(conn.run("echo must-not-run", check=False))
        request = await pending(gw)
        await channel_open(gw)  # so that the reason can be said on it (else: the disconnect)
        decide(gw, request, False, "use the staging host")
        try:
            result = await asyncio.wait_for(run, 20)
            told = str(result.stderr)
            assert "must-not-run" not in str(result.stdout)
        except (asyncssh.Error, OSError):  # the disconnect came before the channel opened
            await asyncio.wait_for(conn.wait_closed(), 10)
            told = str(client.lost)  # the disconnect says why
        assert "access to connection web_jit denied by oncall: use the staging host" in told
    deadline = time.monotonic() + 10
    while not (rows := sessions_on(gw)) or rows[-1]["status"] == "open":
        assert time.monotonic() < deadline, "the session's end was never recorded"
        await asyncio.sleep(0.05)
    assert rows[-1]["end_reason"] == "access denied"
    assert gw.query("SELECT count(*) AS n FROM statements WHERE session_id = ?",
                    rows[-1]["id"])[0]["n"] == 0


async def test_leaving_while_waiting_withdraws_the_request(gw: SshGateway) -> None:
    conn = await connect(gw)
    run = asyncio.ensure_future(conn.run("echo never", check=False))
    request = await pending(gw)
    conn.close()
    run.cancel()
    deadline = time.monotonic() + 10
    assert gw.engine.broker is not None
    while request.id in gw.engine.broker.pending:
        assert time.monotonic() < deadline, "the request was never withdrawn"
        await asyncio.sleep(0.05)
    assert request.status == "withdrawn"
