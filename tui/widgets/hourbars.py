"""Counts per hour over the last day, as bars the operator can read at a glance.

Textual's ``Sparkline`` scales between the smallest and the largest value and stretches the
data over the whole width: one busy hour (the demo's, or a gateway's first) fills the widget
as a solid block, and quiet hours are drawn as the lowest bar, not as nothing (issue 16). Here
each hour has its own column(s), a bar scaled to the largest hour shown (so 3 beside 300 stays
small), a quiet hour is a dim dot — a gap — and the second row labels the hours. Colours come
from component classes in the screen's ``.tcss`` (theme variables only).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

LEVELS = "▁▂▃▄▅▆▇█"


def bar(count: int, largest: int) -> str:
    """The bar for ``count`` when the largest hour holds ``largest``: a dot for nothing, else
    at least the lowest bar (one event is not nothing)."""
    if count <= 0 or largest <= 0:
        return "·"
    level = -(-count * len(LEVELS) // largest)  # ceiling: the largest hour is a full block
    return LEVELS[min(max(level, 1), len(LEVELS)) - 1]


class HourBars(Widget):
    COMPONENT_CLASSES = {"hourbars--bar", "hourbars--quiet", "hourbars--axis"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.counts: Sequence[int] = ()
        self.first_hour = 0  # the hour of day (UTC) of counts[0]

    def show(self, counts: Sequence[int], first_hour: int) -> None:
        self.counts, self.first_hour = counts, first_hour
        self.refresh()

    def render(self) -> Text:
        counts = list(self.counts)
        if not counts:
            return Text("")
        cell = max(1, min(6, self.size.width // len(counts)))  # columns per hour
        largest = max(counts)
        bars_style = self.get_component_rich_style("hourbars--bar")
        quiet_style = self.get_component_rich_style("hourbars--quiet")
        top = Text()
        for count in counts:
            glyph = bar(count, largest)
            top.append(glyph * cell, quiet_style if glyph == "·" else bars_style)
        axis = [" "] * (cell * len(counts))
        for i in range(0, len(counts), 6):  # a label every six hours, where it starts
            label = f"{(self.first_hour + i) % 24:02d}h"
            start = i * cell
            if start + len(label) <= len(axis):
                axis[start:start + len(label)] = label
        last = f"{(self.first_hour + len(counts) - 1) % 24:02d}h"  # the current hour, right
        if "".join(axis[-len(last) - 1:]).strip() == "":
            axis[-len(last):] = last
        top.append("\n")
        top.append("".join(axis), self.get_component_rich_style("hourbars--axis"))
        return top
