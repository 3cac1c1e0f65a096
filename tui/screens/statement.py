"""A statement (or SSH command) whole: Enter on a row of a live session shows it here, with
its verdict, outcome and error, because the table cuts it to one line (issue 16: Enter did
nothing). Esc, Enter or q close it."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from engine import shown
from tui import timefmt


def describe(st: dict[str, Any], *, ssh: bool) -> str:
    """The lines above the text: number, time, verdict and rule, outcome, figures, error."""
    parts = [f"#{st.get('seq')} at {timefmt.clock(st.get('started_at'))} UTC",
             f"verdict {verdict(st)}"
             + (f" by rule {st['rule']}" if st.get("rule") else "")
             + (f", approval {st['approval_id']}" if st.get("approval_id") else ""),
             f"outcome {outcome(st)}"]
    if st.get("duration_ms") is not None:
        parts.append(f"{st['duration_ms']:.1f} ms")
    count = st.get("exit_status") if ssh else st.get("rows")
    if count is not None:
        parts.append(f"exit {count}" if ssh else f"{count} rows")
    lines = [" · ".join(parts)]
    if st.get("sqlstate") or st.get("error"):
        lines.append(f"error {st.get('sqlstate') or ''}: {st.get('error') or ''}".strip())
    return "\n".join(lines)


DECIDED = ("approved", "denied", "withdrawn")  # how a held statement ended


def verdict(st: dict[str, Any]) -> str:
    """What was decided, as its outcome says it for both protocols: "approved" or "denied"
    for a held SSH command too (its record keeps "review"), and "withdrawn" for a held
    statement its client withdrew (a cancel, a disconnect), which nobody denied (PostgreSQL's
    record says "denied": the client was answered with an error)."""
    if st.get("outcome") in DECIDED:
        return str(st["outcome"])
    return str(st.get("verdict") or "allow")


def outcome(st: dict[str, Any]) -> str:
    """What became of it; a statement held for approval is "held", not "running" (it has not
    reached the target); one its client withdrew is "withdrawn", not "denied"."""
    status = str(st.get("status") or "?")
    if status == "running" and st.get("verdict") == "review":
        return "held"
    if st.get("outcome") == "withdrawn":
        return "withdrawn"  # its SQLSTATE (57014, a cancel) is only what the client got
    return status + (f" {st['sqlstate']}" if st.get("sqlstate") else "")


class StatementDetail(ModalScreen[None]):
    CSS_PATH = "statement.tcss"
    BINDINGS = [
        Binding("escape", "close", "Close", id="statement.close"),
        Binding("enter", "close", "Close", show=False, id="statement.close-enter"),
        Binding("q", "close", "Close", show=False, id="statement.close-q"),
    ]

    def __init__(self, statement: dict[str, Any], *, ssh: bool) -> None:
        super().__init__()
        self.statement = statement
        self.ssh = ssh

    def compose(self) -> ComposeResult:
        st = self.statement
        # Line by line, numbered, what a display acts on escaped (``engine.shown``).
        text = shown.escaped(str(st.get("text") or ""))
        dark = self.app.current_theme.dark
        body = (Text(text) if self.ssh else
                Syntax(text, "sql", word_wrap=True, line_numbers=True,
                       theme="monokai" if dark else "default", background_color="default"))
        with VerticalScroll(id="statement-box"):
            yield Label("Command" if self.ssh else "Statement", id="statement-title")
            yield Static(Group(Text(describe(st, ssh=self.ssh)), Text(""), body),
                         id="statement-text")
            yield Label("Esc closes", id="statement-help")

    def action_close(self) -> None:
        self.dismiss(None)
