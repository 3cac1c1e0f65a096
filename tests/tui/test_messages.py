"""Screens ask the app through messages (open a session, kill it, follow it, decide a request),
driven from the keyboard and the command palette over fixed data."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.tui.fixtures import NOW, fixed_source
from tui.app import GatewatchApp
from tui.screens.approvals import ApprovalCommands
from tui.screens.reason import ReasonPrompt
from tui.screens.session import SessionScreen
from tui.source import FixedSource

LIVE = "5f2eb99776c24e55"  # the first row: alice's live session


async def settled(pilot: Pilot[None]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_kill_from_the_keyboard_with_fixed_data() -> None:
    source = fixed_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await pilot.press("enter")
        await settled(pilot)
        assert isinstance(app.screen, SessionScreen) and app.screen.session["id"] == LIVE
        await pilot.press("k", *"runaway", "enter", *"no", "enter")  # not confirmed
        await settled(pilot)
        assert source.kills == []
        assert isinstance(app.screen, SessionScreen)
        await pilot.press("k", *"runaway", "enter", *"yes", "enter")
        await settled(pilot)
        assert source.kills == [(LIVE, "runaway", None, "identity")]
        assert app.sessions_screen.is_current  # back to the list


async def test_kill_with_a_lock_out_from_the_keyboard() -> None:
    source = fixed_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await pilot.press("enter")
        await settled(pilot)
        await pilot.press("K", *"runaway", "enter", *"30m", "enter", *"yes", "enter")
        await settled(pilot)
        assert source.kills == [(LIVE, "runaway", "30m", "identity")]
        await pilot.press("enter")
        await settled(pilot)
        await pilot.press("K", *"wrong db", "enter", *"2h connection", "enter")
        await settled(pilot)
        assert isinstance(app.screen, ReasonPrompt)
        assert "lock alice out of shop for 2h" in str(app.screen._title)
        await pilot.press(*"yes", "enter")
        await settled(pilot)
        assert source.kills[-1] == (LIVE, "wrong db", "2h", "connection")


class Following(FixedSource):
    """Fixed data that counts how often a session's statements are read."""

    def __init__(self) -> None:
        base = fixed_source()
        super().__init__(base._sessions, base._approvals, base._statements, base._stats)
        self.statement_reads = 0

    async def statements(self, session_id: str) -> list[dict[str, Any]]:
        self.statement_reads += 1
        return await super().statements(session_id)


async def test_a_live_sessions_view_keeps_asking_for_statements() -> None:
    source = Following()
    app = GatewatchApp(source, clock=lambda: NOW)  # live: the screen follows the session
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        for _ in range(300):
            if source.statement_reads >= 3:  # opening it, then twice on its own
                break
            await pilot.pause(0.02)
        assert source.statement_reads >= 3
        assert isinstance(app.screen, SessionScreen)


async def test_a_fixed_view_does_not_ask_again() -> None:
    source = Following()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await pilot.press("enter")
        await settled(pilot)
        assert isinstance(app.screen, SessionScreen) and not app.screen.follow
        assert source.statement_reads == 1


async def test_approve_from_the_command_palette_on_the_approvals_screen() -> None:
    source = fixed_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        # Elsewhere there is no selected request to act on: the palette does not offer it.
        assert ApprovalCommands(app.sessions_screen, None).commands() == []
        await pilot.press("2")
        await settled(pilot)
        await pilot.press("ctrl+p", *"Approve")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settled(pilot)
        assert isinstance(app.screen, ReasonPrompt)
        await pilot.press(*"checked with alice", "enter")
        await settled(pilot)
        assert source.decisions == [("a1b2c3d4", True, "checked with alice")]
        assert app.sub_title == "no pending approvals"
