"""The replay's timeline bar: where we are, how long it is, and what happened when.

Two rows the width of the widget. The first holds a mark per column where something happened
in that column's slice of time — the most telling one when several share a column (a kill
over a block over a withdrawn command over a held one over an ordinary one); a withdrawn
command has its own mark (↩): its client gave up on it, nobody denied it. The second is the
played part, with the position as a block. A click or a drag anywhere on it asks to seek
there (``Seek``). Colours come from component classes in ``tui/screens/replay.tcss`` (theme
variables only).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from recordings.replay import Marker

# Marks and their precedence when several markers share a column (later wins).
_GLYPHS: dict[str, str] = {
    "command": "│", "masked": "◆", "approved": "✓", "review": "⏸", "withdrawn": "↩",
    "denied": "✗", "block": "✗", "end": "■", "kill": "☠",
}
_ORDER = ("command", "masked", "approved", "review", "withdrawn", "denied", "block", "end",
          "kill")
_RANK = {kind: i for i, kind in enumerate(_ORDER)}


class TimelineBar(Widget):
    COMPONENT_CLASSES = {
        "timeline--played", "timeline--rest", "timeline--position", "timeline--command",
        "timeline--block", "timeline--review", "timeline--withdrawn", "timeline--approved",
        "timeline--masked", "timeline--end",
    }

    class Seek(Message):
        """The operator clicked or dragged to ``t`` seconds from the session's start."""

        def __init__(self, t: float) -> None:
            super().__init__()
            self.t = t

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.duration = 0.0
        self.position = 0.0
        self.markers: Sequence[Marker] = ()
        self._dragging = False

    def show(self, position: float, duration: float, markers: Sequence[Marker]) -> None:
        self.position, self.duration, self.markers = position, duration, markers
        self.refresh()

    def _column(self, t: float, width: int) -> int:
        if self.duration <= 0:
            return 0
        return min(int(t / self.duration * width), width - 1)

    def render(self) -> Text:
        width = max(self.size.width, 1)
        marks: list[tuple[int, str] | None] = [None] * width
        for marker in self.markers:
            x = self._column(marker.t, width)
            rank = _RANK.get(marker.kind, 0)
            there = marks[x]
            if there is None or rank >= there[0]:
                marks[x] = (rank, marker.kind)
        top = Text()
        for mark in marks:
            if mark is None:
                top.append(" ")
                continue
            kind = mark[1]
            style = {"denied": "block", "kill": "block"}.get(kind, kind)
            top.append(_GLYPHS[kind], self.get_component_rich_style(f"timeline--{style}"))
        at = self._column(self.position, width)
        bottom = Text()
        bottom.append("━" * at, self.get_component_rich_style("timeline--played"))
        bottom.append("█", self.get_component_rich_style("timeline--position"))
        bottom.append("─" * (width - at - 1), self.get_component_rich_style("timeline--rest"))
        top.append("\n")
        top.append_text(bottom)
        return top

    # --- mouse: click or drag to seek -----------------------------------------------------

    def _seek_to(self, x: int) -> None:
        width = max(self.size.width, 1)
        t = max(0.0, min(x / max(width - 1, 1), 1.0)) * self.duration
        self.post_message(self.Seek(t))

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self._dragging = True
        self.capture_mouse()
        self._seek_to(event.x)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._dragging:
            self._seek_to(event.x)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._dragging:
            self._dragging = False
            self.release_mouse()
