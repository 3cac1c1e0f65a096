"""A plain-text progress line for long exports and checks, on stderr when it is a terminal.

Plain ``\\r``-rewritten text: the operator may be on a jump host over SSH at 3 a.m., and the
engine side never imports Textual. Nothing is written when stderr is a file or a pipe (a script
capturing stderr wants the one-line result, not a hundred redraws). The line is redrawn only
when the whole percentage changes, so a million small chunks cost a hundred writes, and the
line is wiped when the work ends so that the result line stands alone.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

_BAR = 30


class Progress:
    def __init__(self, label: str, total: int, *, unit: str = "bytes",
                 stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.done = 0
        self._stream = sys.stderr if stream is None else stream
        self.enabled = _is_terminal(self._stream)
        self._shown = -1
        self._width = 0

    def advance(self, amount: int) -> None:
        self.done += amount
        if not self.enabled:
            return
        percent = 100 if self.total == 0 else min(100, self.done * 100 // self.total)
        if percent != self._shown:
            self._shown = percent
            self._draw(percent)

    def _draw(self, percent: int) -> None:
        filled = _BAR * percent // 100
        line = (f"{self.label} [{'#' * filled}{'.' * (_BAR - filled)}] {percent:3d}%"
                f"  {_amount(min(self.done, self.total) if self.total else self.done, self.unit)}"
                f" of {_amount(self.total, self.unit)}")
        self._width = max(self._width, len(line))
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()

    def close(self) -> None:
        if self.enabled and self._shown >= 0:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._shown = -1

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False


def _amount(value: int, unit: str) -> str:
    if unit != "bytes":
        return f"{value} {unit}"
    if value >= 1 << 20:
        return f"{value / (1 << 20):.1f} MB"
    if value >= 1 << 10:
        return f"{value / (1 << 10):.1f} kB"
    return f"{value} B"
