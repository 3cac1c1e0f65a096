"""2 — Approvals: the pending queue; the selected statement in full with SQL highlighting.

The selection is the request the operator chose, by id (``ChoiceTable``): requests coming and
going never move it onto another one. When the chosen request leaves the queue nothing is
selected until the operator moves, and `a`/`d` say so instead of acting on another request.
`a` approves and `d` denies, each asking for a reason (Enter confirms, Esc cancels) under the
statement it is about (the prompt covers the screen's own copy); the decision goes to the app
as a ``Decision`` message. After a decision of their own nothing is selected either, and the
screen says "You decided …" rather than that the request left. The command palette offers
both too while this screen is shown (``ApprovalCommands``).

Below the statement, recent decisions: how each request ended (``outcome``), newest first —
approved or denied by whom, expired, or withdrawn (by its client's cancel, or because its
session ended), which is never a denial. While the engine is unreachable the queue is marked
as it was when the engine was lost (``set_stale``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from engine import shown
from tui import timefmt
from tui.commands import Command, CommandList
from tui.screens.painting import paint
from tui.screens.reason import ReasonPrompt
from tui.widgets.choice import ChoiceTable

COLUMNS = ("ID", "REQUESTER", "CONNECTION", "RULE", "AGE", "LEFT", "OK'D")
DECIDED_COLUMNS = ("WHEN", "ID", "REQUESTER", "OUTCOME", "STATEMENT")
RECENT = 50  # decisions listed


def outcome(req: dict[str, Any]) -> str:
    """How a request left the queue, in a few words: "approved by bob", "denied by bob: not
    now", "expired: no decision within 300 s", "withdrawn: canceled by the client"."""
    status = req.get("status")
    why = f": {req['decision_reason']}" if req.get("decision_reason") else ""
    if status in ("approved", "denied"):
        return f"{status} by {req.get('decided_by') or '?'}{why}"
    if status in ("expired", "withdrawn"):
        return f"{status}{why}"
    return "no longer pending (the engine has not said how yet)"


class ApprovalCommands(CommandList):
    """Approve and deny from the command palette, while the queue is shown (the request they
    act on is the one selected here)."""

    def commands(self) -> list[Command]:
        screen = self.screen
        if not isinstance(screen, ApprovalsScreen):
            return []
        return [("Approve the selected request", "asks for a reason", screen.action_approve),
                ("Deny the selected request", "asks for a reason", screen.action_deny)]


class ApprovalsScreen(Screen[None]):
    AUTO_FOCUS = "#approvals"
    CSS_PATH = "approvals.tcss"
    COMMANDS = {ApprovalCommands}
    BINDINGS = [
        Binding("a", "approve", "Approve", id="approvals.approve"),
        Binding("d", "deny", "Deny", id="approvals.deny"),
    ]

    class Decision(Message):
        """The operator approved or denied a request (``reason`` None: none given)."""

        def __init__(self, request_id: str, approve: bool, reason: str | None) -> None:
            super().__init__()
            self.request_id = request_id
            self.approve = approve
            self.reason = reason

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.pending: list[dict[str, Any]] = []
        self.recent: dict[str, dict[str, Any]] = {}  # decided requests by id, to say why one left
        self.decided_here: set[str] = set()  # requests this operator decided here (the app's)
        self._clock = clock  # ages and time left are shown as of now
        self.stale_since: float | None = None  # the engine is unreachable since then

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner")
        yield Static("", id="stale")
        table = ChoiceTable(id="approvals")
        table.add_columns(*COLUMNS)
        yield table
        with VerticalScroll(id="detail"):
            yield Static("No approval requests are waiting.", id="statement")
        decided: DataTable[str] = DataTable(id="decided", show_cursor=False,
                                            zebra_stripes=True)
        decided.border_title = "Recent decisions"
        decided.add_columns(*DECIDED_COLUMNS)
        yield decided
        yield Footer()

    def on_mount(self) -> None:
        self._render_rows(self._clock())

    def show(self, data: dict[str, Any], now: float,
             outcomes: dict[str, dict[str, Any]] | None = None) -> None:
        """The queue and recent decisions; ``outcomes``: requests as the engine said it
        decided them (its events come before the store has them)."""
        self.pending = list(data.get("pending", []))
        recent = {r["id"]: r for r in data.get("recent", []) if r.get("status") != "pending"}
        for rid, req in (outcomes or {}).items():
            if req.get("status") not in (None, "pending"):
                recent[rid] = {**req, **recent.get(rid, {})}  # the store's, once it has it
        self.recent = recent
        paint(self, lambda: self._render_rows(now))

    def set_stale(self, since: float | None) -> None:
        """The engine is unreachable since ``since`` (None: reachable again)."""
        self.stale_since = since
        paint(self, lambda: self._render_rows(self._clock()))

    def _render_rows(self, now: float) -> None:
        table = self.query_one("#approvals", ChoiceTable)
        note = self.query_one("#stale", Static)
        note.display = self.stale_since is not None
        if self.stale_since is not None:
            now = min(now, self.stale_since)
            note.update(f"⚠ STALE: pending as of {timefmt.clock_of(self.stale_since)} UTC, "
                        "when the engine was lost; they may have been decided since")
        rows = []
        for r in self.pending:
            created, expires = timefmt.parse(r["created_at"]), timefmt.parse(r["expires_at"])
            rows.append((r["id"], [r["id"], r["requester"], r["connection"], r.get("rule") or "-",
                                   timefmt.span(now - created if created else None),
                                   timefmt.span(expires - now if expires else None),
                                   str(len(r.get("approvals", [])))]))
        table.fill(rows)
        self._show_selected()
        self._render_decided()

    def _render_decided(self) -> None:
        decided = self.query_one("#decided", DataTable)
        decided.clear()
        newest = sorted(self.recent.values(),
                        key=lambda r: r.get("decided_at") or r.get("created_at") or "",
                        reverse=True)[:RECENT]
        for r in newest:
            decided.add_row(timefmt.clock(r.get("decided_at") or r.get("created_at")),
                            r["id"], str(r.get("requester") or "-"), outcome(r)[:60],
                            shown.one_line(str(r.get("statement") or ""), 120))

    def selected(self) -> dict[str, Any] | None:
        """The request the operator chose, by id — never whatever row the cursor is on."""
        chosen = self.query_one("#approvals", ChoiceTable).chosen
        return next((r for r in self.pending if r["id"] == chosen), None)

    def _left(self) -> str | None:
        """Why nothing is selected: the chosen request left the queue (None: it did not)."""
        lost = self.query_one("#approvals", ChoiceTable).lost
        if lost is None:
            return None
        if lost in self.decided_here:  # the operator's own decision: no news to them
            return f"You decided {lost}: nothing is selected."
        req = self.recent.get(lost)
        how = f" ({outcome(req)})" if req is not None else ""
        return f"Request {lost} left the queue{how}: nothing is selected."

    @on(ChoiceTable.Chosen)
    def _chosen(self) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        detail = self.query_one("#statement", Static)
        req = self.selected()
        if req is None:
            left = self._left()
            if left is not None:
                detail.update(f"{left}\nMove with ↑/↓ (or j/k) to choose a request."
                              if self.pending else left)
            else:
                detail.update("No approval requests are waiting.")
            return
        dark = self.app.current_theme.dark
        # The statement line by line, numbered (a line the screen wraps has no number), what a
        # display acts on escaped: a line after a ``--`` comment is its own (round 18).
        detail.update(Group(
            Text(f"{req['id']}: {req['requester']} on {req['connection']}\n"
                 f"rule {req.get('rule')}: {shown.escaped(str(req.get('reason')))}",
                 style="bold"),
            Syntax(shown.escaped(req["statement"]), "sql", word_wrap=True, line_numbers=True,
                   theme="monokai" if dark else "default", background_color="default")))

    def action_approve(self) -> None:
        self._decide(approve=True)

    def action_deny(self) -> None:
        self._decide(approve=False)

    def _decide(self, *, approve: bool) -> None:
        req = self.selected()
        if req is None:
            left = self._left()
            if left is not None:
                self.app.notify(f"{left} Move with ↑/↓ to choose one, then press "
                                f"{'a' if approve else 'd'}.", severity="warning")
            else:
                self.app.notify("No approval requests are waiting.", severity="warning")
            return
        verb = "Approve" if approve else "Deny"

        def decided(reason: str | None) -> None:
            if reason is not None:  # None: the operator pressed Esc
                self.post_message(self.Decision(req["id"], approve, reason or None))

        self.app.push_screen(
            ReasonPrompt(f"{verb} {req['id']} from {req['requester']} on {req['connection']}?",
                         "reason (optional)" if approve else "reason (told to the user)",
                         detail=shown.escaped(str(req.get("statement") or ""))),
            decided)
