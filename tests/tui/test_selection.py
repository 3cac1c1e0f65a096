"""The selection is the item the operator chose, by key, never a row position (issue 16: an
operator pressed `a` and approved report-bot's DELETE instead of alice's UPDATE, because a
request above the cursor left the queue and the cursor stayed on the same row)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static

from tests.tui.fixtures import NOW, fixed_source, iso
from tui.app import GatewatchApp
from tui.screens.reason import ReasonPrompt
from tui.screens.session import SessionScreen
from tui.source import FixedSource
from tui.widgets.choice import ChoiceTable


def request(rid: str, requester: str, statement: str) -> dict[str, Any]:
    return {"id": rid, "session_id": f"s-{rid}", "requester": requester, "connection": "shop",
            "statement": statement, "rule": "review-writes", "reason": "a write",
            "created_at": iso(-60), "expires_at": iso(240), "status": "pending",
            "approvals": []}


BOB = request("b0b00001", "bob", "UPDATE stock SET n = 0 WHERE id = 7")
ALICE = request("a11ce002", "alice", "UPDATE orders SET status = 'paid' WHERE id = 42")
BOT = request("b0770003", "report-bot", "DELETE FROM orders")


def queue_source() -> FixedSource:
    base = fixed_source()
    return FixedSource(base._sessions, {"pending": [BOB, ALICE, BOT], "recent": []},
                       base._statements, base._stats)


async def settled(pilot: Pilot[None]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def engine_says(pilot: Pilot[None], source: FixedSource, **approvals: Any) -> None:
    """The engine's lists change (as the refresh timer would read them)."""
    source._approvals = {**source._approvals, **approvals}
    app = pilot.app
    assert isinstance(app, GatewatchApp)
    app.stale.update({"approvals", "sessions"})
    app.refresh_data()
    await settled(pilot)


def detail(app: GatewatchApp) -> str:
    content = app.approvals_screen.query_one("#statement", Static).content
    parts = content.renderables if isinstance(content, Group) else [content]
    return "\n".join(p.code if isinstance(p, Syntax) else p.plain if isinstance(p, Text)
                     else str(p) for p in parts)


async def test_a_request_leaving_above_the_cursor_does_not_move_the_selection() -> None:
    source = queue_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await pilot.press("2", "down")  # alice's UPDATE, the second row
        await settled(pilot)
        assert app.approvals_screen.selected() == ALICE
        await engine_says(pilot, source, pending=[ALICE, BOT],
                          recent=[{**BOB, "status": "approved"}])
        assert app.approvals_screen.selected() == ALICE
        table = app.approvals_screen.query_one(ChoiceTable)
        assert table.cursor_row == 0 and table.show_cursor
        assert "a11ce002" in detail(app)
        await pilot.press("a")
        await settled(pilot)
        assert isinstance(app.screen, ReasonPrompt)
        await pilot.press("enter")
        await settled(pilot)
        assert source.decisions == [("a11ce002", True, None)]


async def test_a_request_arriving_above_the_cursor_does_not_move_the_selection() -> None:
    source = queue_source()
    source._approvals = {"pending": [ALICE, BOT], "recent": []}
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await pilot.press("2", "down")  # report-bot's DELETE
        await settled(pilot)
        await engine_says(pilot, source, pending=[BOB, ALICE, BOT])
        assert app.approvals_screen.selected() == BOT
        assert app.approvals_screen.query_one(ChoiceTable).cursor_row == 2


async def test_when_the_chosen_request_leaves_nothing_is_selected_and_a_says_so() -> None:
    source = queue_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await pilot.press("2", "down")  # alice's UPDATE
        await settled(pilot)
        await engine_says(pilot, source, pending=[BOB, BOT],
                          recent=[{**ALICE, "status": "approved", "decided_by": "bob"}])
        screen = app.approvals_screen
        table = screen.query_one(ChoiceTable)
        assert screen.selected() is None
        assert not table.show_cursor  # no row looks selected
        assert "a11ce002 left the queue (approved by bob): nothing is selected" in detail(app)
        for key in ("a", "d"):
            app.clear_notifications()
            await pilot.press(key)
            await settled(pilot)
            assert app.screen is screen  # no prompt for another request
            [note] = list(app._notifications)
            assert "a11ce002 left the queue (approved by bob)" in note.message
            assert f"then press {key}" in note.message
        assert source.decisions == []
        # A request arriving meanwhile is not chosen for the operator either.
        await engine_says(pilot, source, pending=[BOB, BOT, ALICE | {"id": "a11ce004"}])
        assert screen.selected() is None
        # The operator moves: the row under the (hidden) cursor is chosen, and shown.
        await pilot.press("down")
        await settled(pilot)
        assert screen.selected() == BOT
        assert table.show_cursor
        assert "b0770003" in detail(app)


async def test_up_from_nothing_chosen_goes_to_the_row_above() -> None:
    source = queue_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await pilot.press("2", "down")
        await settled(pilot)
        await engine_says(pilot, source, pending=[BOB, BOT])
        await pilot.press("up")
        await settled(pilot)
        assert app.approvals_screen.selected() == BOB


async def test_j_k_g_G_home_and_end_move_through_the_queue() -> None:
    source = queue_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await pilot.press("2")
        await settled(pilot)
        screen = app.approvals_screen
        for keys, expected in ((["j"], ALICE), (["j"], BOT), (["k"], ALICE), (["G"], BOT),
                               (["g"], BOB), (["end"], BOT), (["home"], BOB)):
            await pilot.press(*keys)
            await settled(pilot)
            assert screen.selected() == expected, keys


async def test_a_session_opening_above_the_cursor_does_not_move_the_selection() -> None:
    source = fixed_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await pilot.press("down")  # report-bot's live session
        await settled(pilot)
        newcomer = {"id": "00aa00aa00aa00aa", "identity": "carol", "connection": "shop",
                    "client_addr": "10.1.2.4:5000", "application_name": "psql",
                    "database": "shop", "started_at": iso(-1), "statements": 0,
                    "waiting_for": None}
        source._sessions = {**source._sessions,
                            "live": [newcomer, *source._sessions["live"]]}
        await engine_says(pilot, source)
        table = app.sessions_screen.query_one(ChoiceTable)
        assert table.chosen == "77aa0c13e4b94d21"
        assert table.cursor_row == 2
        await pilot.press("enter")
        await settled(pilot)
        assert isinstance(app.screen, SessionScreen)
        assert app.screen.session["id"] == "77aa0c13e4b94d21"


async def test_enter_with_no_session_selected_says_so() -> None:
    source = fixed_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await pilot.press("down")  # report-bot's session
        await settled(pilot)
        live = [s for s in source._sessions["live"] if s["id"] != "77aa0c13e4b94d21"]
        source._sessions = {**source._sessions, "live": live}
        await engine_says(pilot, source)
        await pilot.press("enter")
        await settled(pilot)
        assert app.screen is app.sessions_screen
        [note] = list(app._notifications)
        assert "77aa0c13 left the list: nothing is selected" in note.message
