"""Columns give way by importance, STATUS reads whole at a fixed width, and Enter on a statement
of a live session shows it whole (issue 16: at 80 columns the sessions table lost STARTED and
CLIENT, STATUS read "waitin" and "killed: killed by …", and Enter did nothing)."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.tui.fixtures import NOW, fixed_source, iso
from tui.app import GatewatchApp
from tui.screens.session import COLUMNS as STATEMENT_COLUMNS
from tui.screens.sessions import COLUMNS, state
from tui.screens.statement import StatementDetail
from tui.widgets.columns import cut, fit


async def settled(pilot: Pilot[None]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def labels(table: DataTable[str]) -> list[str]:
    return [str(c.label) for c in table.columns.values()]


def widths(table: DataTable[str]) -> dict[str, int]:
    return {str(c.label): c.width for c in table.columns.values()}


def test_fit_keeps_the_most_important_columns_and_gives_the_rest_to_one() -> None:
    kept = [COLUMNS[i].label for i, _ in fit(COLUMNS, 80)]
    assert kept == ["ID", "IDENTITY", "CONNECTION", "STATUS", "STARTED", "CLIENT"]
    assert [COLUMNS[i].label for i, _ in fit(COLUMNS, 160)] == [c.label for c in COLUMNS]
    statement = dict(fit(STATEMENT_COLUMNS, 120))[len(STATEMENT_COLUMNS) - 1]
    result = dict(fit(STATEMENT_COLUMNS, 120))[5]
    assert statement > 3 * result  # STATEMENT gets the room, not RESULT
    assert cut("waiting", 11) == "waiting" and cut("interrupted!", 11) == "interrupte…"


def test_status_is_one_word_and_the_reason_does_not_repeat_it() -> None:
    assert state({"status": "live", "waiting_for": "a1b2c3d4"}) == (
        "waiting", "for approval a1b2c3d4")
    assert state({"status": "killed", "end_reason": "killed by oncall: runaway"}) == (
        "killed", "by oncall: runaway")
    assert state({"status": "closed", "end_reason": "client quit"}) == ("closed", "client quit")


async def test_sessions_at_80_columns_keep_started_and_client_and_a_stable_status() -> None:
    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        table = app.sessions_screen.query_one("#sessions", DataTable)
        assert labels(table) == ["ID", "IDENTITY", "CONNECTION", "STATUS", "STARTED", "CLIENT"]
        assert [str(table.get_row_at(i)[3]) for i in range(table.row_count)] == [
            "waiting", "live", "closed", "rejected"]
        before = widths(table)["STATUS"]
        # a session killed with a long reason leaves STATUS as wide as it was
        source = app.source
        assert isinstance(source, type(fixed_source()))
        source._sessions = {**source._sessions, "recent": [
            {"id": "k1110000aaaabbbb", "identity": "bob", "connection": "shop",
             "client_addr": "10.1.2.8:50000", "started_at": iso(-60), "ended_at": iso(-5),
             "statements": 3, "status": "killed",
             "end_reason": "killed by oncall: a very long reason " * 3}]}
        app.stale.add("sessions")
        app.refresh_data()
        await settled(pilot)
        assert widths(table)["STATUS"] == before
        row = [str(c) for c in table.get_row_at(table.row_count - 1)]
        assert row[3] == "killed"
        await pilot.resize_terminal(160, 48)
        await settled(pilot)
        assert "DETAIL" in labels(table)
        row = [str(c) for c in table.get_row_at(table.row_count - 1)]
        assert row[-1].startswith("by oncall: a very long reason")


async def test_enter_on_a_statement_shows_it_whole() -> None:
    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("enter")  # alice's live session
        await settled(pilot)
        table = app.screen.query_one("#sessions", DataTable)
        assert labels(table)[-1] == "STATEMENT" and "RESULT" in labels(table)
        assert str(table.get_row_at(2)[labels(table).index("RESULT")]) == "held"
        await pilot.press("down", "down", "enter")
        await settled(pilot)
        assert isinstance(app.screen, StatementDetail)
        shown = app.screen.query_one("#statement-text", Static)
        text = "\n".join(line.text for line in app.screen._compositor.render_strips())
        assert "DELETE FROM orders WHERE status = 'new' OR true" in text
        assert "outcome held" in text and shown is not None
        await pilot.press("escape")
        await settled(pilot)
        assert not isinstance(app.screen, StatementDetail)


def test_identity_grows_to_its_longest_name_with_room_to_spare() -> None:
    """Issue 16: IDENTITY stayed 14 wide at 160 columns, cutting "report-bot (example-ai)",
    while DETAIL had 60; at 80 it is cut rather than push STARTED or CLIENT out."""
    wide = dict(fit(COLUMNS, 160, {1: 23}))
    assert wide[1] == 23 and wide[len(COLUMNS) - 1] > 23  # DETAIL keeps the most room
    assert dict(fit(COLUMNS, 160, {1: 5}))[1] == 14  # short names: as it was
    assert dict(fit(COLUMNS, 160, {1: 200}))[1] == COLUMNS[1].most
    narrow = fit(COLUMNS, 80, {1: 23})
    assert [COLUMNS[i].label for i, _ in narrow] == [
        "ID", "IDENTITY", "CONNECTION", "STATUS", "STARTED", "CLIENT"]
    assert dict(narrow)[1] == 14
    # a statement keeps at least half of what is left over
    statement = len(STATEMENT_COLUMNS) - 1
    grown = dict(fit(STATEMENT_COLUMNS, 120, {4: 200, 5: 200}))
    plain = dict(fit(STATEMENT_COLUMNS, 120))
    assert grown[statement] >= STATEMENT_COLUMNS[statement].width + (
        plain[statement] - STATEMENT_COLUMNS[statement].width) // 2


async def test_sessions_show_an_agents_identity_whole_at_160_columns() -> None:
    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await settled(pilot)
        table = app.sessions_screen.query_one("#sessions", DataTable)
        who = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert "report-bot (example-ai)" in who
        await pilot.resize_terminal(80, 24)
        await settled(pilot)
        assert labels(table) == ["ID", "IDENTITY", "CONNECTION", "STATUS", "STARTED", "CLIENT"]
        who = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert "report-bot (e…" in who  # cut, with the mark that says so
