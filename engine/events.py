"""Live events for control-API subscribers (the TUI): typed, and published without ever blocking.

Each kind of event is a frozen dataclass whose wire name is its class's ``name``; the control
socket carries ``{"event": name, "at": t, "data": {...fields}}`` lines, and ``decode`` turns a
line back into the same type, so that the TUI matches on types, never on strings.

Each subscriber has a bounded queue. When a subscriber reads too slowly its oldest events are
dropped and the next batch it gets says how many it missed, so that a stuck TUI can never stall
a session or the engine. Publishers check ``active`` first, so that no event is even built
while nobody listens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

QUEUE_LIMIT = 1000


@dataclass(frozen=True)
class SessionView:
    """What the control API shows of a live session, PostgreSQL or SSH."""

    id: str
    protocol: str
    connection: str
    identity: str | None
    identity_kind: str | None
    identity_vendor: str | None
    client_addr: str
    application_name: str | None
    database: str | None
    target: str | None
    started_at: str
    statements: int
    waiting_for: str | None
    masked: dict[str, int] = field(default_factory=dict)
    transaction_status: str | None = None  # PostgreSQL
    channels: int | None = None  # SSH
    recorded_bytes: int | None = None  # SSH

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Event:
    name: ClassVar[str] = ""

    def data(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_wire(self, at: float) -> dict[str, Any]:
        return {"event": self.name, "at": at, "data": self.data()}


@dataclass(frozen=True)
class SessionOpened(Event):
    name: ClassVar[str] = "session.opened"
    session: SessionView

    def data(self) -> dict[str, Any]:
        return self.session.to_dict()  # the wire carries the session's fields flat


@dataclass(frozen=True)
class SessionClosed(Event):
    name: ClassVar[str] = "session.closed"
    id: str
    status: str
    reason: str
    masked: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionWaiting(Event):
    """A session's statement or command (or the session itself) waits for an approval."""

    name: ClassVar[str] = "session.waiting"
    id: str
    approval: str


@dataclass(frozen=True)
class StatementStarted(Event):
    name: ClassVar[str] = "statement.started"
    session: str
    seq: int
    text: str | None  # as recorded: masked
    protocol: str
    verdict: str
    rule: str | None
    approval: str | None


@dataclass(frozen=True)
class StatementFinished(Event):
    name: ClassVar[str] = "statement.finished"
    session: str
    seq: int
    status: str
    rows: int | None
    sqlstate: str | None
    error: str | None
    masked: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalEvent(Event):
    """An approval request as approvers see it (``ApprovalRequest.describe()``)."""

    request: dict[str, Any]

    def data(self) -> dict[str, Any]:
        return dict(self.request)


@dataclass(frozen=True)
class ApprovalRequested(ApprovalEvent):
    name: ClassVar[str] = "approval.requested"


@dataclass(frozen=True)
class ApprovalVoted(ApprovalEvent):
    """One approver of several approved; the request still waits for the others."""

    name: ClassVar[str] = "approval.vote"


@dataclass(frozen=True)
class ApprovalDecided(ApprovalEvent):
    name: ClassVar[str] = "approval.decided"


@dataclass(frozen=True)
class PolicyReloaded(Event):
    """The policies file was read again: ``applied`` (live sessions judge their next statement
    by it) or ``refused`` (the old policy stays; ``message`` says why)."""

    name: ClassVar[str] = "policy.reloaded"
    status: str
    by: str
    message: str
    changed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Dropped(Event):
    """Sent to a subscriber that read too slowly: it missed ``count`` events."""

    name: ClassVar[str] = "dropped"
    count: int


@dataclass(frozen=True)
class Unknown(Event):
    """An event this reader does not know (a newer engine): kept, never guessed at."""

    kind: str
    fields: dict[str, Any]


KINDS: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (SessionOpened, SessionClosed, SessionWaiting, StatementStarted,
                StatementFinished, ApprovalRequested, ApprovalVoted, ApprovalDecided,
                PolicyReloaded, Dropped)
}


def decode(line: dict[str, Any]) -> Event:
    """An event line from the control socket, as its type (``Unknown`` when it is not one)."""
    kind = str(line.get("event", ""))
    data = line.get("data")
    data = data if isinstance(data, dict) else {}
    cls = KINDS.get(kind)
    try:
        if cls is SessionOpened:
            names = {f.name for f in dataclasses.fields(SessionView)}
            return SessionOpened(SessionView(**{k: v for k, v in data.items() if k in names}))
        if cls is not None and issubclass(cls, ApprovalEvent):
            return cls(data)
        if cls is not None:
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError:  # a field missing: not an event of this kind after all
        pass
    return Unknown(kind, data)


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

    def publish(self, event: Event) -> None:
        if not self._subscribers:
            return
        body = event.to_wire(time.time())
        for sub in self._subscribers:
            sub.push(body)
