"""While the engine is unreachable what is on screen is what was true when it was lost, and
says so (issue 16: the header kept showing pending counts and "waiting" sessions as live)."""

from __future__ import annotations

import asyncio

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from engine.events import Event
from tests.tui.fixtures import NOW, fixed_source
from tui.app import GatewatchApp
from tui.client import EngineGone
from tui.source import FixedSource


class Flaky(FixedSource):
    """The fixed engine, which can go away (``gone``) and come back."""

    def __init__(self) -> None:
        base = fixed_source()
        super().__init__(base._sessions, base._approvals, base._statements, base._stats)
        self.gone = asyncio.Event()

    async def connect(self) -> None:
        if self.gone.is_set():
            raise EngineGone("no engine on control.sock: Connection refused")

    async def next_events(self) -> list[Event]:
        await self.gone.wait()
        raise EngineGone("the engine closed the event stream")


async def until(pilot: Pilot[None], check: object, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if callable(check) and check():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out")


async def settled(pilot: Pilot[None]) -> None:
    await pilot.pause(0.3)  # a live app's listener never completes: no wait_for_complete


def statuses(app: GatewatchApp) -> list[str]:
    table = app.sessions_screen.query_one("#sessions", DataTable)
    column = [str(c.label) for c in table.columns.values()].index("STATUS")
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def test_data_is_marked_stale_while_the_engine_is_unreachable() -> None:
    source = Flaky()
    app = GatewatchApp(source, clock=lambda: NOW)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.sub_title == "1 pending approval")
        assert statuses(app) == ["waiting", "live", "closed", "rejected"]
        source.gone.set()
        await until(pilot, lambda: app.unreachable_since is not None)
        await pilot.pause()
        assert app.sub_title == "⚠ STALE since 11:06:40 UTC · 1 pending then"
        # not shown as live: as they were when the engine was lost
        assert statuses(app) == ["waiting?", "live?", "closed", "rejected"]
        summary = str(app.sessions_screen.query_one("#summary", Static).render())
        assert summary.startswith("⚠ as of 11:06:40 UTC, when the engine was lost")
        await pilot.press("2")
        await settled(pilot)
        stale = app.approvals_screen.query_one("#stale", Static)
        assert stale.display and "STALE: pending as of 11:06:40 UTC" in str(stale.render())
        # back: fresh again
        source.gone.clear()
        await until(pilot, lambda: app.unreachable_since is None, seconds=10)
        await pilot.pause()
        assert app.sub_title == "1 pending approval"
        assert not stale.display
        await pilot.press("1")
        await settled(pilot)
        assert statuses(app) == ["waiting", "live", "closed", "rejected"]
