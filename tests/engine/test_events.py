"""``EventHub``: live events for subscribers, published without ever blocking the engine."""

from __future__ import annotations

import asyncio

import pytest

import engine.events as events_module
from engine.events import (
    QUEUE_LIMIT,
    ApprovalDecided,
    ApprovalRequested,
    Dropped,
    EventHub,
    SessionClosed,
    SessionOpened,
    SessionView,
    StatementFinished,
    Unknown,
    decode,
)


async def test_publish_without_subscribers_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = EventHub()
    assert not hub.active

    def no_clock() -> float:
        raise AssertionError("an event was built while nobody listens")

    monkeypatch.setattr(events_module.time, "time", no_clock)
    hub.publish(ApprovalRequested({"id": "a1"}))
    monkeypatch.undo()

    sub = hub.subscribe()  # a later subscriber does not get what went before
    assert hub.active
    assert not sub.events
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sub.next_batch(), 0.05)


async def test_subscriber_gets_the_event() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    hub.publish(ApprovalDecided({"id": "a1", "status": "approved"}))
    batch, dropped = await asyncio.wait_for(sub.next_batch(), 1)
    assert dropped == 0
    [event] = batch
    assert event["event"] == "approval.decided"
    assert event["data"] == {"id": "a1", "status": "approved"}
    assert isinstance(event["at"], float)


async def test_every_subscriber_gets_every_event_until_it_unsubscribes() -> None:
    hub = EventHub()
    first, second = hub.subscribe(), hub.subscribe()
    hub.publish(Dropped(1))
    hub.unsubscribe(second)
    hub.publish(Dropped(2))
    batch, _ = await asyncio.wait_for(first.next_batch(), 1)
    assert [e["data"]["count"] for e in batch] == [1, 2]
    batch, _ = await asyncio.wait_for(second.next_batch(), 1)
    assert [e["data"]["count"] for e in batch] == [1]
    hub.unsubscribe(first)
    assert not hub.active
    hub.unsubscribe(first)  # twice is harmless


async def test_next_batch_waits_and_returns_events_in_order() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    waiting = asyncio.ensure_future(sub.next_batch())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    for n in range(5):
        hub.publish(Dropped(n))
    batch, dropped = await asyncio.wait_for(waiting, 1)
    assert [e["data"]["count"] for e in batch] == [0, 1, 2, 3, 4]
    assert dropped == 0
    # The batch took everything: the next call waits for new events.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sub.next_batch(), 0.05)
    hub.publish(Dropped(5))
    batch, _ = await asyncio.wait_for(sub.next_batch(), 1)
    assert [e["data"]["count"] for e in batch] == [5]


async def test_slow_subscriber_keeps_the_newest_and_counts_the_dropped() -> None:
    hub = EventHub()
    slow, fast = hub.subscribe(), hub.subscribe()
    extra = 7
    for n in range(QUEUE_LIMIT + extra):
        hub.publish(Dropped(n))
        if n == 0:
            await asyncio.wait_for(fast.next_batch(), 1)  # fast keeps up with the first one
    assert len(slow.events) == QUEUE_LIMIT  # bounded while nobody reads
    batch, dropped = await asyncio.wait_for(slow.next_batch(), 1)
    assert len(batch) == QUEUE_LIMIT
    assert dropped == extra
    assert [e["data"]["count"] for e in batch] == list(range(extra, QUEUE_LIMIT + extra))
    # Each subscriber is bounded on its own.
    batch, dropped = await asyncio.wait_for(fast.next_batch(), 1)
    assert len(batch) == QUEUE_LIMIT
    assert dropped == extra - 1
    # The count is reported once, then starts again.
    hub.publish(Dropped(-1))
    batch, dropped = await asyncio.wait_for(slow.next_batch(), 1)
    assert ([e["data"]["count"] for e in batch], dropped) == ([-1], 0)



VIEW = SessionView(id="s1", protocol="ssh", connection="box", identity="alice",
                   identity_kind="human", identity_vendor=None, client_addr="127.0.0.1:5",
                   application_name="SSH-2.0-OpenSSH_9", database=None, target="u@h:22",
                   started_at="2026-12-05T00:00:00Z", statements=2, waiting_for=None,
                   masked={"pii:email": 1}, channels=1, recorded_bytes=10)


@pytest.mark.parametrize("event", [
    SessionOpened(VIEW),
    SessionClosed("s1", "killed", "killed by bob", {"pii:email/recorded": 2}),
    StatementFinished("s1", 3, "ok", 10, None, None, {}),
    ApprovalRequested({"id": "a1", "statement": "DELETE FROM t"}),
])
def test_an_event_comes_back_from_the_wire_as_its_own_type(event: object) -> None:
    import json

    from engine.events import Event

    assert isinstance(event, Event)
    line = json.loads(json.dumps(event.to_wire(1.5)))
    assert line["event"] == event.name and line["at"] == 1.5
    assert decode(line) == event


def test_the_session_opened_event_carries_the_session_flat() -> None:
    assert SessionOpened(VIEW).to_wire(0)["data"]["identity"] == "alice"


@pytest.mark.parametrize("line", [
    {"event": "session.rebooted", "data": {"id": "s1"}},
    {"event": "session.closed", "data": {"id": "s1"}},  # fields missing
    {"event": "statement.finished", "data": "not an object"},
    {},
])
def test_what_is_not_a_known_event_is_unknown_never_guessed(line: dict[str, object]) -> None:
    assert isinstance(decode(line), Unknown)
