"""What walking the demo at 80x24 showed an operator (issue 16's "Done when"): the approve and
deny prompt covered the statement it is about, toasts covered the queue, the operator's own
decision read as news ("left the queue"), a decision just made was listed at the time it was
asked, and a session's statements did not take the list keys (G, g, Home, End, j)."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from textual.widgets._toast import Toast

from engine.events import ApprovalDecided
from tests.tui.fixtures import NOW, fixed_source
from tui.app import GatewatchApp
from tui.screens.reason import ReasonPrompt


async def settled(pilot: Pilot[None]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_the_approve_prompt_shows_the_statement_it_is_about() -> None:
    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("2", "a")
        await settled(pilot)
        prompt = app.screen
        assert isinstance(prompt, ReasonPrompt)
        shown = str(prompt.query_one("#prompt-detail", Static).render())
        assert "DELETE FROM orders" in shown and "OR true" in shown
        title = str(prompt.query_one("#prompt-title").render())
        assert title == "Approve a1b2c3d4 from alice on shop?"
        await pilot.press("escape", "d")
        await settled(pilot)
        assert "DELETE FROM orders" in str(app.screen.query_one("#prompt-detail",
                                                                 Static).render())


async def test_after_their_own_decision_the_screen_says_so_not_that_it_left() -> None:
    source = fixed_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("2", "a", "enter")
        await settled(pilot)
        assert source.decisions == [("a1b2c3d4", True, None)]
        detail = str(app.approvals_screen.query_one("#statement", Static).render())
        assert detail.startswith("You decided a1b2c3d4: nothing is selected.")
        assert "left the queue" not in detail


async def test_a_decision_is_listed_when_it_was_made_before_the_store_has_it() -> None:
    now = [NOW]
    source = fixed_source()
    app = GatewatchApp(source, clock=lambda: now[0], live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        request = source._approvals["pending"][0]  # asked at 11:06:40 - 42 s
        source._approvals = {**source._approvals, "pending": []}
        now[0] = NOW + 30
        app._on_event(ApprovalDecided({**request, "status": "denied", "decided_by": "bob",
                                       "decision_reason": "not now"}))
        await settled(pilot)
        await pilot.press("2")
        await settled(pilot)
        decided = app.approvals_screen.query_one("#decided", DataTable)
        rows = [[str(c) for c in decided.get_row_at(i)] for i in range(decided.row_count)]
        when = {row[1]: row[0] for row in rows}
        assert when["a1b2c3d4"] == "11:07:10"  # decided now, not asked at 11:05:58


async def test_toasts_on_the_approvals_screen_sit_over_the_recent_decisions() -> None:
    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settled(pilot)
        await pilot.press("2")
        await settled(pilot)
        app.notify("a note", title="Note")
        await pilot.pause(0.3)
        [toast] = app.screen.query(Toast)
        queue = app.approvals_screen.query_one("#approvals").region
        statement = app.approvals_screen.query_one("#detail").region
        assert toast.region.y >= statement.y + statement.height - 1
        assert not toast.region.overlaps(queue)


async def test_a_sessions_statements_take_the_list_keys() -> None:
    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("enter")  # alice's live session: three statements
        await settled(pilot)
        table = app.screen.query_one("#sessions", DataTable)
        await pilot.press("G")
        assert table.cursor_row == 2
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("end")
        assert table.cursor_row == 2
        await pilot.press("home", "j")
        assert table.cursor_row == 1


def test_a_long_statement_in_the_prompt_says_what_is_not_shown() -> None:
    from tui.screens.reason import DETAIL_LINES, excerpt

    assert excerpt("DELETE FROM orders\nWHERE true;") == "DELETE FROM orders\nWHERE true;"
    long = excerpt("\n".join(f"UPDATE t SET n = {i};" for i in range(20)))
    lines = long.splitlines()
    assert len(lines) == DETAIL_LINES
    assert lines[-1] == "… 15 more lines: Esc, and read it whole"


async def test_statistics_at_80x24_show_every_outcome() -> None:
    """The walk at 80x24 showed three outcomes of five (approved and denied below the fold,
    behind a scrollbar the size of a character)."""
    from tui.widgets.hourbars import HourBars

    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("3")
        await settled(pilot)
        outcomes = app.stats_screen.query_one("#by_verdict", DataTable)
        assert outcomes.row_count == 5 and outcomes.max_scroll_y == 0
        assert all(t.max_scroll_y == 0 for t in app.stats_screen.query(DataTable))
        assert app.stats_screen.query_one("#spark", HourBars).size.height == 1  # no axis
        await pilot.resize_terminal(160, 48)
        await settled(pilot)
        assert app.stats_screen.query_one("#spark", HourBars).size.height == 2
