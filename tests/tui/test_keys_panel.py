"""The keys panel closes as it opens (issue 16: ``?`` and Esc left it open), and Esc goes back
to doing what the screen binds it to once the panel is closed; a toast does not send the operator
to the screen they are on."""

from __future__ import annotations

from textual.widgets import HelpPanel, Input

from tests.tui.fixtures import NOW, fixed_source
from tui.app import GatewatchApp


def shown(app: GatewatchApp) -> bool:
    return bool(app.screen.query(HelpPanel))


async def test_question_mark_and_escape_close_the_keys_panel() -> None:
    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert shown(app)
        await pilot.press("question_mark")
        assert not shown(app)
        await pilot.press("question_mark")
        assert shown(app)
        await pilot.press("escape")
        assert not shown(app)


async def test_escape_without_the_panel_is_the_screens() -> None:
    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("slash", "a")
        box = app.screen.query_one("#filter", Input)
        assert box.display and box.value == "a"
        await pilot.press("escape")   # the sessions screen clears its filter
        assert not box.display and box.value == ""


async def test_the_request_toast_says_press_2_and_only_away_from_the_approvals_screen() -> None:
    """On screen 2 the queue shows the request; a toast there would only cover the statement
    being read (issue 16), so there is none."""
    from engine.events import ApprovalRequested

    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    request = ApprovalRequested({"id": "r1", "requester": "alice", "connection": "shop"})
    async with app.run_test(size=(80, 24)) as pilot:
        app._on_event(request)
        await pilot.pause()
        assert [n.message for n in app._notifications] == [
            "alice asks to run a statement on shop — press 2"]
        await pilot.press("2")  # there: that toast goes, and no new one comes
        app._on_event(request)
        await pilot.pause()
        assert not list(app._notifications)
