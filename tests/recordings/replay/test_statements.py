"""PostgreSQL sessions: scrubbing through statements."""

from __future__ import annotations

from pathlib import Path

import pytest

from recordings.replay import StatementTimeline, open_timeline
from store import Op
from store import ops as O
from tests.recordings.replay.build import T0, Recording, new_store


def statement(sid: str, seq: int, at: float, text: str, **fields: object) -> list[Op]:
    verdict = fields.pop("verdict", "allow")
    return [
        Op(O.STATEMENT_START, sid, seq, {
            "protocol": "simple", "text": text, "params": None, "started_at": O.utc(T0 + at),
            "status": "running", "verdict": verdict, "rule": fields.pop("rule", None),
            "approval_id": None}),
        Op(O.STATEMENT_END, sid, seq, {
            "finished_at": O.utc(T0 + at + 0.02), "duration_ms": 20.0, "status": "ok",
            "command": "SELECT", "rows": 1, "sqlstate": None, "error": None,
            "exit_status": None, "masked": None, **fields}),
    ]


@pytest.fixture
def timeline(tmp_path: Path) -> StatementTimeline:
    rec = Recording(new_store(tmp_path), "pg1", protocol="postgres")
    rec.store.apply([
        *statement("pg1", 1, 1.0, "SELECT 1"),
        *statement("pg1", 2, 4.0, "SELECT email FROM users", rows=12,
                   masked='{"pii:email/email": 12}'),
        *statement("pg1", 3, 9.5, "DROP TABLE users", verdict="block", rule="no-drop",
                   status="blocked", rows=None, error='blocked by rule "no-drop"',
                   sqlstate="42501"),
    ])
    rec.close(20.0)
    timeline = open_timeline(rec.store, "pg1")
    assert isinstance(timeline, StatementTimeline)
    return timeline


def test_statements_sit_at_their_offsets_with_their_outcome(
        timeline: StatementTimeline) -> None:
    _, second, third = timeline.statements
    assert [s.t for s in timeline.statements] == pytest.approx([1.0, 4.0, 9.5])
    assert second.rows == 12 and dict(second.masked) == {"pii:email/email": 12}
    assert second.end == pytest.approx(4.02) and second.duration_ms == 20.0
    assert (third.verdict, third.rule, third.status, third.sqlstate) == (
        "block", "no-drop", "blocked", "42501")
    assert third.error == 'blocked by rule "no-drop"'
    assert timeline.duration == pytest.approx(20.0)


def test_seek_gives_the_statement_current_at_t(timeline: StatementTimeline) -> None:
    assert timeline.seek(0.5) is None
    assert timeline.seek(1.0) == 0
    assert timeline.seek(3.99) == 0
    assert timeline.seek(4.0) == 1
    assert timeline.seek(100.0) == 2 and timeline.position == pytest.approx(20.0)
    assert timeline.time_of(2) == pytest.approx(9.5)


def test_markers_and_n_p(timeline: StatementTimeline) -> None:
    assert [m.kind for m in timeline.markers] == ["command", "command", "masked", "block",
                                                  "end"]
    nxt = timeline.next_marker(1.0)
    assert nxt is not None and nxt.seq == 2
    prev = timeline.previous_marker(9.5)
    assert prev is not None and prev.seq == 2


def test_an_open_session_lasts_until_its_last_statement(tmp_path: Path) -> None:
    rec = Recording(new_store(tmp_path), "pg2", protocol="postgres")
    rec.store.apply(statement("pg2", 1, 3.0, "SELECT pg_sleep(2)"))
    rec.store.checkpoint()
    timeline = StatementTimeline.open(rec.store, "pg2")
    assert timeline.duration == pytest.approx(3.02)
    assert timeline.markers[-1].kind == "command"  # no end marker while it is open


def _held(sid: str, seq: int, at: float, text: str, verdict: str, request: str,
          **end: object) -> list[Op]:
    """A held statement as PostgreSQL records it when it is decided: its verdict says how
    (approved, or denied: the client got an error), with the request it waited on."""
    ops = statement(sid, seq, at, text, verdict=verdict, rule="review-deletes", **end)
    ops[0].fields["approval_id"] = request
    return ops


def test_a_statement_its_client_withdrew_is_withdrawn_not_denied(tmp_path: Path) -> None:
    """Issue 16: the replay drew a statement cancelled while it was held as a denial."""
    rec = Recording(new_store(tmp_path), "pg3", protocol="postgres")
    rec.approval("w1", 1.0, 3.0, "withdrawn", "DELETE FROM orders", by="",
                 reason="canceled by the client")
    rec.approval("d1", 5.0, 6.0, "denied", "DELETE FROM stock", reason="not now")
    rec.store.apply([
        *_held("pg3", 1, 3.0, "DELETE FROM orders", "denied", "w1", status="denied",
               sqlstate="57014", error="canceling statement due to user request", rows=None),
        *_held("pg3", 2, 6.0, "DELETE FROM stock", "denied", "d1", status="denied",
               sqlstate="42501", error="statement denied by bob: not now", rows=None),
    ])
    rec.close(10.0)
    timeline = StatementTimeline.open(rec.store, "pg3")
    withdrawn, denied = timeline.statements
    assert (withdrawn.outcome, denied.outcome) == ("withdrawn", "denied")
    got = [(m.t, m.kind, m.label) for m in timeline.markers]
    assert got == [
        (pytest.approx(3.0), "withdrawn",
         "DELETE FROM orders (rule review-deletes): withdrawn: canceled by the client"),
        (pytest.approx(6.0), "denied",
         "DELETE FROM stock (rule review-deletes): denied by bob: not now"),
        (pytest.approx(10.0), "end", "client quit"),
    ]  # each decision once: the request's own marker would say it again, at the same time
    first = timeline.next_marker(0.0)
    assert first is not None and first.kind == "withdrawn"  # n stops at it: a command
    second = timeline.next_marker(first.t)
    assert second is not None and second.kind == "denied" and second.seq == 2
