"""A table whose selection is the row the operator chose, by key — never a row position.

Live lists refresh under the operator's hand: a request above the cursor is decided elsewhere, a
session opens at the top. A selection kept as a position would then point at another item, and
the next `a` would approve a request nobody looked at (issue 16). ``ChoiceTable`` keeps the
operator's choice as a row key: a refresh (``fill``) puts the cursor back on that key wherever
it moved. When the chosen row leaves, nothing is chosen — the cursor is hidden — until the
operator moves again; ``fill`` returns the key that left so the screen can say so.

Only the operator's own moves choose (arrows, j/k, g/G, Home/End, page keys, a click), each
followed by ``Chosen``; Enter with nothing chosen posts ``NothingChosen`` instead of opening
whatever row the hidden cursor sits on.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable


class ChoiceTable(DataTable[str]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="choice.down"),
        Binding("k", "cursor_up", "Up", show=False, id="choice.up"),
        Binding("g,home", "first", "First row", show=False, id="choice.first"),
        Binding("G,end", "last", "Last row", show=False, id="choice.last"),
    ]

    class Chosen(Message):
        """The operator moved to the row with ``key``."""

        def __init__(self, table: ChoiceTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> ChoiceTable:
            return self.table

    class NothingChosen(Message):
        """Enter was pressed while nothing is chosen (the chosen row left)."""

        def __init__(self, table: ChoiceTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> ChoiceTable:
            return self.table

    def __init__(self, *, id: str | None = None, zebra_stripes: bool = False) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=zebra_stripes)
        self.chosen: str | None = None
        self.lost: str | None = None  # the chosen key that left; None once the operator moves

    def fill(self, rows: Sequence[tuple[str, Sequence[str]]], *,
             operator: bool = False) -> str | None:
        """Show ``rows`` (key, cells) in order, the cursor on the chosen key wherever it went.

        The first rows ever shown choose their first row (the operator sees what is chosen
        before acting). When the chosen key is no longer there, nothing is chosen and its key is
        returned — unless ``operator``: the operator's own act (typing a filter) hid it, and the
        first row shown is chosen instead."""
        before = self.cursor_row
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        keys = [key for key, _ in rows]
        left: str | None = None
        if self.chosen is not None and self.chosen not in keys:
            left, self.chosen = self.chosen, None
            if not operator:
                self.lost = left
        if self.chosen is None and self.lost is None and keys:
            self.chosen = keys[0]
        if self.chosen is not None:
            self.show_cursor = True
            self.move_cursor(row=keys.index(self.chosen))
        else:
            # Hidden where the chosen row was, so that the first move starts from there.
            self.show_cursor = False
            if keys:
                self.move_cursor(row=min(max(before, 0), len(keys) - 1), scroll=False)
        return left

    def _choose(self) -> None:
        """The operator moved: the row under the cursor is the choice."""
        if not self.row_count:
            return
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        if key is None:
            return
        self.chosen, self.lost = key, None
        self.post_message(self.Chosen(self, key))

    def _reveal(self) -> bool:
        """Show the hidden cursor where it is; True if it was hidden (that is the move)."""
        if self.show_cursor or not self.row_count:
            return False
        self.show_cursor = True
        return True

    def action_cursor_down(self) -> None:
        if not self._reveal():
            super().action_cursor_down()
        self._choose()

    def action_cursor_up(self) -> None:
        if self._reveal():
            self.move_cursor(row=max(self.cursor_row - 1, 0))
        else:
            super().action_cursor_up()
        self._choose()

    def action_page_down(self) -> None:
        self._reveal()
        super().action_page_down()
        self._choose()

    def action_page_up(self) -> None:
        self._reveal()
        super().action_page_up()
        self._choose()

    def action_first(self) -> None:
        self._reveal()
        self.move_cursor(row=0)
        self._choose()

    def action_last(self) -> None:
        self._reveal()
        self.move_cursor(row=self.row_count - 1)
        self._choose()

    def action_scroll_top(self) -> None:
        self.action_first()

    def action_scroll_bottom(self) -> None:
        self.action_last()

    def action_select_cursor(self) -> None:
        if self.chosen is None:
            self.post_message(self.NothingChosen(self))
            return
        super().action_select_cursor()

    async def _on_click(self, event: events.Click) -> None:
        meta = event.style.meta
        row = meta.get("row", -1)
        if not self.show_cursor and isinstance(row, int) and 0 <= row < self.row_count:
            # A click on a row chooses it; it does not also open it.
            self.show_cursor = True
            self.move_cursor(row=row)
            self._choose()
            event.stop()
            return
        await super()._on_click(event)
        if self.show_cursor and isinstance(row, int) and row >= 0:
            self._choose()
