"""Replay: move through a recorded session in time, like a video, in the terminal.

SSH sessions show the terminal as it was at time t, rendered cell by cell from the replay's
terminal emulator (``recordings.replay.TerminalTimeline``) — recorded escape sequences never reach
the operator's terminal (ARCHITECTURE.md invariant 7). PostgreSQL sessions show their statements,
the one current at t selected with its verdict, duration, rows, error and masked counts.

Keys: ←/→ 5 s, shift+←/→ 1 min, Home/End, space plays and pauses, [ and ] change the speed
(0.25x to 16x), i squeezes idle time, n/p jump to the next or previous command, / searches
(the output of an SSH session, the statement texts of a PostgreSQL one) and . and , go to
the next and previous match. A click or drag on the timeline seeks.

Every use of an SSH timeline runs on one thread of the screen's own, in order: seeks (a seek
far ahead first takes the keyframes up to there, which on a long session takes a while),
searches, and, between them, keyframes taken ahead in slices of 50 ms. The UI thread only ever
draws a copy of the screen a seek produced (``Frame``), so it never reads an emulator that is
being fed. Requests pile up as one: while a seek runs, only the latest wanted time is kept.
The screen owns the store it is given and closes it on that thread when it goes away.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import pyte
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from engine import shown
from recordings.replay import (
    KINDS,
    IdleMap,
    Statement,
    StatementTimeline,
    TerminalTimeline,
    Timeline,
)
from store import SqliteStore
from tui.widgets.columns import Column, lay_out, longest, project
from tui.widgets.terminal import TerminalView
from tui.widgets.timeline import TimelineBar

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
TICK = 0.05  # seconds between frames while playing
MAX_IDLE = 2.0  # with idle skipping on, a silence plays in at most this long
# A PostgreSQL session's statements; rank: what stays at 80 columns (the statement, when, the
# verdict, the result), then the figures.
STATEMENT_COLUMNS = (Column("AT", 10, 1), Column("VERDICT", 18, 2, most=40),
                     Column("DURATION", 10, 4), Column("ROWS", 6, 5),
                     Column("RESULT", 14, 3, most=30),
                     Column("STATEMENT", 20, 0, rest=True))


def _verdict(s: Statement) -> str:
    """The VERDICT column: what was decided, "withdrawn" where the client withdrew a held
    statement (the store's verdict says "denied": the client got an error)."""
    return s.outcome if s.outcome in ("approved", "denied", "withdrawn") else s.verdict


class _Cursor(NamedTuple):
    x: int
    y: int
    hidden: bool


class Frame:
    """A copy of a pyte screen, for the UI thread to draw while the emulator moves on."""

    def __init__(self, screen: pyte.Screen) -> None:
        self.columns, self.lines = screen.columns, screen.lines
        self.buffer = [[line[x] for x in range(self.columns)]
                       for line in (screen.buffer[y] for y in range(self.lines))]
        cursor = screen.cursor
        self.cursor = _Cursor(cursor.x, cursor.y, cursor.hidden)

    @property
    def display(self) -> list[str]:
        return ["".join(char.data for char in line) for line in self.buffer]


BUILD_SLICE = 0.05  # seconds of keyframe taking between two looks at the request queue


def clock(seconds: float, *, tenths: bool = False) -> str:
    """``01:02:03``; with ``tenths`` (short sessions, where statements are fractions of a
    second apart) ``00:00:03.2``."""
    whole = max(0, int(seconds))
    text = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"{text}.{int(max(seconds, 0) * 10) % 10}" if tenths else text


class ReplayScreen(Screen[None]):
    CSS_PATH = "replay.tcss"
    AUTO_FOCUS = ""  # no focus: the keys are the screen's; the search box takes them when open
    BINDINGS = [
        Binding("space", "play", "Play/pause", id="replay.play"),
        Binding("left", "step(-5)", "-5 s", id="replay.back"),
        Binding("right", "step(5)", "+5 s", id="replay.forward"),
        Binding("shift+left", "step(-60)", "-1 min", show=False, id="replay.back-minute"),
        Binding("shift+right", "step(60)", "+1 min", show=False, id="replay.forward-minute"),
        Binding("home", "jump('start')", "Start", show=False, id="replay.start"),
        Binding("end", "jump('end')", "End", show=False, id="replay.end"),
        Binding("left_square_bracket", "speed(-1)", "Slower", id="replay.slower"),
        Binding("right_square_bracket", "speed(1)", "Faster", id="replay.faster"),
        Binding("i", "idle", "Skip idle", id="replay.idle"),
        Binding("n", "command(1)", "Next command", id="replay.next"),
        Binding("p", "command(-1)", "Previous command", id="replay.previous"),
        Binding("slash", "search", "Search", id="replay.search"),
        Binding("full_stop", "match(1)", "Next match", show=False, id="replay.next-match"),
        Binding("comma", "match(-1)", "Previous match", show=False, id="replay.previous-match"),
        Binding("escape", "back", "Back", id="replay.back-out"),
    ]

    def __init__(self, store: SqliteStore, timeline: Timeline, row: dict[str, Any], *,
                 live: bool = True, standalone: bool = True) -> None:
        super().__init__()
        self.store = store  # closed by this screen, on its thread, when it goes away
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="replay")
        self._want: float | None = None  # the latest time asked for, not yet shown
        self._seeking = False  # the seek loop runs
        self._indexing = False  # keyframes are being taken ahead
        self._searching = 0  # searches in flight
        self._settled = asyncio.Event()
        self._settled.set()
        self.row = row  # the session as the store lists it
        self.standalone = standalone  # the whole app (gatewatch replay): Esc quits
        self.timeline = timeline
        self.ssh = isinstance(timeline, TerminalTimeline)
        self.position = 0.0
        self.speed = 1.0
        self.playing = False
        self.skip_idle = False
        self._idle: IdleMap | None = None
        self._play_from: tuple[float, float] | None = None  # (monotonic, play time) at start
        self._needle: str | None = None
        self._live = live  # False: no play timer (snapshot tests drive time themselves)
        self._layout: list[tuple[int, int]] | None = None  # statement columns kept
        self.detail_text = ""  # what #detail and #status show, as plain text
        self.status_text = ""

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        row = self.row
        where = row.get("target") if self.ssh else row.get("database")
        yield Static(f"replay {row['id']}  {row.get('identity')} → {row.get('connection')} "
                     f"({where})  started {(row.get('started_at') or '')[:19].replace('T', ' ')}"
                     f"  {row.get('end_reason') or row.get('status')}", id="summary")
        # Nothing here takes the focus (but the search box): a focused scroll view or table
        # would take ←/→/Home/End for itself, and those keys move through time.
        if self.ssh:
            view = TerminalView(id="terminal")
            view.can_focus = False
            yield view
        else:
            table: DataTable[Any] = DataTable(id="statements", cursor_type="row",
                                              zebra_stripes=True)
            table.can_focus = False
            yield table
            yield Static("", id="detail")
        yield Input(placeholder="search the output (Enter: next match, Esc: close)"
                    if self.ssh else "search the statements (Enter: next match, Esc: close)",
                    id="search")
        yield Static("", id="status")
        yield TimelineBar(id="timeline")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        if not self.ssh:
            self._fill_statements()
        if self._live:
            self.set_interval(TICK, self._tick)
            if isinstance(self.timeline, TerminalTimeline):
                self.run_worker(self._take_keyframes(), group="replay-keyframes",
                                exit_on_error=False)
        self.seek(0.0)

    def _fill_statements(self) -> None:
        """The statements, in the columns the width keeps (STATEMENT first: issue 16, at 80
        columns it was lost and at 120 RESULT took 40 characters to its 13)."""
        table = self.query_one("#statements", DataTable)
        assert isinstance(self.timeline, StatementTimeline)
        rows = [[clock(s.t, tenths=True), _verdict(s) + (f" ({s.rule})" if s.rule else ""),
                 "-" if s.duration_ms is None else f"{s.duration_ms:.1f} ms",
                 "-" if s.rows is None else str(s.rows),
                 s.status if not s.sqlstate else f"{s.sqlstate} {s.error or ''}",
                 shown.one_line(s.text, 500)] for s in self.timeline.statements]
        layout = lay_out(table, STATEMENT_COLUMNS, self.app.size.width, self._layout,
                         longest(rows, STATEMENT_COLUMNS))
        if layout is None:
            return
        self._layout = layout
        for cells in rows:
            table.add_row(*project(cells, layout))

    def on_resize(self) -> None:
        if not self.ssh and self._layout is not None:
            self._fill_statements()
            self.seek(self.position)  # the cursor back on the statement shown

    def on_unmount(self) -> None:
        self._executor.submit(self.store.close)  # after what the thread is doing now
        self._executor.shutdown(wait=False, cancel_futures=False)

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _take_keyframes(self) -> None:
        """Keyframes for the whole session, a slice at a time, so later seeks are fast."""
        timeline = self.timeline
        assert isinstance(timeline, TerminalTimeline)
        self._indexing = True
        try:
            while not await self._in_thread(timeline.build, None, BUILD_SLICE):
                self._show_status()
        finally:
            self._indexing = False
            self._show_status()

    async def idle(self) -> None:
        """Until every seek and search asked for is done and shown (tests, scripts)."""
        while self._seeking or self._searching or self._want is not None:
            self._settled.clear()
            await self._settled.wait()

    # --- moving ---------------------------------------------------------------------------

    def seek(self, t: float) -> None:
        duration = self.timeline.duration
        self.position = min(max(t, 0.0), duration)
        if isinstance(self.timeline, TerminalTimeline):
            self._want = self.position
            if not self._seeking:
                self._seeking = True
                self.run_worker(self._seek_loop(), group="replay-seek", exit_on_error=False)
        else:
            current = self.timeline.seek(self.position)
            self._show_statement(current)
        if self.playing:
            self._play_from = (time.monotonic(), self._to_play(self.position))
        self._show_status()

    async def _seek_loop(self) -> None:
        timeline = self.timeline
        assert isinstance(timeline, TerminalTimeline)
        try:
            while self._want is not None:
                t, self._want = self._want, None
                frame = await self._in_thread(lambda t=t: Frame(timeline.seek(t)))
                self.query_one("#terminal", TerminalView).show_screen(frame)
        finally:
            self._seeking = False
            self._settled.set()
            self._show_status()

    def _show_statement(self, index: int | None) -> None:
        assert isinstance(self.timeline, StatementTimeline)
        detail = self.query_one("#detail", Static)
        if index is None:
            detail.update("before the first statement")
            return
        table = self.query_one("#statements", DataTable)
        if table.cursor_row != index:
            table.move_cursor(row=index)
        s = self.timeline.statements[index]
        withdrawn = s.outcome == "withdrawn"
        lines = [f"-- #{s.seq} at {clock(s.t, tenths=True)}: "
                 + ("held" if withdrawn else s.verdict)
                 + (f" by rule {s.rule}" if s.rule else "")
                 + (f", approval {s.approval_id}" if s.approval_id else "")
                 + (", withdrawn by its client: nobody denied it" if withdrawn
                    else f", {s.status}")
                 + ("" if s.duration_ms is None else f", {s.duration_ms:.1f} ms")
                 + ("" if s.rows is None else f", {s.rows} rows")]
        if s.sqlstate or s.error:
            lines.append(f"-- error {s.sqlstate or ''}: {s.error or ''}")
        if s.masked:
            lines.append("-- masked: " + ", ".join(f"{k}: {n}" for k, n in s.masked.items()))
        lines.append(shown.escaped(s.text))  # its lines kept, controls escaped
        self.detail_text = "\n".join(lines)
        dark = self.app.current_theme.dark
        detail.update(Syntax(self.detail_text, "sql", word_wrap=True,
                             theme="monokai" if dark else "default",
                             background_color="default"))

    def _show_status(self) -> None:
        state = "▶ playing" if self.playing else "⏸ paused"
        if self._indexing and isinstance(self.timeline, TerminalTimeline):
            state += f"  (indexing {self.timeline.indexed:.0%}: seeks far ahead wait for it)"
        idle = "  idle squeezed" if self.skip_idle else ""
        needle = f"  search: {self._needle!r} (. next, , previous)" if self._needle else ""
        last = self.timeline.markers.previous(self.position + 1e-6, KINDS)
        event = (f"  last: {last.kind} at {clock(last.t, tenths=True)}: {last.label}"
                 if last else "")
        fine = self.timeline.duration < 600
        self.status_text = (f"{state}  {clock(self.position, tenths=fine)} / "
                            f"{clock(self.timeline.duration, tenths=fine)}  {self.speed:g}x"
                            f"{idle}{needle}{event}")
        self.query_one("#status", Static).update(Text(self.status_text))
        self.query_one("#timeline", TimelineBar).show(self.position, self.timeline.duration,
                                                      self.timeline.markers)

    def on_timeline_bar_seek(self, event: TimelineBar.Seek) -> None:
        self.seek(event.t)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(self.timeline, StatementTimeline):
            self.seek(self.timeline.time_of(event.cursor_row))

    # --- playing ----------------------------------------------------------------------------

    def _idle_map(self) -> IdleMap | None:
        if not self.skip_idle:
            return None
        if self._idle is None:
            timeline = self.timeline
            if isinstance(timeline, TerminalTimeline):
                self._idle = timeline.idle_map(MAX_IDLE)
            else:
                self._idle = IdleMap([m.t for m in timeline.markers], timeline.duration,
                                     MAX_IDLE)
        return self._idle

    def _to_play(self, t: float) -> float:
        idle = self._idle_map()
        return idle.to_play(t) if idle is not None else t

    def _to_session(self, p: float) -> float:
        idle = self._idle_map()
        return idle.to_session(p) if idle is not None else p

    def advance(self, seconds: float) -> None:
        """Play ``seconds`` of wall time at the current speed (the timer's step; tests)."""
        played = self._to_play(self.position) + seconds * self.speed
        self.seek(self._to_session(played))
        if self.position >= self.timeline.duration:
            self.playing = False
            self._show_status()

    def _tick(self) -> None:
        if not self.playing or self._play_from is None:
            return
        started, play_t = self._play_from
        target = self._to_session(play_t + (time.monotonic() - started) * self.speed)
        self.seek(target)
        if self.position >= self.timeline.duration:
            self.playing = False
            self._play_from = None
            self._show_status()

    def action_play(self) -> None:
        if not self.playing and self.position >= self.timeline.duration:
            self.position = 0.0  # at the end: play again from the start
        self.playing = not self.playing
        self._play_from = (time.monotonic(), self._to_play(self.position)) if self.playing \
            else None
        self.seek(self.position)

    def action_step(self, seconds: float) -> None:
        self.seek(self.position + seconds)

    def action_jump(self, where: str) -> None:
        self.seek(0.0 if where == "start" else self.timeline.duration)

    def action_speed(self, step: int) -> None:
        i = SPEEDS.index(self.speed) if self.speed in SPEEDS else 2
        self.speed = SPEEDS[min(max(i + step, 0), len(SPEEDS) - 1)]
        if self.playing:
            self._play_from = (time.monotonic(), self._to_play(self.position))
        self._show_status()

    def action_idle(self) -> None:
        self.skip_idle = not self.skip_idle
        if self.playing:
            self._play_from = (time.monotonic(), self._to_play(self.position))
        self._show_status()

    def action_command(self, direction: int) -> None:
        timeline = self.timeline
        # A marker exactly at the position is "here": step just past it either way.
        marker = (timeline.next_marker(self.position + 1e-6) if direction > 0
                  else timeline.previous_marker(self.position - 1e-6))
        if marker is None:
            self.notify("no more commands that way", timeout=2)
            return
        self.seek(marker.t)

    # --- searching --------------------------------------------------------------------------

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.value = self._needle or ""
        self.call_after_refresh(box.focus)  # focusable once it is laid out

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "search":
            return
        needle = event.value.strip()
        if not needle:
            return
        self._needle = needle
        self.action_match(1)

    def action_match(self, direction: int) -> None:
        if not self._needle:
            self.notify("no search yet: press / first", timeout=2)
            return
        self._searching += 1
        self.run_worker(self._match(self._needle, direction), group="replay-search",
                        exit_on_error=False)

    async def _match(self, needle: str, direction: int) -> None:
        try:
            found = await self._find(needle, direction < 0)
            if found is None:
                self.notify(f"{needle!r}: no {'later' if direction > 0 else 'earlier'} match",
                            timeout=3)
                self._show_status()
                return
            self.seek(found)
        finally:
            self._searching -= 1
            self._settled.set()

    async def _find(self, needle: str, backwards: bool) -> float | None:
        timeline = self.timeline
        if isinstance(timeline, TerminalTimeline):  # may read the whole output: its thread
            found: float | None = await self._in_thread(timeline.find, needle, self.position,
                                                        backwards)
            return found
        wanted = needle.lower()
        hits = [s.t for s in timeline.statements if wanted in s.text.lower()]
        if backwards:
            return max((t for t in hits if t < self.position), default=None)
        return min((t for t in hits if t > self.position), default=None)

    def action_back(self) -> None:
        box = self.query_one("#search", Input)
        if box.display:  # Esc closes the search box first
            box.display = False
            self.set_focus(None)
            return
        if self.standalone:
            self.app.exit()
        else:
            self.dismiss()
