"""Reads for the operator's views (statistics, replay), against a real store written through
its own write path and read back through a read-only one, as the TUI and the replay do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from store import Op, SqliteStore, open_store, reads
from store import ops as O
from tests.store.sample import (
    T0,
    a_session,
    session_open,
    statement_end,
    statement_start,
)


def approval(rid: str, sid: str, created: float, status: str = "pending") -> list[Op]:
    ops = [Op(O.APPROVAL_REQUEST, rid, 0, {
        "session_id": sid, "requester": "alice", "connection": "shop",
        "statement": "DELETE FROM orders", "statement_hash": "h", "rule": "review-deletes",
        "reason": "DELETE", "created_at": O.utc(T0 + created),
        "expires_at": O.utc(T0 + created + 300), "status": "pending"})]
    if status != "pending":
        ops.append(Op(O.APPROVAL_UPDATE, rid, 0, {
            "status": status, "approvals": None, "decided_at": O.utc(T0 + created + 5),
            "decided_by": "bob", "decision_reason": None}))
    return ops


@contextmanager
def read_only(db_path: Path, ops: list[Op]) -> Iterator[SqliteStore]:
    writer = open_store(db_path)
    try:
        writer.apply(ops)
        writer.checkpoint()  # from the journal into the tables
    finally:
        writer.close()
    reader = open_store(db_path, readonly=True)
    try:
        yield reader
    finally:
        reader.close()


# --- statistics ---------------------------------------------------------------------------


@pytest.fixture
def stats(db_path: Path) -> Iterator[reads.Statistics]:
    pg = {"personal-data:email/email": 3, "national-ids:column/national_id": 2,
          "personal-data:email/recorded": 1}
    ssh = {"personal-data:payment_card": 4}
    ops = [
        session_open("pg"),
        statement_start("pg", 1), statement_end("pg", 1, masked=json.dumps(
            {"personal-data:email/email": 3, "national-ids:column/national_id": 2})),
        statement_start("pg", 2, "DROP TABLE orders", verdict="block", rule="no-drop"),
        statement_end("pg", 2, status="blocked"),
        statement_start("pg", 3, "DELETE FROM orders", verdict="denied",
                        rule="review-deletes", approval_id="r1"),
        statement_end("pg", 3, status="denied"),
        *approval("r1", "pg", 3, "denied"),
        Op(O.SESSION_CLOSE, "pg", 0, {"ended_at": O.utc(T0 + 60), "status": "closed",
                                      "end_reason": "client quit", "masked": json.dumps(pg)}),
        session_open("ssh", protocol="ssh", connection="web", started_at=O.utc(T0 + 3600)),
        Op(O.SESSION_CLOSE, "ssh", 0, {"ended_at": O.utc(T0 + 3700), "status": "closed",
                                       "end_reason": "client quit", "masked": json.dumps(ssh)}),
        session_open("exempt", identity="triage-agent", identity_kind="agent",
                     identity_vendor="example-ai", started_at=O.utc(T0 + 3600)),
        Op(O.SESSION_CLOSE, "exempt", 0, {"ended_at": O.utc(T0 + 3700),
                                          "status": "closed", "end_reason": "client quit",
                                          "masked": json.dumps({"auditors:exempt": 1})}),
    ]
    with read_only(db_path, ops) as store:
        yield reads.statistics(store)


def test_statistics_name_every_query(stats: reads.Statistics) -> None:
    assert set(stats) == set(reads.STATISTICS_QUERIES)


def test_sessions_and_statements_are_counted(stats: reads.Statistics) -> None:
    assert stats["by_connection"] == [("shop", 2), ("web", 1)]
    # an agent shows with its vendor
    assert dict(stats["by_identity"]) == {"alice": 2, "triage-agent (example-ai)": 1}
    assert dict(stats["by_verdict"]) == {"allow": 1, "block": 1, "denied": 1}
    assert dict(stats["by_rule"]) == {"no-drop": 1, "review-deletes": 1}
    hour = O.utc(T0)[:13]
    assert stats["blocks_per_hour"] == [(hour, 2)]
    assert stats["reviews_per_hour"] == [(hour, 1)]


def test_withdrawn_is_its_own_outcome_and_failed_logins_are_no_activity(
        db_path: Path) -> None:
    """Issue 16: a held statement the client withdrew was counted (and drawn per hour) as
    denied, and someone who only failed to log in was among the most active identities."""
    ops = [
        session_open("pg"),
        # held, then the client's Ctrl-C: refused with the request it waited on, withdrawn
        statement_start("pg", 1, "DELETE FROM orders", verdict="denied",
                        rule="review-deletes", approval_id="w1"),
        statement_end("pg", 1, status="denied", sqlstate="57014",
                      error="canceling statement due to user request"),
        *approval("w1", "pg", 1, "withdrawn"),
        # held, then denied by an operator
        statement_start("pg", 2, "DELETE FROM orders", verdict="denied",
                        rule="review-deletes", approval_id="d1"),
        statement_end("pg", 2, status="denied"),
        *approval("d1", "pg", 2, "denied"),
        session_open("ssh", protocol="ssh", connection="web"),
        statement_start("ssh", 1, "systemctl restart nginx", verdict="review",
                        rule="review-restarts"),
        statement_end("ssh", 1, status="denied",
                      error="approval request a1 withdrawn: the client went away"),
        statement_start("ssh", 2, "systemctl stop nginx", verdict="review",
                        rule="review-restarts"),
        statement_end("ssh", 2, status="denied",
                      error="the client went away while it waited"),
        statement_start("ssh", 3, "kubectl delete pod web-1", verdict="review",
                        rule="review-kubectl-delete"),
        statement_end("ssh", 3, status="denied", error="denied by bob: not in prod"),
        # held, approved, run (an SSH command's record keeps "review": it ran as approved)
        statement_start("ssh", 4, "systemctl reload nginx", verdict="review",
                        rule="review-restarts"),
        statement_end("ssh", 4, status="ok"),
        statement_start("ssh", 5, "systemctl reload db", verdict="review",
                        rule="review-restarts"),
        statement_end("ssh", 5, status="error",
                      error="the gateway could not record the approval request, so it did not"
                            " run: disk full"),
        session_open("nobody", identity="mallory", status="rejected"),
    ]
    with read_only(db_path, ops) as store:
        stats = reads.statistics(store)
        # one rule for a statement's outcome: the replay, the TUI and `show` read it here
        pg, ssh = (reads.session_statements(store, sid) for sid in ("pg", "ssh"))
    assert [(s["seq"], s["outcome"]) for s in pg] == [(1, "withdrawn"), (2, "denied")]
    assert [s["outcome"] for s in ssh] == ["withdrawn", "withdrawn", "denied", "approved",
                                           "review"]
    assert pg[0]["text"] == "DELETE FROM orders" and pg[0]["verdict"] == "denied"
    assert dict(stats["by_verdict"]) == {"withdrawn": 3, "denied": 2, "approved": 1,
                                         "review": 1}  # SSH's denial and approval too
    assert stats["blocks_per_hour"] == [(O.utc(T0)[:13], 2)]
    assert dict(stats["by_identity"]) == {"alice": 2}


def test_masking_statistics_by_rule_column_and_hour(stats: reads.Statistics) -> None:
    assert dict(stats["masked"]) == {"personal-data:email": 4, "national-ids:column": 2,
                                     "personal-data:payment_card": 4, "auditors:exempt": 1}
    assert dict(stats["masked_columns"]) == {"email": 3, "national_id": 2, "recorded": 1}
    hour = O.utc(T0)[:13]
    later = O.utc(T0 + 3600)[:13]
    # PostgreSQL per statement, SSH per session (its output), exemptions not at all
    assert stats["masked_per_hour"] == [(later, 4), (hour, 5)]


def test_an_empty_store_has_empty_statistics(store: SqliteStore) -> None:
    assert reads.statistics(store) == {name: [] for name in reads.STATISTICS_QUERIES}


# --- what the replay reads of output -------------------------------------------------------

# (seq, t, channel, stream, bytes): a terminal on channel 1, an exec without one on channel 2
OUTPUT = [
    (1, 0.0, 1, "r", b"80x24"),
    (2, 0.5, 1, "o", b"$ ls\r\n"),
    (3, 0.6, 2, "o", b"exec output\n"),
    (4, 0.7, 2, "e", b"exec error\n"),
    (5, 1.0, 1, "r", b"120x40"),
    (6, 1.5, 1, "o", b"x" * 5000),
    (7, 2.0, 3, "r", b"100x30"),
]


@pytest.fixture
def recorded(db_path: Path) -> Iterator[SqliteStore]:
    ops = [session_open("ssh", protocol="ssh"),
           *(O.output_op("ssh", seq, t, ch, stream, data)
             for seq, t, ch, stream, data in OUTPUT),
           *a_session("other")]
    ops.append(O.output_op("other", 1, 0.0, 1, "r", b"80x24"))
    with read_only(db_path, ops) as store:
        yield store


def test_terminal_channels_are_those_that_recorded_a_size(recorded: SqliteStore) -> None:
    assert reads.terminal_channels(recorded, "ssh") == [1, 3]
    assert reads.terminal_channels(recorded, "nothing") == []


def test_chunk_rows_give_sizes_and_only_window_sizes_as_bytes(recorded: SqliteStore) -> None:
    rows = reads.chunk_rows(recorded, "ssh", 0, 100)
    assert rows == [(seq, t, ch, stream, len(data), data if stream == "r" else None)
                    for seq, t, ch, stream, data in OUTPUT]


def test_chunk_rows_page_by_seq(recorded: SqliteStore) -> None:
    assert [r[0] for r in reads.chunk_rows(recorded, "ssh", 0, 3)] == [1, 2, 3]
    assert [r[0] for r in reads.chunk_rows(recorded, "ssh", 3, 3)] == [4, 5, 6]
    assert [r[0] for r in reads.chunk_rows(recorded, "ssh", 6, 3)] == [7]
    assert reads.chunk_rows(recorded, "ssh", 7, 3) == []


def test_chunk_bytes_are_output_of_the_channels_shown_in_the_range(
        recorded: SqliteStore) -> None:
    assert reads.chunk_bytes(recorded, "ssh", 1, 7, [1]) == {2: b"$ ls\r\n", 6: b"x" * 5000}
    assert reads.chunk_bytes(recorded, "ssh", 3, 5, [1, 2]) == {3: b"exec output\n",
                                                                4: b"exec error\n"}
    assert reads.chunk_bytes(recorded, "ssh", 1, 7, [3]) == {}  # only a window size
    assert reads.chunk_bytes(recorded, "ssh", 1, 7, []) == {}


# --- approvals --------------------------------------------------------------------------


def test_session_approvals_are_the_sessions_own_oldest_first(db_path: Path) -> None:
    ops = [*a_session("s1"), *a_session("s2"), *approval("late", "s1", 30, "approved"),
           *approval("early", "s1", 10, "denied"), *approval("theirs", "s2", 20)]
    with read_only(db_path, ops) as store:
        rows = reads.session_approvals(store, "s1")
        assert [(r["id"], r["status"], r["decided_by"]) for r in rows] == [
            ("early", "denied", "bob"), ("late", "approved", "bob")]
        assert rows[0]["created_at"] == O.utc(T0 + 10)
        assert rows[0]["statement"] == "DELETE FROM orders"
        assert reads.session_approvals(store, "s3") == []

