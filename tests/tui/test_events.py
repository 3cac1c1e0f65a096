"""Events reach the TUI typed: the client decodes the control socket's lines, and the app
matches on the types (an approval request rings and refreshes at once; the rest wait for the
timer)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.events import (
    ApprovalDecided,
    ApprovalRequested,
    Dropped,
    Event,
    SessionOpened,
    SessionView,
    StatementFinished,
    Unknown,
)
from tests.tui.fixtures import NOW
from tui.app import GatewatchApp
from tui.client import ControlConnection, EngineGone
from tui.source import FixedSource

VIEW = SessionView(id="5f2eb99776c24e55", protocol="postgres", connection="shop",
                   identity="alice", identity_kind="person", identity_vendor=None,
                   client_addr="10.1.2.3:51234", application_name="psql", database="shop",
                   target=None, started_at="2026-11-18T08:14:06+00:00", statements=0,
                   waiting_for=None, transaction_status="I")
REQUEST = {"id": "a1b2c3d4", "requester": "alice", "connection": "shop",
           "statement": "DELETE FROM orders", "status": "pending"}

# What the engine writes after ``subscribe``: events as ``Event.to_wire`` gives them, the
# dropped notice as engine/control.py writes it, and lines this TUI cannot take as any event.
LINES: list[Any] = [
    SessionOpened(VIEW).to_wire(NOW),
    {**ApprovalRequested(REQUEST).to_wire(NOW)},
    {"event": "dropped", "data": {"count": 3}},
    {"event": "session.paused", "data": {"id": "x"}},  # a newer engine's
    {"event": "statement.finished", "data": {"session": "x"}},  # fields missing
    ["not", "an", "event"],
]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Path]:
    """A control socket that answers hello and subscribe, then writes LINES and closes."""
    path = tmp_path / "control.sock"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):  # hello, subscribe
            request = json.loads(await reader.readline())
            writer.write(json.dumps({"id": request["id"], "ok": True,
                                     "result": {"identity": "oncall", "store": "x"}}).encode()
                         + b"\n")
        for line in LINES:
            writer.write(json.dumps(line).encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(serve, str(path))
    async with server:
        yield path


async def test_the_client_hands_out_typed_events(engine: Path) -> None:
    connection = ControlConnection(engine, "token")
    await connection.connect()
    got: list[Event] = []
    with pytest.raises(EngineGone, match="closed the event stream"):
        async for event in connection.events():
            got.append(event)
    await connection.close()
    assert got == [
        SessionOpened(VIEW),
        ApprovalRequested(REQUEST),
        Dropped(3),
        Unknown("session.paused", {"id": "x"}),
        Unknown("statement.finished", {"session": "x"}),
        Unknown("", {}),
    ]


class Counting(FixedSource):
    """No sessions, no requests; notes which lists the app reads."""

    def __init__(self) -> None:
        super().__init__({"live": [], "recent": []}, {"pending": [], "recent": []}, {}, {})
        self.reads: list[str] = []

    async def approvals(self) -> dict[str, Any]:
        self.reads.append("approvals")
        return await super().approvals()

    async def sessions(self) -> dict[str, Any]:
        self.reads.append("sessions")
        return await super().sessions()


async def test_an_approval_request_from_the_engine_is_announced() -> None:
    source = Counting()
    source.events = [StatementFinished("x", 1, "ok", 1, None, None), ApprovalRequested(REQUEST)]
    app = GatewatchApp(source, clock=lambda: NOW)  # live: the app listens to its source
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(200):
            if app._notifications:
                break
            await pilot.pause(0.02)
        [note] = list(app._notifications)
        assert note.title == "Approval requested"
        assert note.message == "alice asks to run a statement on shop — press 2"


async def test_approval_events_refresh_at_once_the_rest_wait_for_the_timer() -> None:
    source = Counting()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)  # no timer: nothing else reads
    async with app.run_test(size=(100, 30)):
        await app.workers.wait_for_complete()
        source.reads.clear()
        for event in (SessionOpened(VIEW), StatementFinished("x", 1, "ok", 1, None, None),
                      Dropped(3), Unknown("approval.escalated", {})):
            app._on_event(event)
        await app.workers.wait_for_complete()
        assert source.reads == []
        assert app.stale == {"sessions"}  # for the timer
        app._on_event(ApprovalDecided({**REQUEST, "status": "approved"}))
        await app.workers.wait_for_complete()
        assert source.reads == ["approvals", "sessions"]
        assert app.stale == set()
        assert not app._notifications  # only a new request is announced


async def test_a_policy_reload_is_announced_to_every_operator() -> None:
    from engine.events import PolicyReloaded

    source = Counting()
    source.events = [PolicyReloaded("applied", "oncall", "policy reloaded: 2 rules changed"),
                     PolicyReloaded("refused", "bob", "policies.yaml:3: unknown key 'actoin'")]
    app = GatewatchApp(source, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(200):
            if len(app._notifications) >= 2:
                break
            await pilot.pause(0.02)
        applied, refused = sorted(app._notifications, key=lambda n: n.title)
        assert (applied.title, applied.severity) == ("Policy reload applied", "information")
        assert applied.message == "policy reloaded: 2 rules changed (by oncall)"
        assert (refused.title, refused.severity) == ("Policy reload refused", "warning")
