"""``EventHub``: live events for subscribers, published without ever blocking the engine."""

from __future__ import annotations

import asyncio

import pytest

import engine.events as events_module
from engine.events import QUEUE_LIMIT, EventHub


async def test_publish_without_subscribers_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = EventHub()
    assert not hub.active

    def no_clock() -> float:
        raise AssertionError("an event was built while nobody listens")

    monkeypatch.setattr(events_module.time, "time", no_clock)
    hub.publish("approval.requested", {"id": "a1"})
    monkeypatch.undo()

    sub = hub.subscribe()  # a later subscriber does not get what went before
    assert hub.active
    assert not sub.events
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sub.next_batch(), 0.05)


async def test_subscriber_gets_the_event() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    hub.publish("approval.decided", {"id": "a1", "status": "approved"})
    batch, dropped = await asyncio.wait_for(sub.next_batch(), 1)
    assert dropped == 0
    [event] = batch
    assert event["event"] == "approval.decided"
    assert event["data"] == {"id": "a1", "status": "approved"}
    assert isinstance(event["at"], float)


async def test_every_subscriber_gets_every_event_until_it_unsubscribes() -> None:
    hub = EventHub()
    first, second = hub.subscribe(), hub.subscribe()
    hub.publish("e", {"n": 1})
    hub.unsubscribe(second)
    hub.publish("e", {"n": 2})
    batch, _ = await asyncio.wait_for(first.next_batch(), 1)
    assert [e["data"]["n"] for e in batch] == [1, 2]
    batch, _ = await asyncio.wait_for(second.next_batch(), 1)
    assert [e["data"]["n"] for e in batch] == [1]
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
        hub.publish("e", {"n": n})
    batch, dropped = await asyncio.wait_for(waiting, 1)
    assert [e["data"]["n"] for e in batch] == [0, 1, 2, 3, 4]
    assert dropped == 0
    # The batch took everything: the next call waits for new events.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sub.next_batch(), 0.05)
    hub.publish("e", {"n": 5})
    batch, _ = await asyncio.wait_for(sub.next_batch(), 1)
    assert [e["data"]["n"] for e in batch] == [5]


async def test_slow_subscriber_keeps_the_newest_and_counts_the_dropped() -> None:
    hub = EventHub()
    slow, fast = hub.subscribe(), hub.subscribe()
    extra = 7
    for n in range(QUEUE_LIMIT + extra):
        hub.publish("e", {"n": n})
        if n == 0:
            await asyncio.wait_for(fast.next_batch(), 1)  # fast keeps up with the first one
    assert len(slow.events) == QUEUE_LIMIT  # bounded while nobody reads
    batch, dropped = await asyncio.wait_for(slow.next_batch(), 1)
    assert len(batch) == QUEUE_LIMIT
    assert dropped == extra
    assert [e["data"]["n"] for e in batch] == list(range(extra, QUEUE_LIMIT + extra))
    # Each subscriber is bounded on its own.
    batch, dropped = await asyncio.wait_for(fast.next_batch(), 1)
    assert len(batch) == QUEUE_LIMIT
    assert dropped == extra - 1
    # The count is reported once, then starts again.
    hub.publish("e", {"n": -1})
    batch, dropped = await asyncio.wait_for(slow.next_batch(), 1)
    assert ([e["data"]["n"] for e in batch], dropped) == ([-1], 0)

