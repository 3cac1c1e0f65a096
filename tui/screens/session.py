"""One session: its statements with verdicts and outcomes; `k` kills it (reason, then yes)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from tui import timefmt
from tui.screens.painting import paint
from tui.screens.reason import ReasonPrompt

COLUMNS = ("#", "TIME", "MS", "ROWS", "VERDICT", "RESULT", "STATEMENT")


class SessionScreen(Screen[None]):
    AUTO_FOCUS = "#sessions"
    CSS_PATH = "sessions.tcss"
    BINDINGS = [
        Binding("k", "kill", "Kill session", id="session.kill"),
        Binding("escape", "back", "Back", id="session.back"),
    ]

    def __init__(self, session: dict[str, Any]) -> None:
        super().__init__()
        self.session = session
        self.statements: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner")
        s = self.session
        yield Static(f"{s['id']}  {s.get('identity')} → {s.get('connection')} "
                     f"({s.get('database')}) from {s.get('client_addr')}  "
                     f"started {timefmt.clock(s.get('started_at'))}  {s['status']}",
                     id="summary")
        table: DataTable[str] = DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self._render_rows()

    def show(self, statements: list[dict[str, Any]]) -> None:
        self.statements = statements
        paint(self, self._render_rows)

    def _render_rows(self) -> None:
        statements = self.statements
        table = self.query_one("#sessions", DataTable)
        table.clear()
        for st in statements:
            outcome = st["status"]
            if st.get("sqlstate"):
                outcome += f" {st['sqlstate']}"
            verdict = st.get("verdict") or "allow"
            if st.get("rule"):
                verdict += f" ({st['rule']})"
            text = " ".join(st["text"].split())
            table.add_row(str(st["seq"]), timefmt.clock(st["started_at"]),
                          "-" if st["duration_ms"] is None else f"{st['duration_ms']:.1f}",
                          "-" if st["rows"] is None else str(st["rows"]), verdict, outcome,
                          text[:200])

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_kill(self) -> None:
        if self.session["status"] != "live":
            self.app.notify("This session has already ended.", severity="warning")
            return
        sid = self.session["id"]

        def reasoned(reason: str | None) -> None:
            if reason is None:
                return

            def confirmed(answer: str | None) -> None:
                if answer is not None and answer.lower() in ("y", "yes"):
                    self.app.kill(sid, reason or None)  # type: ignore[attr-defined]

            self.app.push_screen(ReasonPrompt(f"Kill session {sid[:12]}? Type yes to confirm",
                                              "yes / no"), confirmed)

        self.app.push_screen(ReasonPrompt(f"Kill session {sid[:12]} — why?",
                                          "reason (told to the user)"), reasoned)
