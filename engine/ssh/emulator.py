"""A terminal emulator (pyte) that survives whatever a target prints.

pyte's parser is a generator: one exception (a CSI parameter of thousands of digits overflows
``int()``) ends it, and every later byte would be lost. Over-long parameter strings are cut
before they reach it, and if the parser fails anyway it is replaced (the screen is kept), so a
hostile or broken program can garble its own screen but never stop the emulation.
"""

from __future__ import annotations

import logging
import re

import pyte
from wcwidth import wcwidth

log = logging.getLogger(__name__)

_LONG_CSI = re.compile(rb"\x1b\[[0-9;:?<=>!]{64,}")


class _Screen(pyte.Screen):  # type: ignore[misc]
    """pyte's screen, counting how often it scrolled (to follow a row as it moves up)."""

    scrolled = 0

    def index(self) -> None:
        bottom = (self.margins or (0, self.lines - 1))[1]
        if self.cursor.y == bottom:
            self.scrolled += 1
        super().index()

    @property
    def display(self) -> list[str]:
        """pyte's rendering, minus its failure on a wide character whose second cell was
        overwritten (an IndexError that any program could trigger with a backspace)."""
        rows = []
        for y in range(self.lines):
            line = self.buffer[y]
            cells: list[str] = []
            stub = False
            for x in range(self.columns):
                if stub:
                    stub = False
                    continue
                data = line[x].data or " "
                cells.append(data)
                stub = wcwidth(data[0]) == 2
            rows.append("".join(cells))
        return rows

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        super().resize(lines, columns)
        self.cursor.y = min(self.cursor.y, self.lines - 1)  # pyte leaves it below a shorter one
        self.cursor.x = min(self.cursor.x, self.columns - 1)


class Emulator:
    def __init__(self, cols: int, rows: int) -> None:
        self.screen = _Screen(max(cols, 1), max(rows, 1))
        self._stream = pyte.ByteStream(self.screen)

    def feed(self, data: bytes) -> None:
        if b"\x1b[" in data:
            data = _LONG_CSI.sub(b"\x1b[", data)
        try:
            self._stream.feed(data)
        except Exception as exc:  # pyte's parser died: start a fresh one on the same screen
            log.debug("terminal emulator reset after %s", exc)
            self._stream = pyte.ByteStream(self.screen)

    def resize(self, cols: int, rows: int) -> None:
        self.screen.resize(max(min(rows, 500), 1), max(min(cols, 1000), 1))
