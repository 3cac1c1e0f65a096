"""The approvals broker, driven with a real ``Recorder`` on a temporary store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.approvals import ApprovalRequest, Broker, BrokerError, recovery_ops
from engine.guardrail import GuardrailSettings
from engine.guardrail.guard import statement_hash
from engine.identity import Identity
from engine.recorder import Recorder
from store import SqliteStore, open_store

ALICE = Identity("alice", frozenset({"engineering"}))
ONCALL = Identity("oncall", frozenset({"operators"}))
SECOND = Identity("second", frozenset({"operators", "engineering"}))
CAROL = Identity("carol", frozenset())
STATEMENT = "DELETE FROM orders"


class Decisions:
    """An ``on_decided`` callback that remembers each call and can be awaited."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.event = asyncio.Event()

    def __call__(self, req: ApprovalRequest) -> None:
        self.calls.append((req.id, req.status))
        self.event.set()

    async def wait(self) -> None:
        await asyncio.wait_for(self.event.wait(), 5)


class Env:
    def __init__(self, store: SqliteStore, recorder: Recorder) -> None:
        self.store = store
        self.recorder = recorder
        self.brokers: list[Broker] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def broker(self, **settings: Any) -> Broker:
        broker = Broker(self.recorder, GuardrailSettings(**{"review_timeout": 60.0, **settings}))
        broker.listeners.append(lambda event: self.events.append((event.name, event.request)))
        self.brokers.append(broker)
        return broker

    async def ask(self, broker: Broker, decided: Callable[[ApprovalRequest], None],
                  requester: str = "alice", statement: str = STATEMENT) -> ApprovalRequest:
        return await broker.request(
            session_id="s1", requester=requester, connection="shop", statement=statement,
            rule="review-unbounded-writes", reason="DELETE WITHOUT WHERE orders",
            on_decided=decided)

    async def rows(self) -> dict[str, dict[str, Any]]:
        """The approvals table, once everything handed to the recorder is written."""
        await self.recorder.drain()
        return {row["id"]: row for row in self.store.approvals()}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = open_store(tmp_path / "s.db")
    recorder = Recorder(store)
    env = Env(store, recorder)
    try:
        yield env
    finally:
        for broker in env.brokers:
            for req in broker.pending.values():
                if req.timer is not None:
                    req.timer.cancel()
        await recorder.drain()
        recorder.close()
        store.close()


# --- request -------------------------------------------------------------------------------


async def test_request_commits_an_approval_record(env: Env) -> None:
    broker = env.broker(review_timeout=120.0)
    decided = Decisions()
    req = await env.ask(broker, decided)
    # Committed before request() returns: a checkpoint alone brings it into SQLite.
    env.store.checkpoint()
    [row] = env.store.approvals()
    assert row["id"] == req.id
    assert row["session_id"] == "s1"
    assert row["requester"] == "alice"
    assert row["connection"] == "shop"
    assert row["statement"] == STATEMENT
    assert row["statement_hash"] == statement_hash(STATEMENT)
    assert row["rule"] == "review-unbounded-writes"
    assert row["reason"] == "DELETE WITHOUT WHERE orders"
    assert row["status"] == "pending"
    assert row["decided_by"] is None
    assert row["created_at"] < row["expires_at"]
    assert env.store.pending_approvals() == [req.id]
    assert broker.pending == {req.id: req}
    assert req.expires - req.created == pytest.approx(120.0)
    assert req.status == "pending"
    assert decided.calls == []


async def test_request_ids_are_distinct(env: Env) -> None:
    broker = env.broker()
    ids = {(await env.ask(broker, Decisions())).id for _ in range(20)}
    assert len(ids) == 20


# --- who may decide ------------------------------------------------------------------------


async def test_decide_refusals(env: Env) -> None:
    broker = env.broker(min_approvals=2)
    decided = Decisions()
    own = await env.ask(broker, decided, requester="oncall")
    with pytest.raises(BrokerError, match="nobody approves their own request"):
        await broker.decide(own.id, ONCALL, True, None)
    with pytest.raises(BrokerError, match="nobody approves their own request"):
        await broker.decide(own.id, ONCALL, False, "changed my mind")  # nor denies it

    req = await env.ask(broker, decided)
    with pytest.raises(BrokerError, match="alice is not an approver"):
        await broker.decide(req.id, ALICE, True, None)
    with pytest.raises(BrokerError, match="no pending approval request 'a-nope'"):
        await broker.decide("a-nope", ONCALL, True, None)

    await broker.decide(req.id, ONCALL, True, None)
    with pytest.raises(BrokerError, match=f"oncall has already approved {req.id}"):
        await broker.decide(req.id, ONCALL, True, None)

    assert req.status == own.status == "pending"
    assert req.approvers == ["oncall"]
    assert decided.calls == []
    rows = await env.rows()
    assert rows[req.id]["status"] == rows[own.id]["status"] == "pending"


async def test_approvers_by_group_or_identity(env: Env) -> None:
    broker = env.broker(approver_groups=frozenset({"dba"}),
                        approver_identities=frozenset({"carol"}))
    assert broker.may_decide(CAROL)
    assert broker.may_decide(Identity("dave", frozenset({"dba", "x"})))
    assert not broker.may_decide(ONCALL)  # operators are not approvers here
    decided = Decisions()
    req = await env.ask(broker, decided)
    with pytest.raises(BrokerError, match="not an approver"):
        await broker.decide(req.id, ONCALL, True, None)
    await broker.decide(req.id, CAROL, True, "looks fine")
    assert decided.calls == [(req.id, "approved")]


# --- approving and denying -----------------------------------------------------------------


async def test_one_approval_approves(env: Env) -> None:
    broker = env.broker()
    decided = Decisions()
    req = await env.ask(broker, decided)
    result = await broker.decide(req.id, ONCALL, True, "ok")
    assert result is req
    assert req.status == "approved"
    assert (req.decided_by, req.decision_reason) == ("oncall", "ok")
    assert req.id not in broker.pending
    assert decided.calls == [(req.id, "approved")]
    row = (await env.rows())[req.id]
    assert (row["status"], row["approvals"], row["decided_by"], row["decision_reason"]) == (
        "approved", "oncall", "oncall", "ok")
    assert row["decided_at"] is not None


async def test_two_approvals_need_two_distinct_approvers(env: Env) -> None:
    broker = env.broker(min_approvals=2)
    decided = Decisions()
    req = await env.ask(broker, decided)
    await broker.decide(req.id, ONCALL, True, None)
    assert req.status == "pending"
    assert req.approvers == ["oncall"]
    assert decided.calls == []
    row = (await env.rows())[req.id]
    assert (row["status"], row["approvals"], row["decided_at"]) == ("pending", "oncall", None)

    with pytest.raises(BrokerError):
        await broker.decide(req.id, ONCALL, True, None)
    assert req.status == "pending"

    await broker.decide(req.id, SECOND, True, None)
    assert req.status == "approved"
    assert req.approvers == ["oncall", "second"]
    assert decided.calls == [(req.id, "approved")]
    row = (await env.rows())[req.id]
    assert (row["status"], row["approvals"], row["decided_by"]) == (
        "approved", "oncall,second", "second")


@pytest.mark.parametrize("approvals_first", [0, 1])
async def test_deny_ends_it_at_once(env: Env, approvals_first: int) -> None:
    broker = env.broker(min_approvals=2)
    decided = Decisions()
    req = await env.ask(broker, decided)
    if approvals_first:
        await broker.decide(req.id, SECOND, True, None)
    await broker.decide(req.id, ONCALL, False, "not today")
    assert req.status == "denied"
    assert req.decision_reason == "not today"
    assert decided.calls == [(req.id, "denied")]
    assert req.id not in broker.pending
    with pytest.raises(BrokerError, match="no pending approval request"):
        await broker.decide(req.id, SECOND, True, None)
    row = (await env.rows())[req.id]
    assert (row["status"], row["decided_by"], row["decision_reason"]) == (
        "denied", "oncall", "not today")


async def test_on_decided_is_called_exactly_once(env: Env) -> None:
    broker = env.broker(review_timeout=0.05)
    decided = Decisions()
    req = await env.ask(broker, decided)
    await broker.decide(req.id, ONCALL, True, None)
    # Nothing that comes after counts: not another decision, a withdrawal, or the timer.
    with pytest.raises(BrokerError):
        await broker.decide(req.id, SECOND, False, None)
    broker.withdraw(req.id, "client cancelled")
    broker.expire_all("engine stopped")
    await asyncio.sleep(0.15)
    assert decided.calls == [(req.id, "approved")]
    assert req.status == "approved"
    assert (await env.rows())[req.id]["status"] == "approved"


# --- withdraw and expiry -------------------------------------------------------------------


async def test_withdraw_does_not_call_on_decided(env: Env) -> None:
    broker = env.broker(review_timeout=0.05)
    decided = Decisions()
    req = await env.ask(broker, decided)
    broker.withdraw(req.id, "client disconnected")
    assert req.status == "withdrawn"
    assert req.decision_reason == "client disconnected"
    assert req.id not in broker.pending
    await asyncio.sleep(0.15)  # past the review timeout: the timer was cancelled
    assert decided.calls == []
    assert req.status == "withdrawn"
    row = (await env.rows())[req.id]
    assert (row["status"], row["decision_reason"]) == ("withdrawn", "client disconnected")
    broker.withdraw(req.id, "again")  # unknown now: nothing happens
    assert req.decision_reason == "client disconnected"


async def test_expiry_after_the_review_timeout(env: Env) -> None:
    broker = env.broker(review_timeout=0.05)
    decided = Decisions()
    req = await env.ask(broker, decided)
    assert req.status == "pending"
    await decided.wait()
    assert decided.calls == [(req.id, "expired")]
    assert req.status == "expired"
    assert req.decision_reason == "no decision within 0.05 s"
    assert req.id not in broker.pending
    with pytest.raises(BrokerError, match="no pending approval request"):
        await broker.decide(req.id, ONCALL, True, None)
    row = (await env.rows())[req.id]
    assert (row["status"], row["decision_reason"], row["decided_by"]) == (
        "expired", "no decision within 0.05 s", None)
    await asyncio.sleep(0.1)
    assert len(decided.calls) == 1


async def test_a_vote_does_not_stop_the_clock(env: Env) -> None:
    broker = env.broker(review_timeout=0.1, min_approvals=2)
    decided = Decisions()
    req = await env.ask(broker, decided)
    await broker.decide(req.id, ONCALL, True, None)
    await decided.wait()
    assert decided.calls == [(req.id, "expired")]
    assert req.approvers == ["oncall"]


async def test_expire_all(env: Env) -> None:
    broker = env.broker()
    first, second = Decisions(), Decisions()
    a = await env.ask(broker, first)
    b = await env.ask(broker, second)
    broker.expire_all("engine stopped")
    assert broker.pending == {}
    assert first.calls == [(a.id, "expired")]
    assert second.calls == [(b.id, "expired")]
    rows = await env.rows()
    assert {rows[a.id]["status"], rows[b.id]["status"]} == {"expired"}
    assert rows[a.id]["decision_reason"] == "engine stopped"


# --- events --------------------------------------------------------------------------------


async def test_listeners_receive_requested_vote_and_decided(env: Env) -> None:
    broker = env.broker(min_approvals=2)
    req = await env.ask(broker, Decisions())
    await broker.decide(req.id, ONCALL, True, None)
    await broker.decide(req.id, SECOND, True, "fine")
    assert [event for event, _ in env.events] == [
        "approval.requested", "approval.vote", "approval.decided"]
    requested, vote, final = (body for _, body in env.events)
    assert requested["id"] == vote["id"] == final["id"] == req.id
    assert requested["status"] == "pending"
    assert requested["statement"] == STATEMENT
    assert requested["requester"] == "alice"
    assert requested["approvals"] == []
    assert vote["approvals"] == ["oncall"]
    assert final["status"] == "approved"
    assert final["approvals"] == ["oncall", "second"]
    assert (final["decided_by"], final["decision_reason"]) == ("second", "fine")


@pytest.mark.parametrize("end", ["withdraw", "expire", "deny"])
async def test_every_ending_is_announced(env: Env, end: str) -> None:
    broker = env.broker(review_timeout=0.05 if end == "expire" else 60.0)
    decided = Decisions()
    req = await env.ask(broker, decided)
    if end == "withdraw":
        broker.withdraw(req.id, "cancel")
    elif end == "expire":
        await decided.wait()
    else:
        await broker.decide(req.id, ONCALL, False, None)
    event, body = env.events[-1]
    assert event == "approval.decided"
    assert body["status"] == {"withdraw": "withdrawn", "expire": "expired", "deny": "denied"}[end]
    assert [e for e, _ in env.events].count("approval.decided") == 1


# --- recovery ------------------------------------------------------------------------------


async def test_recovery_ops_expire_what_a_previous_run_left_pending(env: Env) -> None:
    broker = env.broker()
    left = [await env.ask(broker, Decisions()) for _ in range(2)]
    done = await env.ask(broker, Decisions())
    await broker.decide(done.id, ONCALL, True, None)
    await env.recorder.drain()
    stale = env.store.pending_approvals()
    assert sorted(stale) == sorted(r.id for r in left)

    assert recovery_ops([]) == []
    await env.recorder.committed(recovery_ops(stale))
    rows = await env.rows()
    for req in left:
        assert rows[req.id]["status"] == "expired"
        assert rows[req.id]["decision_reason"] == "engine restarted"
        assert rows[req.id]["decided_at"] is not None
    assert rows[done.id]["status"] == "approved"
    assert env.store.pending_approvals() == []


# --- known bugs ----------------------------------------------------------------------------


async def test_simultaneous_approve_and_deny_agree_with_the_record(env: Env) -> None:
    broker = env.broker()
    decided = Decisions()
    req = await env.ask(broker, decided)
    await asyncio.gather(broker.decide(req.id, ONCALL, True, None),
                         broker.decide(req.id, SECOND, False, None), return_exceptions=True)
    assert len(decided.calls) == 1
    row = (await env.rows())[req.id]
    assert row["status"] == req.status


async def test_simultaneous_approvals_both_count(env: Env) -> None:
    broker = env.broker(min_approvals=2)
    decided = Decisions()
    req = await env.ask(broker, decided)
    await asyncio.gather(broker.decide(req.id, ONCALL, True, None),
                         broker.decide(req.id, SECOND, True, None), return_exceptions=True)
    assert sorted(req.approvers) == ["oncall", "second"]
    assert decided.calls == [(req.id, "approved")]
