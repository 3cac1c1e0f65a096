"""3 — Statistics: sessions per connection and identity, statements by verdict, refusals per
rule and per hour (sparkline). Masking counts will join when masking exists."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Sparkline, Static

PANELS = (("by_connection", "Sessions per connection"), ("by_identity", "Most active identities"),
          ("by_verdict", "Statements by verdict"), ("by_rule", "Refusals and reviews per rule"))


class StatsScreen(Screen[None]):
    CSS_PATH = "stats.tcss"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner")
        with Grid(id="panels"):
            for key, title in PANELS:
                table: DataTable[str] = DataTable(id=key, show_cursor=False)
                table.border_title = title
                table.add_columns("", "COUNT")
                yield table
        yield Static("Blocked or denied per hour (last 24 h, oldest left)", id="spark-title")
        yield Sparkline([], id="spark")
        yield Footer()

    def __init__(self) -> None:
        super().__init__()
        self.stats: dict[str, Any] = {}

    def on_mount(self) -> None:
        self._render_stats()

    def show(self, stats: dict[str, Any]) -> None:
        self.stats = stats
        if self.is_mounted:
            self._render_stats()

    def _render_stats(self) -> None:
        stats = self.stats
        for key, _ in PANELS:
            table = self.query_one(f"#{key}", DataTable)
            table.clear()
            for name, count in stats.get(key, []):
                table.add_row(str(name), str(count))
        hours = [count for _, count in reversed(stats.get("blocks_per_hour", []))]
        spark = self.query_one("#spark", Sparkline)
        spark.display = any(hours)
        spark.data = hours or [0]
        title = "Blocked or denied per hour (oldest left)" if any(hours) else (
            "Blocked or denied: none recorded")
        self.query_one("#spark-title", Static).update(title)
