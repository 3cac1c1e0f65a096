"""Table columns that give way by importance when the terminal is narrow.

A ``DataTable`` sizes each column to its longest cell and lets the table scroll sideways, so at
80 columns what sits on the right (STARTED, CLIENT, STATEMENT) is simply off screen, while a
long error message makes RESULT 40 characters wide at 120 (issue 16). Here each column has a
width and a rank: the most important columns are kept first while they fit, one column may
take the rest of the room (a statement), and cells are cut to their column with "…". The kept
columns are shown in their own order, not in rank order.

A column with ``most`` is as wide as its longest cell up to that, when there is room to spare
once the columns that fit are kept (in rank order, up to half of that room while a ``rest``
column takes what is left): an identity such as "triage-agent (example-ai)" is read whole at
160 columns, where a fixed 14 cut it while DETAIL had 60, and at 80 it is cut rather than push
CLIENT out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from textual.widgets import DataTable

PADDING = 2  # a DataTable cell's padding, one column on each side
SCROLLBAR = 2  # kept free for the vertical scrollbar a long list shows


@dataclass(frozen=True, slots=True)
class Column:
    label: str
    width: int  # the room it needs; for the ``rest`` column, the least it can do with
    rank: int  # 0 first: kept before any column of a higher rank
    rest: bool = False  # takes what the others leave (at most one column)
    most: int = 0  # with room to spare, as wide as its longest cell up to this (0: fixed)


def fit(columns: Sequence[Column], room: int,
        longest: Mapping[int, int] | None = None) -> list[tuple[int, int]]:
    """(index into ``columns``, width) of the columns kept in ``room`` characters, in the
    columns' own order. The most important column is kept whatever the room. ``longest``:
    the longest cell of each column (by index), for the columns with ``most``."""
    room -= SCROLLBAR
    kept: set[int] = set()
    used = 0
    for i in sorted(range(len(columns)), key=lambda i: columns[i].rank):
        need = columns[i].width + PADDING
        if kept and used + need > room:
            continue  # a smaller, less important column may still fit
        kept.add(i)
        used += need
    widths = {i: columns[i].width for i in kept}
    # columns that grow to their cells share at most half of the room to spare: the rest
    # column (a statement: the most important) keeps the other half
    spare = max(room - used, 0)
    budget = spare // 2 if any(columns[i].rest for i in kept) else spare
    for i in sorted(kept, key=lambda i: columns[i].rank):
        grow = min(min(columns[i].most, (longest or {}).get(i, 0)) - widths[i], budget)
        if grow > 0:
            widths[i] += grow
            used += grow
            budget -= grow
    for i in kept:
        if columns[i].rest:
            widths[i] += max(room - used, 0)
    return [(i, widths[i]) for i in sorted(kept)]


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def longest(rows: Iterable[Sequence[str]], columns: Sequence[Column]) -> dict[int, int]:
    """The longest cell of each column that grows to its cells (``most``), by index."""
    growing = [i for i, c in enumerate(columns) if c.most]
    found = dict.fromkeys(growing, 0)
    for cells in rows:
        for i in growing:
            found[i] = max(found[i], len(cells[i]))
    return found


def lay_out(table: DataTable[str], columns: Sequence[Column], room: int,
            before: list[tuple[int, int]] | None,
            widest: Mapping[int, int] | None = None) -> list[tuple[int, int]] | None:
    """Set the table's columns for ``room``; the new layout, or None when it did not change
    (the rows stay). When it changed the table is empty: the caller fills it again.
    ``widest``: the longest cells (``longest``), for columns that grow to them."""
    layout = fit(columns, room, widest)
    if layout == before:
        return None
    table.clear(columns=True)
    for i, width in layout:
        table.add_column(columns[i].label, width=width, key=str(i))
    return layout


def project(cells: Sequence[str], layout: Sequence[tuple[int, int]]) -> list[str]:
    """The cells of the kept columns, each cut to its width."""
    return [cut(cells[i], width) for i, width in layout]
