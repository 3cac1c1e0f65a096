"""A recorded terminal, shown through a terminal emulator (pyte) — never by writing the
recorded bytes to the operator's terminal (ARCHITECTURE.md invariant 7).

Only characters from pyte's screen buffer reach Textual, each drawn with a style built from the
cell's attributes; control characters that a recording could smuggle into a cell are drawn as
``?``. Titles, clipboard writes (OSC 52), device queries and oversized sequences are consumed
by the emulator and have no effect outside this widget.
"""

from __future__ import annotations

from typing import Any

import pyte
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from recordings.emulator import Emulator

_NAMED = {"brown": "yellow"}  # pyte's name for ANSI colour 3


def _colour(name: str) -> str | None:
    if name == "default":
        return None
    if len(name) == 6 and all(c in "0123456789abcdefABCDEF" for c in name):
        return f"#{name}"
    return _NAMED.get(name, name)


def _style(char: pyte.screens.Char) -> Style:
    fg, bg = _colour(char.fg), _colour(char.bg)
    if char.reverse:
        fg, bg = bg or "black", fg or "white"
    try:
        return Style(color=fg, bgcolor=bg, bold=char.bold, italic=char.italics,
                     underline=char.underscore, strike=char.strikethrough)
    except Exception:  # an unknown colour name: draw it plain rather than fail
        return Style(bold=char.bold)


def _safe(text: str) -> str:
    return "".join("?" if ord(c) < 32 or ord(c) == 127 or 0x80 <= ord(c) < 0xA0 else c
                   for c in text)


class TerminalView(ScrollView):
    """The screen of one recorded terminal at its current point in the recording."""

    DEFAULT_CSS = """
    TerminalView {
        height: auto;
        max-height: 26;
        border: round $primary;
    }
    """

    def __init__(self, cols: int = 80, rows: int = 24, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._emulator = Emulator(cols, rows)
        self.screen_buffer: Any = self._emulator.screen
        self.virtual_size = Size(cols, rows)
        self.fed = 0

    def feed(self, data: bytes) -> None:
        self._emulator.feed(data)
        self.fed += len(data)
        self.refresh()

    def resize_terminal(self, cols: int, rows: int) -> None:
        self._emulator.resize(cols, rows)
        self.virtual_size = Size(self.screen_buffer.columns, self.screen_buffer.lines)
        self.refresh()

    def show_screen(self, screen: Any) -> None:
        """Render ``screen`` instead of this view's own: anything with pyte's ``buffer``
        (rows indexable by column), ``cursor``, ``lines``, ``columns`` and ``display`` — a
        replay's ``Frame``."""
        self.screen_buffer = screen
        self.virtual_size = Size(screen.columns, screen.lines)
        self.refresh()

    def text(self) -> str:
        """The screen as plain text (tests, search)."""
        return "\n".join(line.rstrip() for line in self.screen_buffer.display)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = y + scroll_y
        screen = self.screen_buffer
        if row >= screen.lines:
            return Strip.blank(self.size.width)
        line = screen.buffer[row]
        segments: list[Segment] = []
        run, run_style = "", None
        for x in range(screen.columns):
            char = line[x]
            style = _style(char)
            if style != run_style and run:
                segments.append(Segment(_safe(run), run_style))
                run = ""
            run_style = style
            run += char.data or " "
        if run:
            segments.append(Segment(_safe(run), run_style))
        cursor = screen.cursor
        strip = Strip(segments, screen.columns)
        if row == cursor.y and not cursor.hidden and 0 <= cursor.x < screen.columns:
            strip = Strip.join([strip.crop(0, cursor.x),
                                strip.crop(cursor.x, cursor.x + 1).apply_style(
                                    Style(reverse=True)),
                                strip.crop(cursor.x + 1, screen.columns)])
        return strip.crop(scroll_x, scroll_x + self.size.width)
