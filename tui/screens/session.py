"""One session: its statements (or SSH commands) with verdicts and outcomes, and for SSH the
terminal as the user sees it, through a terminal emulator; `k` kills it (reason, then yes), `K`
kills it and locks its identity out for a while (reason, duration and scope, then yes) so that
the client cannot reconnect at once.

The app fills the screen (``show``, ``show_output``); while the session is live the screen asks
for more twice a second (``Stale``), and a kill goes to the app as ``Kill``. Enter on a row
shows the statement whole (``StatementDetail``); in the table columns give way by importance,
the statement first (``tui.widgets.columns``), and a held one reads "held", not "running".
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from engine import shown
from tui import timefmt
from tui.screens.painting import paint
from tui.screens.reason import ReasonPrompt
from tui.screens.statement import StatementDetail, outcome
from tui.screens.statement import verdict as shown_verdict
from tui.source import Chunk
from tui.widgets.columns import Column, lay_out, longest, project
from tui.widgets.rowtable import RowTable
from tui.widgets.terminal import TerminalView

# rank: the statement first (at 80 columns it keeps 24 characters), then when, why and how.
COLUMNS = (Column("#", 4, 4), Column("TIME", 8, 1), Column("MS", 7, 5), Column("ROWS", 6, 6),
           Column("VERDICT", 18, 2, most=40), Column("RESULT", 14, 3, most=30),
           Column("STATEMENT", 20, 0, rest=True))
SSH_COLUMNS = (*COLUMNS[:3], Column("EXIT", 4, 6), *COLUMNS[4:6],
               Column("COMMAND", 20, 0, rest=True))


class SessionScreen(Screen[None]):
    AUTO_FOCUS = "#sessions"
    CSS_PATH = "sessions.tcss"
    BINDINGS = [
        Binding("k", "kill", "Kill session", id="session.kill"),
        Binding("K", "kill_lock_out", "Kill + lock out", id="session.kill_lock_out"),
        Binding("escape", "back", "Back", id="session.back"),
    ]

    class Stale(Message):
        """A live session's view wants its new statements (and SSH output)."""

        def __init__(self, session_screen: SessionScreen) -> None:
            super().__init__()
            self.session_screen = session_screen

    class Kill(Message):
        """The operator confirmed killing the session (``reason`` None: none given), with
        ``lock_out`` (a duration such as ``30m``) of its identity from every connection
        (``scope`` identity) or from this one (connection)."""

        def __init__(self, session_id: str, reason: str | None, lock_out: str | None = None,
                     scope: str = "identity") -> None:
            super().__init__()
            self.session_id = session_id
            self.reason = reason
            self.lock_out = lock_out
            self.scope = scope

    def __init__(self, session: dict[str, Any], *, follow: bool = True) -> None:
        """``follow``: ask for new statements while the session is live (not in snapshot
        tests, whose data is fixed)."""
        super().__init__()
        self.session = session
        self.follow = follow
        self.ssh = session.get("protocol") == "ssh"
        self.statements: list[dict[str, Any]] = []
        self.last_chunk = 0  # the last recorded SSH chunk shown
        self._terminals: set[int] = set()  # channels with a terminal (they record a size)
        self._layout: list[tuple[int, int]] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner")
        s = self.session
        where = s.get("target") if self.ssh else s.get("database")
        yield Static(f"{s['id']}  {s.get('identity')} → {s.get('connection')} "
                     f"({where}) from {s.get('client_addr')}  "
                     f"started {timefmt.clock(s.get('started_at'))}  {s['status']}",
                     id="summary")
        if self.ssh:
            yield TerminalView(id="terminal")
        yield RowTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self._render_rows()
        if self.session.get("status") == "live" and self.follow:
            self.set_interval(0.5, lambda: self.post_message(self.Stale(self)))

    def show_output(self, chunks: list[Chunk]) -> None:
        """Feed newly recorded SSH bytes to the terminal emulator, in order."""
        if not chunks:
            return
        try:
            terminal = self.query_one("#terminal", TerminalView)
        except NoMatches:
            return
        for seq, _t, channel, stream, data in chunks:
            self.last_chunk = max(self.last_chunk, seq)
            if stream == "r":
                cols, _, rows = data.decode(errors="replace").partition("x")
                if cols.isdigit() and rows.isdigit():
                    self._terminals.add(channel)
                    terminal.resize_terminal(int(cols), int(rows))
            elif stream in ("o", "e"):
                # exec output has no terminal to turn \n into \r\n: do it here
                terminal.feed(data if channel in self._terminals
                              else data.replace(b"\n", b"\r\n"))

    def show(self, statements: list[dict[str, Any]]) -> None:
        self.statements = statements
        paint(self, self._render_rows)

    def on_resize(self) -> None:
        self._render_rows()

    def _render_rows(self) -> None:
        statements = self.statements
        table = self.query_one("#sessions", DataTable)
        rows = [self._cells(st) for st in statements]
        columns = SSH_COLUMNS if self.ssh else COLUMNS
        layout = lay_out(table, columns, self.app.size.width, self._layout,
                         longest(rows, columns))
        self._layout = layout or self._layout
        assert self._layout is not None
        row = table.cursor_row
        table.clear()
        for cells in rows:
            table.add_row(*project(cells, self._layout))
        if statements:  # a refresh keeps the cursor where the operator put it
            table.move_cursor(row=min(row, len(statements) - 1), scroll=False)

    def _cells(self, st: dict[str, Any]) -> list[str]:
        """A statement's cells, in the columns' order."""
        verdict = shown_verdict(st) + (f" ({st['rule']})" if st.get("rule") else "")
        count = st.get("exit_status") if self.ssh else st["rows"]
        return [str(st["seq"]), timefmt.clock(st["started_at"]),
                "-" if st["duration_ms"] is None else f"{st['duration_ms']:.1f}",
                "-" if count is None else str(count), verdict, outcome(st),
                shown.one_line(st["text"], 500)]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self.statements):
            self.app.push_screen(StatementDetail(self.statements[event.cursor_row],
                                                 ssh=self.ssh))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_kill(self) -> None:
        self._kill(lock_out=False)

    def action_kill_lock_out(self) -> None:
        self._kill(lock_out=True)

    def _kill(self, *, lock_out: bool) -> None:
        """Reason, then (with a lock-out) for how long and of what, then yes."""
        if self.session["status"] != "live":
            self.app.notify("This session has already ended.", severity="warning")
            return
        sid, who = self.session["id"], self.session.get("identity") or "?"
        conn = self.session.get("connection") or "?"

        def confirm(reason: str, duration: str | None, scope: str) -> None:
            out = ""
            if duration is not None:
                out = (f" and lock {who} out of "
                       f"{conn if scope == 'connection' else 'every connection'} for {duration}")

            def confirmed(answer: str | None) -> None:
                if answer is not None and answer.lower() in ("y", "yes"):
                    self.post_message(self.Kill(sid, reason or None, duration, scope))

            self.app.push_screen(ReasonPrompt(f"Kill session {sid[:12]}{out}? Type yes to "
                                              "confirm", "yes / no"), confirmed)

        def reasoned(reason: str | None) -> None:
            if reason is None:
                return
            if not lock_out:
                confirm(reason, None, "identity")
                return

            def timed(answer: str | None) -> None:
                words = (answer or "").split()
                if not words:
                    return
                scope = "identity"
                if words[1:] in (["connection"], [conn]):
                    scope = "connection"
                elif words[1:]:
                    self.app.notify(f"Write a duration such as 30m, then nothing (every "
                                    f"connection) or “connection” (only {conn}).",
                                    title="Lock-out", severity="warning")
                    return
                confirm(reason, words[0], scope)

            self.app.push_screen(ReasonPrompt(
                f"Lock {who} out for how long? 30m, 2h, 1d — add “connection” to keep "
                f"{who} out of {conn} only", "duration [connection]"), timed)

        self.app.push_screen(ReasonPrompt(f"Kill session {sid[:12]} — why?",
                                          "reason (told to the user)"), reasoned)
