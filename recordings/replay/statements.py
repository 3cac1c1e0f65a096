"""A session's statements (PostgreSQL) or commands (SSH) on its timeline.

A PostgreSQL session has no output to replay: what happened is its statements, each with its
verdict, duration, rows, error and masked counts. ``StatementTimeline`` puts them at their
offset from the session's start so that the replay screen scrubs through them with the same
keys as through a terminal: ``seek(t)`` is the statement current at t (the last one started
at or before it). SSH timelines keep their commands as the same ``Statement`` entries.

What it costs: every statement of the session in memory (they are already bounded by what
the store returns for ``statements()``); seeks are a bisection.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recordings.replay import source
from recordings.replay.markers import COMMAND_KINDS, Kind, Marker, Markers, outcome
from store import SqliteStore


@dataclass(frozen=True, slots=True)
class Statement:
    seq: int
    t: float  # seconds from the session's start
    text: str
    verdict: str  # allow | block | review (SSH) | approved | denied (PostgreSQL, decided)
    status: str  # ok, error, blocked, denied, running, interrupted, …
    rule: str | None = None
    approval_id: str | None = None
    duration_ms: float | None = None
    rows: int | None = None  # PostgreSQL
    exit_status: int | None = None  # SSH
    sqlstate: str | None = None
    error: str | None = None
    masked: Mapping[str, int] = field(default_factory=dict)
    outcome: str = ""  # the verdict, but "withdrawn" for a held one its client withdrew

    @property
    def end(self) -> float | None:
        """When it finished, from the session's start (None while it ran or if unknown)."""
        return None if self.duration_ms is None else self.t + self.duration_ms / 1000


def statements(info: source.SessionInfo, rows: Iterable[dict[str, Any]]) -> list[Statement]:
    """The store's statement rows as entries on the session's timeline, in time order."""
    found = []
    for row in rows:
        at = source.epoch(row.get("started_at"))
        found.append(Statement(
            seq=row["seq"], t=max((at or info.started) - info.started, 0.0),
            text=row.get("text") or "", verdict=row.get("verdict") or "allow",
            status=row.get("status") or "", rule=row.get("rule"),
            approval_id=row.get("approval_id"), duration_ms=row.get("duration_ms"),
            rows=row.get("rows"), exit_status=row.get("exit_status"),
            sqlstate=row.get("sqlstate"), error=row.get("error"),
            masked=source.counts(row.get("masked")), outcome=outcome(row)))
    found.sort(key=lambda s: (s.t, s.seq))
    return found


class StatementTimeline:
    """Scrubbing through a session's statements: ``seek(t)`` → the current one's index."""

    def __init__(self, info: source.SessionInfo, entries: list[Statement],
                 markers: Markers) -> None:
        self.session = info
        self.statements = entries
        self.markers = markers
        self._times = [s.t for s in entries]
        last = max((s.end or s.t for s in entries), default=0.0)
        self.duration = max(info.length or 0.0, last)
        self.position = 0.0

    @classmethod
    def open(cls, store: SqliteStore, session_id: str) -> StatementTimeline:
        info = source.session_info(store, session_id)
        rows = source.statements(store, info.id)
        return cls(info, statements(info, rows), Markers.load(store, info, rows))

    def seek(self, t: float) -> int | None:
        """The index of the statement current at ``t``, or None before the first."""
        self.position = min(max(t, 0.0), self.duration)
        i = bisect_right(self._times, self.position) - 1
        return i if i >= 0 else None

    def time_of(self, i: int) -> float:
        return self.statements[i].t

    def next_marker(self, t: float,
                    kinds: Collection[Kind] = COMMAND_KINDS) -> Marker | None:
        return self.markers.next(t, kinds)

    def previous_marker(self, t: float,
                        kinds: Collection[Kind] = COMMAND_KINDS) -> Marker | None:
        return self.markers.previous(t, kinds)
