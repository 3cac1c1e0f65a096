"""Live events for control-API subscribers (the TUI): published without ever blocking.

Each subscriber has a bounded queue. When a subscriber reads too slowly its oldest events are
dropped and the next event it gets says how many it missed, so that a stuck TUI can never
stall a session or the engine. Publishers check ``active`` first, so that no event is even
built while nobody listens.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

QUEUE_LIMIT = 1000


class Subscriber:
    def __init__(self) -> None:
        self.events: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self.ready = asyncio.Event()

    def push(self, event: dict[str, Any]) -> None:
        if len(self.events) >= QUEUE_LIMIT:
            self.events.popleft()
            self.dropped += 1
        self.events.append(event)
        self.ready.set()

    async def next_batch(self) -> tuple[list[dict[str, Any]], int]:
        await self.ready.wait()
        self.ready.clear()
        batch = list(self.events)
        self.events.clear()
        dropped, self.dropped = self.dropped, 0
        return batch, dropped


class EventHub:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        body = {"event": event, "at": time.time(), "data": data}
        for sub in self._subscribers:
            sub.push(body)
