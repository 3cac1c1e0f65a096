"""1 — Sessions: live ones first, then recent; `/` filters; Enter opens one (``Open``).

The selection is the session the operator chose, by id (``ChoiceTable``): a session opening
above it does not move it onto another one. If the chosen session leaves the list, nothing is
selected until the operator moves (Enter says so).

STATUS is one word of fixed width (live, waiting, closed, killed, …) and DETAIL says the rest
(which request it waits for, who killed it and why), so the column never jumps in width nor
says "killed: killed by". Columns give way by importance (``tui.widgets.columns``): at 80
columns ID, IDENTITY, STATUS, CONNECTION, STARTED and CLIENT stay. While the engine is
unreachable (``set_stale``) nothing here is live any more: live and waiting sessions read
"live?" and "waiting?", durations stop at the moment the engine was lost, and the summary says
since when.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from tui import timefmt
from tui.screens.painting import paint
from tui.widgets.choice import ChoiceTable
from tui.widgets.columns import Column, lay_out, longest, project

# In the order shown; rank: what stays when the terminal is narrow (who, in what state, where,
# since when, from where), then how long and how much, then the details.
# IDENTITY grows to its longest name with room to spare (an agent's carries its vendor).
COLUMNS = (Column("ID", 8, 0), Column("IDENTITY", 14, 1, most=32), Column("CONNECTION", 10, 3),
           Column("STATUS", 11, 2), Column("DURATION", 8, 6), Column("STMTS", 6, 7),
           Column("STARTED", 8, 4), Column("CLIENT", 15, 5), Column("DETAIL", 16, 8, rest=True))


class SessionsScreen(Screen[None]):
    AUTO_FOCUS = "#sessions"
    CSS_PATH = "sessions.tcss"
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="sessions.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="sessions.clear"),
        Binding("enter", "open", "Open", id="sessions.open"),
    ]

    class Open(Message):
        """The operator chose a session to look at: its live view, or its replay."""

        def __init__(self, session: dict[str, Any]) -> None:
            super().__init__()
            self.session = session  # the row as listed

    def __init__(self, hint: str | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.hint = hint
        self._clock = clock  # durations are shown as of now
        self.rows: list[dict[str, Any]] = []
        self.filter_text = ""
        self._shown: dict[str, list[str]] = {}  # session id → cells as on screen, in order
        self._layout: list[tuple[int, int]] | None = None  # columns kept, and their widths
        self.stale_since: float | None = None  # the engine is unreachable since then

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner")
        yield Input(placeholder="filter: identity, connection, client, application, id…",
                    id="filter")
        yield ChoiceTable(id="sessions", zebra_stripes=True)
        if self.hint:
            yield Static(self.hint, id="hint")
        yield Static("", id="summary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self._render_rows(self._clock())

    def on_resize(self) -> None:
        self._render_rows(self._clock())

    def set_stale(self, since: float | None) -> None:
        """The engine is unreachable since ``since`` (None: reachable again)."""
        self.stale_since = since
        paint(self, lambda: self._render_rows(self._clock()))

    def show(self, data: dict[str, Any], now: float) -> None:
        live = {s["id"]: {**s, "status": "live"} for s in data.get("live", [])}
        recent = [r for r in data.get("recent", []) if r["id"] not in live]
        self.rows = [*live.values(), *recent]
        paint(self, lambda: self._render_rows(now))

    def _render_rows(self, now: float, *, operator: bool = False) -> None:
        """Update the table in place: only changed cells are touched, and the table is rebuilt
        only when sessions come, go or reorder (a full rebuild of 1,000 rows costs seconds).
        ``operator``: the operator's filter changed what is shown (see ``ChoiceTable.fill``)."""
        table = self.query_one("#sessions", ChoiceTable)
        if self.stale_since is not None:
            now = min(now, self.stale_since)  # nothing is known to have lasted longer
        every = [(row, self._cells(row, now, stale=self.stale_since is not None))
                 for row in self.rows]
        layout = lay_out(table, COLUMNS, self.app.size.width, self._layout,
                         longest((cells for _, cells in every), COLUMNS))
        if layout is not None:  # new columns: every row is filled again
            self._layout, self._shown = layout, {}
        assert self._layout is not None
        wanted = self.filter_text.lower()
        desired: dict[str, list[str]] = {}
        for row, cells in every:
            haystack = " ".join([*cells, row["id"], row.get("application_name") or "",
                                 row.get("database") or ""]).lower()
            if wanted and wanted not in haystack:
                continue
            desired[row["id"]] = project(cells, self._layout)
        if list(desired) != list(self._shown) or layout is not None:
            table.fill(list(desired.items()), operator=operator)
        else:
            for index, (sid, cells) in enumerate(desired.items()):
                before = self._shown[sid]
                for column, (old, new) in enumerate(zip(before, cells, strict=True)):
                    if old != new:
                        table.update_cell_at(Coordinate(index, column), new)
        self._shown = desired
        live = sum(1 for r in self.rows if r["status"] == "live")
        filtered = f" · filter “{self.filter_text}”" if self.filter_text else ""
        as_of = (f"⚠ as of {timefmt.clock_of(self.stale_since)} UTC, when the engine was lost: "
                 if self.stale_since is not None else "")
        self.query_one("#summary", Static).update(
            f"{as_of}{live} live · {len(self.rows)} listed · {len(desired)} shown{filtered}"
            " · times UTC")

    @staticmethod
    def _cells(row: dict[str, Any], now: float, *, stale: bool = False) -> list[str]:
        """Every column's cell, in ``COLUMNS`` order (the layout picks those shown)."""
        started = timefmt.parse(row.get("started_at"))
        ended = timefmt.parse(row.get("ended_at"))
        duration = (ended or now) - started if started else None
        status, detail = state(row)
        if stale and row["status"] == "live":
            status += "?"  # as it was when the engine was lost, not as it is
        who = row.get("identity") or "-"
        if row.get("identity_vendor"):  # an agent: whose it is
            who += f" ({row['identity_vendor']})"
        return [row["id"][:8], who, row.get("connection") or "-", status,
                timefmt.span(duration), str(row.get("statements", 0)),
                timefmt.clock(row.get("started_at")), row.get("client_addr") or "-", detail]

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter_text = ""
        self.query_one("#sessions", ChoiceTable).focus()
        self._render_rows(self._clock(), operator=True)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._render_rows(self._clock(), operator=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#sessions", ChoiceTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self._open(event.row_key.value)

    @on(ChoiceTable.NothingChosen)
    def action_open(self) -> None:
        table = self.query_one("#sessions", ChoiceTable)
        if table.chosen is None:
            gone = f"Session {table.lost[:8]} left the list: " if table.lost else ""
            self.app.notify(f"{gone}nothing is selected. Move with ↑/↓ to choose a session.",
                            severity="warning")
            return
        self._open(table.chosen)

    def _open(self, session_id: str) -> None:
        row = next((r for r in self.rows if r["id"] == session_id), None)
        if row is not None:
            self.post_message(self.Open(row))


def state(row: dict[str, Any]) -> tuple[str, str]:
    """A session's STATUS (one word) and DETAIL: a live one waiting for an approval is
    "waiting" (for which request); an ended one says why, without its status again ("killed",
    "by oncall: runaway", not "killed: killed by oncall: runaway")."""
    if row["status"] == "live":
        if row.get("waiting_for"):
            return "waiting", f"for approval {row['waiting_for']}"
        return "live", row.get("application_name") or ""
    status, reason = str(row["status"]), str(row.get("end_reason") or "")
    if reason.lower().startswith(status.lower()):
        reason = reason[len(status):].lstrip(" :")
    return status, reason
