"""``gatewatch replay SESSION``: one recorded session, straight from the store, no engine.

A small App around ``ReplayScreen``; the store is opened read-only for as long as it runs.
Inside the operator's TUI the same screen opens with Enter on a recorded session.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from recordings.replay import Timeline, open_timeline
from store import SqliteStore, open_store
from themes import DEFAULT, THEMES
from tui.screens.replay import ReplayScreen


class ReplayApp(App[None]):
    TITLE = "Gatewatch replay"
    BINDINGS = [
        Binding("question_mark", "show_help_panel", "Keys", id="replay-app.keys"),
        Binding("q", "quit", "Quit", id="replay-app.quit"),
    ]

    def __init__(self, store: SqliteStore, timeline: Timeline, *, theme: str = DEFAULT,
                 live: bool = True) -> None:
        super().__init__()
        self.store = store
        self.timeline = timeline
        self.row = store.find_session(timeline.session.id) or {"id": timeline.session.id}
        self._theme_name = theme
        self._live = live

    def on_mount(self) -> None:
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = self._theme_name
        self.push_screen(ReplayScreen(self.store, self.timeline, self.row, live=self._live))


def run_replay(store_path: Path | str, session_id: str, theme: str | None = None) -> None:
    """Raises ``recordings.replay.SessionNotFound`` (and StoreError) for the CLI to report."""
    if theme not in {t.name for t in THEMES}:
        theme = DEFAULT
    store = open_store(store_path, readonly=True)
    try:
        timeline = open_timeline(store, session_id)
    except BaseException:
        store.close()
        raise
    ReplayApp(store, timeline, theme=theme).run()  # the replay screen closes the store
