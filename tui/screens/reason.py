"""A one-line prompt for a reason (or a confirmation): Enter confirms, Esc cancels.

``detail`` is what the answer is about (the statement to approve or deny), shown above the
box: the prompt sits over the screen, and at 80x24 it covered the statement being decided.
"""

from __future__ import annotations

import textwrap

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

DETAIL_LINES = 6  # of the statement in the prompt; the box keeps its input in view
DETAIL_WIDTH = 62  # the prompt is 70 wide, less its border and padding


def excerpt(text: str) -> str:
    """``text`` as the prompt shows it: whole when it fits in ``DETAIL_LINES``, else its first
    lines and how much is not shown (never cut without saying so)."""
    rows = [row for line in text.splitlines() or [""]
            for row in textwrap.wrap(line, DETAIL_WIDTH, replace_whitespace=False,
                                     drop_whitespace=False) or [""]]
    if len(rows) <= DETAIL_LINES:
        return text
    left = len(rows) - DETAIL_LINES + 1
    return "\n".join([*rows[:DETAIL_LINES - 1],
                      f"… {left} more line{'s' if left > 1 else ''}: Esc, and read it whole"])


class ReasonPrompt(ModalScreen[str | None]):
    CSS_PATH = "reason.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="reason.cancel")]

    def __init__(self, title: str, placeholder: str = "reason (optional)",
                 detail: str | None = None) -> None:
        super().__init__()
        self._title = title
        self._placeholder = placeholder
        self._detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self._title, id="prompt-title")
            if self._detail:
                yield Static(excerpt(self._detail), id="prompt-detail", markup=False)
            field = Input(placeholder=self._placeholder, id="prompt-input")
            # Headless (tests, screenshots) no one sees it blink: a screenshot taken mid-blink
            # differed from the pinned one by the cursor alone.
            field.cursor_blink = not self.app.is_headless
            yield field
            yield Label("Enter confirms · Esc cancels", id="prompt-help")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
