"""Times as the operator reads them: ages and time left, from ISO strings and a clock."""

from __future__ import annotations

from datetime import UTC, datetime


def parse(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value).timestamp()


def span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def clock(value: str | None) -> str:
    return value[11:19] if value else "-"


def clock_of(when: float) -> str:
    """A moment as HH:MM:SS UTC (the clock the store's times are in)."""
    return datetime.fromtimestamp(when, UTC).strftime("%H:%M:%S")


def iso_of(when: float) -> str:
    """A moment as the store writes times (ISO 8601, UTC)."""
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="microseconds")
