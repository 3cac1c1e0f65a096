"""The replay screen, driven from the keyboard and the mouse over a recorded fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recordings.replay import StatementTimeline, open_timeline
from store import SqliteStore, open_store
from tests.tui.replayed import PG_ID, SSH_ID, recorded_store
from tui.replay import ReplayApp
from tui.screens.replay import ReplayScreen
from tui.widgets.terminal import TerminalView
from tui.widgets.timeline import TimelineBar


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recorded_store(tmp_path_factory.mktemp("replay"))


@pytest.fixture
def store(store_path: Path) -> Iterator[SqliteStore]:
    s = open_store(store_path, readonly=True)
    yield s
    s.close()


def app_for(store: SqliteStore, session: str, *, live: bool = False) -> ReplayApp:
    return ReplayApp(store, open_timeline(store, session), live=live)


def screen_text(app: ReplayApp) -> str:
    return app.screen.query_one("#terminal", TerminalView).text()


async def press(pilot: Any, *keys: str) -> None:
    """Press keys, then wait until the seeks and searches they asked for are on screen."""
    await pilot.press(*keys)
    screen = pilot.app.screen
    if isinstance(screen, ReplayScreen):
        await screen.idle()
    await pilot.pause()


async def test_keys_move_through_time(store: SqliteStore) -> None:
    app = app_for(store, SSH_ID)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await screen.idle()
        # Nothing holds the focus: a focused view or the (hidden) search box would take the
        # arrow keys, Home and End for itself.
        assert app.focused is None
        assert screen.position == 0.0 and "app" not in screen_text(app)
        await press(pilot, "right")  # 5 s: the listing and the hostile output are on screen
        assert screen.position == 5.0
        assert "notes.txt" in screen_text(app) and "after-hostile" in screen_text(app)
        await press(pilot, "shift+right")  # a minute later, before the late output
        assert screen.position == 65.0 and "needle-in-output" in screen_text(app)
        assert "late output" not in screen_text(app)
        await press(pilot, "end")
        assert screen.position == screen.timeline.duration == 310.0
        assert "late output after a long silence" in screen_text(app)
        await press(pilot, "shift+left", "left")
        assert screen.position == 245.0 and "late output" not in screen_text(app)
        await press(pilot, "home")
        assert screen.position == 0.0 and "notes.txt" not in screen_text(app)


async def test_next_and_previous_command(store: SqliteStore) -> None:
    app = app_for(store, SSH_ID)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await press(pilot, "n")
        assert screen.position == 2.0
        await press(pilot, "n")
        assert screen.position == 10.0 and "blocked by rule" in screen_text(app)
        await press(pilot, "n")
        assert screen.position == 20.0
        await press(pilot, "p", "p")
        assert screen.position == 2.0


async def test_speed_and_idle_squeezing(store: SqliteStore) -> None:
    app = app_for(store, SSH_ID)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await press(pilot, "right_square_bracket", "right_square_bracket")
        assert screen.speed == 4.0
        await press(pilot, *["right_square_bracket"] * 5)
        assert screen.speed == 16.0  # the fastest
        await press(pilot, *["left_square_bracket"] * 9)
        assert screen.speed == 0.25  # the slowest
        await press(pilot, "right_square_bracket", "right_square_bracket", "right_square_bracket")
        screen.seek(30.0)
        screen.advance(10.0)  # ten seconds of play at 2x: 20 s of the session
        assert screen.position == pytest.approx(50.0)
        await press(pilot, "i")  # idle squeezed: the 270 s silence plays in a few seconds
        screen.seek(30.0)
        screen.advance(5.0)
        assert screen.position > 290.0
        assert "idle squeezed" in screen.status_text


async def test_space_plays_until_the_end(store: SqliteStore) -> None:
    app = app_for(store, SSH_ID, live=True)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await press(pilot, "i", *["right_square_bracket"] * 2)  # squeezed, 4x: about 10 s
        await pilot.press("space")  # (not press(): that would wait for the whole play)
        seen = [screen.position]
        for _ in range(1200):
            await pilot.pause(0.05)
            seen.append(screen.position)
            if not screen.playing:
                break
        assert not screen.playing and screen.position == screen.timeline.duration
        assert seen == sorted(seen) and len(set(seen)) > 2  # it moved on, frame by frame


async def test_space_at_the_end_plays_again_from_the_start(store: SqliteStore) -> None:
    app = app_for(store, SSH_ID)  # no play timer: time stands still
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await press(pilot, "end", "space")
        assert screen.playing and screen.position == 0.0
        await press(pilot, "space")
        assert not screen.playing


async def test_search_jumps_from_match_to_match(store: SqliteStore) -> None:
    app = app_for(store, SSH_ID)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await press(pilot, "slash", *"restart", "enter")
        assert screen.position == 25.0
        await press(pilot, "escape")  # closes the search box, not the replay
        assert app.is_running and not screen.query_one("#search").display
        await press(pilot, "home", "slash", "ctrl+a", "ctrl+k", *"PROMPT-NEVER", "enter")
        assert screen.position == 0.0  # no match: stays, and says so
        await press(pilot, "escape")
        screen.seek(0.0)
        screen._needle = "deploy@web1"
        await press(pilot, "full_stop")
        first = screen.position
        await press(pilot, "full_stop")
        assert screen.position > first
        await press(pilot, "comma")
        assert screen.position == first


async def test_hostile_output_never_reaches_the_operators_terminal(store: SqliteStore) -> None:
    app = app_for(store, SSH_ID)
    async with app.run_test(size=(100, 32)) as pilot:
        await press(pilot, "right")
        text = screen_text(app)
        assert "after-hostile" in text
        assert "\x1b" not in text and "\x07" not in text and "pwned" not in text
        assert app.title == "Gatewatch replay"  # the recorded title set no title here
        strips = [app.screen.query_one("#terminal", TerminalView).render_line(y)
                  for y in range(24)]
        assert not any("\x1b" in segment.text for strip in strips for segment in strip)


async def test_clicking_the_timeline_seeks(store: SqliteStore) -> None:
    app = app_for(store, SSH_ID)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        bar = screen.query_one("#timeline", TimelineBar)
        await pilot.click("#timeline", offset=(bar.size.width - 1, 1))
        assert screen.position == pytest.approx(310.0)
        await pilot.click("#timeline", offset=(0, 1))
        assert screen.position == 0.0


async def test_a_postgresql_session_moves_through_its_statements(store: SqliteStore) -> None:
    app = app_for(store, PG_ID)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await press(pilot, "n")
        assert screen.position == 1.0
        assert "personal-data:email/email: 3" in screen.detail_text
        await press(pilot, "n")
        assert screen.position == 4.0 and "no-drop" in screen.detail_text
        await press(pilot, "slash", *"count", "enter")
        assert screen.position == 9.0
        await press(pilot, "escape", "escape")
        assert not app.is_running


def test_replay_screen_snapshots(snap_compare: Callable[..., bool], store_path: Path) -> None:
    store = open_store(store_path, readonly=True)
    try:
        async def at_ten_seconds(pilot: Any) -> None:
            await press(pilot, "right", "right")
            await pilot.pause()

        assert snap_compare(app_for(store, SSH_ID), terminal_size=(100, 34),
                            run_before=at_ten_seconds)
    finally:
        store.close()


def test_replay_screen_snapshot_postgresql(snap_compare: Callable[..., bool],
                                           store_path: Path) -> None:
    store = open_store(store_path, readonly=True)
    try:
        async def at_the_block(pilot: Any) -> None:
            await press(pilot, "n", "n")
            await pilot.pause()

        assert snap_compare(app_for(store, PG_ID), terminal_size=(100, 30),
                            run_before=at_the_block)
    finally:
        store.close()


async def test_enter_on_a_recorded_session_in_the_operators_tui_opens_its_replay(
        store_path: Path) -> None:
    from tests.tui.fixtures import NOW, fixed_source
    from tui.app import GatewatchApp

    source = fixed_source()
    source._store = store_path
    source._sessions = {"live": [], "recent": [
        {"id": SSH_ID, "protocol": "ssh", "identity": "alice", "connection": "box",
         "client_addr": "10.0.0.1:5000", "application_name": None, "database": None,
         "started_at": "2026-09-21T14:13:20+00:00", "ended_at": "2026-09-21T14:18:30+00:00",
         "statements": 3, "status": "closed", "end_reason": "killed by oncall"}]}
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await press(pilot, "enter")
        await pilot.pause()
        assert isinstance(app.screen, ReplayScreen)
        await press(pilot, "n")
        assert app.screen.position == 2.0
        await press(pilot, "escape")  # back to the sessions list, the app goes on
        assert not isinstance(app.screen, ReplayScreen) and app.is_running


def test_replay_of_an_unknown_session_is_a_one_line_usage_error(store_path: Path,
                                                               tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    config = tmp_path / "p.yaml"
    config.write_text(f"version: 1\nengine:\n  store: {store_path}\n"
                      f"  control_socket: {tmp_path / 'c.sock'}\n")
    out = subprocess.run([sys.executable, "-m", "gatewatch", "replay", "nope", "-c", str(config)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("gatewatch: no recorded session 'nope'")
    assert out.stderr.count("\n") == 1


async def test_a_postgresql_replay_keeps_the_statement_column_when_narrow(
        store: SqliteStore) -> None:
    """Issue 16: at 80 columns the replay lost STATEMENT; at 120 RESULT had 40 characters to
    STATEMENT's 13. Columns give way by importance, and STATEMENT takes the room."""
    from textual.widgets import DataTable

    app = app_for(store, PG_ID)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#statements", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[-1] == "STATEMENT" and "AT" in labels and "VERDICT" in labels
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        widths = {str(c.label): c.width for c in table.columns.values()}
        assert widths["STATEMENT"] > 2 * widths["RESULT"]
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        assert isinstance(screen.timeline, StatementTimeline)
        assert table.row_count == len(screen.timeline.statements)
