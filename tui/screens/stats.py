"""3 — Statistics: sessions per connection and identity (sessions that opened), statements by
outcome (withdrawn apart from denied), refusals per rule, masked values per rule and detector
and per column, and per hour over the last day (``HourBars``: one column per hour ending with
the current one, quiet hours as gaps).

At 24 rows every outcome must still be read (the demo's walk at 80x24 showed three of five:
approved and denied sat below the fold): the panels have no header row (their title says what
is counted, the count comes first) and below 30 rows the hour bars lose their axis row."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from store.reads import Statistics
from tui.screens.painting import paint
from tui.widgets.hourbars import HourBars

PANELS = (("by_connection", "Sessions per connection"), ("by_identity", "Most active identities"),
          ("by_verdict", "Statements by outcome"), ("by_rule", "Refusals and reviews per rule"),
          ("masked", "Masked, by rule"), ("masked_columns", "Masked, by column"))


class StatsScreen(Screen[None]):
    CSS_PATH = "stats.tcss"
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]  # -short: bars without their axis

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner")
        with Grid(id="panels"):
            for key, title in PANELS:
                table: DataTable[str] = DataTable(id=key, show_cursor=False, show_header=False)
                table.border_title = title
                table.add_columns("COUNT", "")  # the count first: long names are cut, not it
                yield table
        yield Static("", id="spark-title")
        yield HourBars(id="spark")
        yield Static("", id="reviews-title")
        yield HourBars(id="reviews")
        yield Static("", id="masked-title")
        yield HourBars(id="masked-spark")
        yield Footer()

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.stats: Statistics = {}
        self._clock = clock  # the last hour drawn is the current one

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
        now = datetime.fromtimestamp(self._clock(), UTC).replace(minute=0, second=0,
                                                                  microsecond=0, tzinfo=None)
        first = now - timedelta(hours=HOURS - 1)
        for key, spark_id, title_id, what in (
            ("blocks_per_hour", "#spark", "#spark-title", "Blocked or denied"),
            ("reviews_per_hour", "#reviews", "#reviews-title", "Held for approval"),
            ("masked_per_hour", "#masked-spark", "#masked-title", "Values masked"),
        ):
            hours = hourly(stats.get(key, []), now)
            spark = self.query_one(spark_id, HourBars)
            spark.display = any(hours)
            spark.show(hours, first.hour)
            title = (f"{what} per hour, {HOURS} h to {now:%H}h UTC: {sum(hours)}, at most "
                     f"{max(hours)}/h" if any(hours) else f"{what}: none in the last {HOURS} h")
            self.query_one(title_id, Static).update(title)


HOURS = 24


def hourly(rows: list[tuple[str, int]], now: datetime) -> list[int]:
    """Counts for the ``HOURS`` hours ending with ``now``'s, oldest first, quiet hours as
    zeros (older hours are not drawn)."""
    counts = {datetime.strptime(k, "%Y-%m-%dT%H"): int(n) for k, n in rows}
    start = now - timedelta(hours=HOURS - 1)
    return [counts.get(start + timedelta(hours=h), 0) for h in range(HOURS)]
