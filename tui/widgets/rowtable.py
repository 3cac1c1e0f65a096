"""A table of rows the operator reads down (a session's statements): the list keys of the
sessions and approvals lists — j, g/G, Home/End — where the screen keeps `k` for itself.

``ChoiceTable`` binds `k` to move up; on a session's screen `k` kills the session, so this
table leaves it to the screen (issue 16: no j/k, g/G, and Home went to the first column, not
the first row)."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable


class RowTable(DataTable[Any]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="rows.down"),
        Binding("g,home", "scroll_top", "First row", show=False, id="rows.first"),
        Binding("G,end", "scroll_bottom", "Last row", show=False, id="rows.last"),
    ]
