"""The protocol-neutral session core, driven as a conversation through a recording transport,
with a real ``Recorder`` on a temporary store (no sockets): admission, just-in-time access,
records, masking of texts, approvals, events and termination."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.approvals import Broker
from engine.config import Config, load_config
from engine.events import EventHub, SessionClosed, SessionOpened, SessionWaiting
from engine.guardrail import Guard
from engine.identity import CombinedIdentities, Identity
from engine.masking.policy import masking_key
from engine.recorder import Recorder
from engine.session import AccessRefused, Session, SessionContext, may_use
from store import SqliteStore, open_store

POLICY = """\
version: 1
engine:
  store: {work}/store.db
  control_socket: {work}/control.sock
guardrails:
  approvers: {{groups: [operators]}}
identities:
  - {{name: alice, groups: [engineering], token_env: GWCORE_TOKEN}}
  - {{name: bob, groups: [marketing], token_env: GWCORE_TOKEN}}
  - {{name: oncall, groups: [operators], token_env: GWCORE_TOKEN}}
masking:
  - name: personal-data
    detect: [email]
    strategy: partial
    keep_last: 4
connections:
  - name: shop
    kind: postgres
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: 5432, user: gw, sslmode: disable}}
    databases: [shop]
    allow: {{groups: [engineering]}}
  - name: box
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: 22, user: deploy, password_env: GWCORE_TOKEN,
               known_hosts: {work}/known_hosts}}
    access: {{approval: true, grant: 1m}}
    allow: {{identities: [alice]}}
"""

ALICE = Identity("alice", frozenset({"engineering"}))
BOB = Identity("bob", frozenset({"marketing"}))
ONCALL = Identity("oncall", frozenset({"operators"}))


class Client:
    """A ``Transport`` that remembers what the core did to it."""

    def __init__(self) -> None:
        self.told: list[str] = []
        self.refused: list[tuple[str, bool]] = []
        self.closed: list[str] = []

    def tell(self, message: str) -> None:
        self.told.append(message)

    def refuse(self, message: str, *, denied: bool = False) -> None:
        self.refused.append((message, denied))

    def close(self, reason: str) -> Awaitable[None] | None:
        self.closed.append(reason)
        return None

    def details(self) -> dict[str, Any]:
        return {"statements": 7}


@dataclass
class Env:
    config: Config
    store: SqliteStore
    ctx: SessionContext
    events: list[Any]

    def session(self, connection: str, database: str | None = None) -> tuple[Session, Client]:
        conn = next(c for c in self.config.connections if c.name == connection)
        client = Client()
        return Session(self.ctx, conn, client, protocol=conn.kind, client_addr="10.0.0.5:4000",
                       database=database), client

    async def rows(self, table: str) -> list[dict[str, Any]]:
        await self.ctx.recorder.drain()
        return list(self.store.db.query(f"SELECT * FROM {table}"))


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setenv("GWCORE_TOKEN", "t0ken-for-tests")
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY.format(work=tmp_path))
    (tmp_path / "known_hosts").write_text("")
    config = load_config(path)
    store = open_store(tmp_path / "store.db")
    recorder = Recorder(store)
    hub = EventHub()
    sub = hub.subscribe()
    ctx = SessionContext(
        settings=config.engine, identities=CombinedIdentities.from_config(config),
        recorder=recorder, guard=Guard(config.rules, config.guardrails),
        broker=Broker(recorder, config.guardrails), events=hub,
        masking_rules=config.masking, masking_key=masking_key(None))
    seen: list[Any] = []
    sub.push = lambda body: seen.append(body)  # type: ignore[method-assign]
    try:
        yield Env(config, store, ctx, seen)
    finally:
        for req in ctx.broker.pending.values():
            if req.timer is not None:
                req.timer.cancel()
        await recorder.drain()
        recorder.close()
        store.close()


def names(env: Env) -> list[str]:
    return [e["event"] for e in env.events]


# --- admission -----------------------------------------------------------------------------


async def test_an_identity_outside_the_allow_list_is_refused(env: Env) -> None:
    session, _ = env.session("shop", "shop")
    assert session.admit(BOB) == 'identity "bob" may not use connection "shop"'
    assert session.guard is None and session.masking is None


async def test_a_database_the_connection_does_not_allow_is_refused(env: Env) -> None:
    conn = next(c for c in env.config.connections if c.name == "shop")
    assert may_use(conn, ALICE, "postgres") == 'connection "shop" does not allow database ' \
                                               '"postgres"'
    assert may_use(conn, ALICE, "shop") is None


async def test_a_rejected_login_is_recorded_open_and_closed_at_once(env: Env) -> None:
    session, _ = env.session("shop", "shop")
    await session.record_open(user="mallory", rejected="authentication failed")
    [row] = await env.rows("sessions")
    assert (row["identity"], row["status"], row["end_reason"]) == (
        "mallory", "rejected", "authentication failed")
    assert session.ended and not session.recorded


# --- life and termination ------------------------------------------------------------------


async def test_a_session_goes_live_and_terminate_ends_it_once(env: Env) -> None:
    session, client = env.session("shop", "shop")
    assert session.admit(ALICE) is None
    await session.record_open()
    session.go_live()
    assert env.ctx.live == {session.id: session}
    view = session.describe()
    assert (view.identity, view.connection, view.statements) == ("alice", "shop", 7)
    session.terminate("killed by oncall: runaway", "ended by operator oncall", "killed")
    session.terminate("again", "again")
    assert client.refused == [("ended by operator oncall", False)]
    assert client.closed == ["killed by oncall: runaway"]
    assert env.ctx.live == {}
    [row] = await env.rows("sessions")
    assert (row["status"], row["end_reason"]) == ("killed", "killed by oncall: runaway")
    assert names(env) == [SessionOpened.name, SessionClosed.name]


async def test_a_session_that_ends_while_its_open_record_commits_is_still_closed(
        env: Env) -> None:
    session, _ = env.session("shop", "shop")
    session.admit(ALICE)
    opening = asyncio.ensure_future(session.record_open())
    await asyncio.sleep(0)
    session.end("client disconnected")
    await opening
    [row] = await env.rows("sessions")
    assert (row["status"], row["end_reason"]) == ("closed", "client disconnected")


async def test_statements_still_running_at_the_end_are_recorded_interrupted(env: Env) -> None:
    session, _ = env.session("shop", "shop")
    session.admit(ALICE)
    await session.record_open()
    op = session.statement_record(1, "select pg_sleep(60)")
    await env.ctx.recorder.committed([op])
    session.running(op)
    session.end("upstream lost")
    [row] = await env.rows("statements")
    assert (row["status"], row["error"]) == ("interrupted", "session ended: upstream lost")


# --- masking of texts ----------------------------------------------------------------------


async def test_recorded_texts_are_masked_and_counted(env: Env) -> None:
    session, _ = env.session("shop", "shop")
    session.admit(ALICE)
    await session.record_open()
    record = session.statement_record(1, "select 'jane.doe@example.com'",
                                      params="'ops@example.org'")
    assert record.text is not None and record.params is not None
    assert "jane.doe@example.com" not in record.text
    assert "ops@example.org" not in record.params
    assert session.masked == {"personal-data:email/recorded": 2}
    assert session.mask_text("x@example.com", count=False) != "x@example.com"
    assert session.masked == {"personal-data:email/recorded": 2}  # a showing is not counted


# --- just-in-time access -------------------------------------------------------------------


async def access_request(env: Env, session: Session) -> tuple[asyncio.Future[None], str]:
    waiting = asyncio.ensure_future(session.access())
    for _ in range(200):
        if env.ctx.broker.pending:
            return waiting, next(iter(env.ctx.broker.pending))
        await asyncio.sleep(0.01)
    raise AssertionError("no access request")


async def test_access_waits_for_an_approval_and_the_grant_lets_the_identity_in_again(
        env: Env) -> None:
    session, client = env.session("box")
    session.admit(ALICE)
    await session.record_open()
    waiting, request_id = await access_request(env, session)
    assert client.told == [f"connection box needs an approval before a session opens: request "
                           f"{request_id} is waiting for an operator (gatewatch approve "
                           f"{request_id})"]
    assert session.describe().waiting_for == request_id
    assert SessionWaiting.name in names(env)
    await env.ctx.broker.decide(request_id, ONCALL, True, None)
    await asyncio.wait_for(waiting, 5)
    assert session.waiting == [] and not session.ended
    again, _ = env.session("box")
    again.admit(ALICE)
    await asyncio.wait_for(again.access(), 1)  # no request: the grant holds
    assert not env.ctx.broker.pending


async def test_access_denied_ends_the_session_and_says_why(env: Env) -> None:
    session, client = env.session("box")
    session.admit(ALICE)
    await session.record_open()
    waiting, request_id = await access_request(env, session)
    await env.ctx.broker.decide(request_id, ONCALL, False, "not tonight")
    with pytest.raises(AccessRefused, match="denied by oncall: not tonight"):
        await asyncio.wait_for(waiting, 5)
    assert client.refused == [("access to connection box denied by oncall: not tonight", True)]
    [row] = await env.rows("sessions")
    assert (row["status"], row["end_reason"]) == ("closed", "access denied")


async def test_a_client_leaving_while_access_waits_withdraws_the_request(env: Env) -> None:
    session, _ = env.session("box")
    session.admit(ALICE)
    await session.record_open()
    waiting, request_id = await access_request(env, session)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert request_id not in env.ctx.broker.pending
    [row] = await env.rows("approvals")
    assert row["status"] == "withdrawn"


async def test_no_approval_is_asked_on_a_connection_without_access_control(env: Env) -> None:
    session, client = env.session("shop", "shop")
    session.admit(ALICE)
    await session.access()
    assert client.told == [] and not env.ctx.broker.pending


async def test_a_session_ended_while_access_waits_does_not_wait_forever(env: Env) -> None:
    session, _ = env.session("box")
    session.admit(ALICE)
    await session.record_open()
    waiting, request_id = await access_request(env, session)
    session.terminate("killed by oncall: no", "ended by operator oncall")
    with pytest.raises(AccessRefused, match="withdrawn"):
        await asyncio.wait_for(waiting, 5)  # the withdrawal reaches the waiter
    assert request_id not in env.ctx.broker.pending
