"""How requests end, as the operator reads it (issue 16): a request its client withdrew is
"withdrawn" in the toast and in the recent decisions, never "denied" nor "decided elsewhere";
toasts never stack beyond a few; the statistics count withdrawn apart and draw quiet hours as
gaps on bars scaled to their own largest hour."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable

from engine.events import ApprovalDecided
from tests.tui.fixtures import NOW, fixed_source
from tui.app import MAX_TOASTS, GatewatchApp
from tui.screens.stats import hourly
from tui.source import FixedSource
from tui.widgets.hourbars import HourBars, bar


async def settled(pilot: Pilot[None]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def cells(table: DataTable[str]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_a_request_withdrawn_by_its_client_says_so_in_the_toast_and_the_list() -> None:
    source = fixed_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        assert app.pending_ids == {"a1b2c3d4"}
        request = source._approvals["pending"][0]
        # The engine says how it ended before the store has it (recent still lacks it).
        source._approvals = {**source._approvals, "pending": []}
        app._on_event(ApprovalDecided({**request, "status": "withdrawn",
                                       "decided_at": None, "decided_by": None,
                                       "decision_reason": "canceled by the client"}))
        await settled(pilot)
        [note] = [n for n in app._notifications if n.title == "Left the queue"]
        assert note.message == "a1b2c3d4: withdrawn: canceled by the client"
        assert "denied" not in note.message and "elsewhere" not in note.message
        await pilot.press("2")
        await settled(pilot)
        decided = cells(app.approvals_screen.query_one("#decided", DataTable))
        outcomes = {row[1]: row[3] for row in decided}
        assert outcomes == {"a1b2c3d4": "withdrawn: canceled by the client",
                            "a9f00001": "withdrawn: canceled by the client",
                            "a9f00002": "approved by oncall: cleanup ticket 4411"}


async def test_toasts_do_not_stack_endlessly() -> None:
    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        for i in range(10):
            app.notify(f"note {i}")
        await pilot.pause()
        assert [n.message for n in app._notifications] == [
            f"note {i}" for i in range(10 - MAX_TOASTS, 10)]


async def test_no_toast_for_a_new_request_on_the_approvals_screen() -> None:
    from engine.events import ApprovalRequested

    source = FixedSource({"live": [], "recent": []}, {"pending": [], "recent": []}, {}, {})
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await settled(pilot)
        app._on_event(ApprovalRequested({"id": "a1", "requester": "alice",
                                         "connection": "shop"}))
        await settled(pilot)
        # The queue shows it; a toast here would cover the statement being read.
        assert not [n for n in app._notifications if n.title == "Approval requested"]


def test_hour_bars_scale_to_their_own_largest_hour_and_leave_quiet_hours_empty() -> None:
    assert [bar(n, 8) for n in (0, 1, 4, 8)] == ["·", "▁", "▄", "█"]
    assert bar(3, 300) == "▁"  # small beside a busy hour, but not nothing
    from datetime import datetime

    now = datetime(2026, 11, 18, 11)
    # one busy hour (a demo's) is one bar at the end, not the whole width
    hours = hourly([("2026-11-18T11", 24)], now)
    assert len(hours) == 24 and hours[-1] == 24 and not any(hours[:-1])
    assert hourly([("2026-11-17T09", 5)], now) == [0] * 24  # older than the day shown


async def test_the_statistics_show_withdrawn_apart_and_one_busy_hour_as_one_bar() -> None:
    base = fixed_source()
    stats = {**base._stats, "blocks_per_hour": [("2026-11-18T11", 24)]}
    app = GatewatchApp(FixedSource(base._sessions, base._approvals, base._statements, stats),
                       clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await settled(pilot)
        screen = app.stats_screen
        verdicts = [row[1] for row in cells(screen.query_one("#by_verdict", DataTable))]
        assert "withdrawn" in verdicts
        spark = screen.query_one("#spark", HourBars)
        top = str(spark.render()).splitlines()[0]
        assert top.endswith("███") and set(top[:-3]) == {"·"}


async def test_going_to_the_queue_clears_the_toasts_that_pointed_to_it() -> None:
    from engine.events import ApprovalRequested

    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        app._on_event(ApprovalRequested({"id": "a1", "requester": "alice",
                                         "connection": "shop"}))
        app.notify("something else")
        await pilot.pause()
        await pilot.press("2")
        await settled(pilot)
        assert [n.message for n in app._notifications] == ["something else"]


async def test_a_statement_its_client_withdrew_reads_withdrawn_in_the_live_session() -> None:
    """PostgreSQL records such a statement as "denied" (the client got an error); the rows the
    TUI reads carry its outcome (``store.reads.session_statements``), which the screen says."""
    source = fixed_source()
    source._statements["5f2eb99776c24e55"].append(
        {"seq": 4, "started_at": source._statements["5f2eb99776c24e55"][0]["started_at"],
         "duration_ms": 0.0, "rows": None, "verdict": "denied",
         "rule": "review-unbounded-writes", "approval_id": "a9f00001", "status": "denied",
         "sqlstate": "57014", "error": "canceling statement due to user request",
         "text": "UPDATE stock SET n = 0", "outcome": "withdrawn"})
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await settled(pilot)
        await pilot.press("enter")  # alice's live session
        await settled(pilot)
        table = app.screen.query_one("#sessions", DataTable)
        names = [str(c.label) for c in table.columns.values()]
        row = dict(zip(names, cells(table)[3], strict=True))
        assert row["VERDICT"] == "withdrawn (review-unbounded-writes)"
        assert row["RESULT"] == "withdrawn"  # 57014 is only what the client was told
        await pilot.press("down", "down", "down", "enter")
        await settled(pilot)
        text = "\n".join(line.text for line in app.screen._compositor.render_strips())
        assert "verdict withdrawn" in text and "outcome withdrawn ·" in text
        assert "denied" not in text


async def test_the_replay_draws_a_withdrawn_statement_as_withdrawn(tmp_path: Path) -> None:
    from recordings.replay import open_timeline
    from store import Op, open_store
    from store import ops as O
    from tests.recordings.replay.build import Recording, new_store
    from tests.recordings.replay.test_statements import _held
    from tui.replay import ReplayApp
    from tui.screens.replay import ReplayScreen
    from tui.widgets.timeline import TimelineBar

    rec = Recording(new_store(tmp_path), "pg3", protocol="postgres")
    rec.approval("w1", 1.0, 3.0, "withdrawn", "DELETE FROM orders", by="",
                 reason="canceled by the client")
    ops: list[Op] = _held("pg3", 1, 3.0, "DELETE FROM orders", "denied", "w1",
                          status="denied", sqlstate="57014", rows=None,
                          error="canceling statement due to user request")
    rec.store.apply(ops)
    rec.close(10.0)
    rec.store.close()
    assert O.STATEMENT_START == ops[0].kind
    store = open_store(tmp_path / "gatewatch.db", readonly=True)
    try:
        app = ReplayApp(store, open_timeline(store, "pg3"), live=False)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = app.screen
            assert isinstance(screen, ReplayScreen)
            await pilot.press("n")
            await screen.idle()
            await pilot.pause()
            table = screen.query_one("#statements", DataTable)
            names = [str(c.label) for c in table.columns.values()]
            row = dict(zip(names, cells(table)[0], strict=True))
            assert row["VERDICT"].startswith("withdrawn (review-")  # cut at 100 columns
            assert "withdrawn by its client: nobody denied it" in screen.detail_text
            assert "last: withdrawn at 00:00:03.0" in screen.status_text
            assert "denied" not in screen.status_text
            bar = screen.query_one("#timeline", TimelineBar)
            assert "↩" in bar.render().plain and "✗" not in bar.render().plain
    finally:
        store.close()
