"""3 — Statistics: sessions per connection and identity, statements by verdict, refusals per
rule and per hour (sparklines), and masked values per rule and detector, per column, and per
hour."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Sparkline, Static

from store.reads import Statistics
from tui.screens.painting import paint

PANELS = (("by_connection", "Sessions per connection"), ("by_identity", "Most active identities"),
          ("by_verdict", "Statements by verdict"), ("by_rule", "Refusals and reviews per rule"),
          ("masked", "Masked, by rule"), ("masked_columns", "Masked, by column"))


class StatsScreen(Screen[None]):
    CSS_PATH = "stats.tcss"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner")
        with Grid(id="panels"):
            for key, title in PANELS:
                table: DataTable[str] = DataTable(id=key, show_cursor=False)
                table.border_title = title
                table.add_columns("COUNT", "")  # the count first: long names are cut, not it
                yield table
        yield Static("", id="spark-title")
        yield Sparkline([], id="spark")
        yield Static("", id="reviews-title")
        yield Sparkline([], id="reviews")
        yield Static("", id="masked-title")
        yield Sparkline([], id="masked-spark")
        yield Footer()

    def __init__(self) -> None:
        super().__init__()
        self.stats: Statistics = {}

    def on_mount(self) -> None:
        self._render_stats()

    def show(self, stats: Statistics) -> None:
        self.stats = stats
        paint(self, self._render_stats)

    def _render_stats(self) -> None:
        stats = self.stats
        for key, _ in PANELS:
            table = self.query_one(f"#{key}", DataTable)
            table.clear()
            for name, count in stats.get(key, []):
                shown = str(name)
                if key == "masked":  # "rule:detector": what was found first, it is shorter
                    rule, _, what = shown.partition(":")
                    shown = f"{what} ({rule})" if what else rule
                table.add_row(Text(str(count), justify="right"), shown)
        for key, spark_id, title_id, what in (
            ("blocks_per_hour", "#spark", "#spark-title", "Blocked or denied"),
            ("reviews_per_hour", "#reviews", "#reviews-title", "Held for approval"),
            ("masked_per_hour", "#masked-spark", "#masked-title", "Values masked"),
        ):
            rows = stats.get(key, [])
            hours = _hourly(rows)
            spark = self.query_one(spark_id, Sparkline)
            spark.display = any(hours)
            spark.data = hours or [0]
            title = (f"{what} per hour, {rows[-1][0][11:13]}h to {rows[0][0][11:13]}h UTC: "
                     f"{sum(hours)} in all" if any(hours) else f"{what}: none recorded")
            self.query_one(title_id, Static).update(title)


def _hourly(rows: list[tuple[str, int]]) -> list[int]:
    """Counts per hour from the oldest listed hour to the newest, quiet hours as zeros."""
    if not rows:
        return []
    counts = {datetime.strptime(k, "%Y-%m-%dT%H"): int(n) for k, n in rows}
    first, last = min(counts), max(counts)
    span = min(int((last - first).total_seconds() // 3600), 47)
    start = last - timedelta(hours=span)
    return [counts.get(start + timedelta(hours=h), 0) for h in range(span + 1)]
