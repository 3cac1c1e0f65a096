"""1 — Sessions: live ones first, then recent; `/` filters; Enter opens one (``Open``).

The selection is the session the operator chose, by id (``ChoiceTable``): a session opening
above it does not move it onto another one. If the chosen session leaves the list, nothing is
selected until the operator moves (Enter says so).
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

# What matters at 3 a.m. comes first, so that 80 columns show it: who, where, and in what state.
COLUMNS = ("ID", "IDENTITY", "CONNECTION", "STATUS", "DURATION", "STMTS", "STARTED UTC",
           "CLIENT")


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

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner")
        yield Input(placeholder="filter: identity, connection, client, application, id…",
                    id="filter")
        table = ChoiceTable(id="sessions", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        if self.hint:
            yield Static(self.hint, id="hint")
        yield Static("", id="summary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self._render_rows(self._clock())

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
        wanted = self.filter_text.lower()
        desired: dict[str, list[str]] = {}
        for row in self.rows:
            cells = self._cells(row, now)
            haystack = " ".join([*cells, row["id"], row.get("application_name") or "",
                                 row.get("database") or ""]).lower()
            if wanted and wanted not in haystack:
                continue
            desired[row["id"]] = cells
        if list(desired) != list(self._shown):
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
        self.query_one("#summary", Static).update(
            f"{live} live · {len(self.rows)} listed · {len(desired)} shown{filtered}")

    @staticmethod
    def _cells(row: dict[str, Any], now: float) -> list[str]:
        started = timefmt.parse(row.get("started_at"))
        ended = timefmt.parse(row.get("ended_at"))
        duration = (ended or now) - started if started else None
        status = row["status"]
        if row.get("waiting_for"):
            status = f"waiting {row['waiting_for']}"
        elif row.get("end_reason") and status != "live":
            status = f"{status}: {row['end_reason']}"
        who = row.get("identity") or "-"
        if row.get("identity_vendor"):  # an agent: whose it is
            who += f" ({row['identity_vendor']})"
        return [row["id"][:8], who, row.get("connection") or "-",
                status[:30], timefmt.span(duration), str(row.get("statements", 0)),
                timefmt.clock(row.get("started_at")), row.get("client_addr") or "-"]

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
