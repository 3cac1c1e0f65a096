"""``verify``: the audit chain and the tables, untouched and tampered with."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import SqliteStore, open_store, verify
from store.chain import link
from store.sqlite import journal_path
from tests.store.sample import a_session, session_open, statement_start


def journal_lines(db_path: Path) -> list[bytes]:
    return journal_path(db_path).read_bytes().splitlines()


@pytest.fixture
def recorded(store: SqliteStore) -> SqliteStore:
    """Two sessions of two statements each: audit records 1-6 are s1's, 7-12 are s2's."""
    store.apply(a_session("s1"))
    store.apply(a_session("s2"))
    store.checkpoint()
    return store


def problems(store: SqliteStore, session_id: str | None = None) -> list[str]:
    result = verify(store, session_id)
    assert not result.ok
    return result.problems


def test_untouched_store_is_ok(recorded: SqliteStore) -> None:
    result = verify(recorded)
    assert result.ok
    assert result.problems == []
    assert result.records == 12
    assert result.sessions == 2


def test_empty_store_is_ok(store: SqliteStore) -> None:
    result = verify(store)
    assert (result.ok, result.records, result.sessions) == (True, 0, 0)


def test_one_session(recorded: SqliteStore) -> None:
    result = verify(recorded, "s2")
    assert result.ok
    assert result.sessions == 1
    assert result.records == 12  # the chain is global


def test_edited_audit_body(recorded: SqliteStore) -> None:
    recorded.conn.execute(
        "UPDATE audit SET body = replace(body, 'SELECT 2', 'SELECT 3') WHERE seq = 4"
    )
    assert problems(recorded) == [
        "audit record 4 (statement.start, session s1): content does not match its hash (edited)"
    ]


def test_edited_audit_body_with_recomputed_hash_breaks_the_next_link(
    recorded: SqliteStore,
) -> None:
    seq, kind, sid, ref, body, prev = recorded.conn.execute(
        "SELECT seq, kind, session_id, ref, body, prev FROM audit WHERE seq = 4"
    ).fetchone()
    body = body.replace("SELECT 2", "SELECT 3")
    recorded.conn.execute(
        "UPDATE audit SET body = ?, hash = ? WHERE seq = 4",
        (body, link(prev, seq, kind, sid, ref, body.encode())),
    )
    [problem] = problems(recorded)
    assert problem.startswith("audit record 5 ")
    assert "does not link" in problem


def test_edited_statement_text(recorded: SqliteStore) -> None:
    recorded.conn.execute(
        "UPDATE statements SET text = 'SELECT harmless' WHERE session_id = 's2' AND seq = 1"
    )
    assert problems(recorded) == ["statement 1 of session s2: text differs from the audit"]
    assert problems(recorded, "s2") == ["statement 1 of session s2: text differs from the audit"]
    assert verify(recorded, "s1").ok


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("status", "'error'"),
        ("rows", "1000"),
        ("error", "'boom'"),
        ("params", "'p'"),
        ("command", "'DELETE 5'"),
        ("duration_ms", "0.5"),
        ("started_at", "'2000-01-01'"),
        ("protocol", "'extended'"),
    ],
)
def test_edited_statement_column(recorded: SqliteStore, column: str, value: str) -> None:
    recorded.conn.execute(
        f"UPDATE statements SET {column} = {value} WHERE session_id = 's1' AND seq = 1"
    )
    assert problems(recorded) == [f"statement 1 of session s1: {column} differs from the audit"]


def test_edited_session(recorded: SqliteStore) -> None:
    recorded.conn.execute("UPDATE sessions SET identity = 'mallory' WHERE id = 's1'")
    assert problems(recorded) == ["session s1: identity differs from the audit record"]


def test_deleted_audit_row(recorded: SqliteStore) -> None:
    recorded.conn.execute("DELETE FROM audit WHERE seq = 5")
    assert problems(recorded) == ["audit record 5 is missing (next is 6)"]


def test_deleted_first_audit_row(recorded: SqliteStore) -> None:
    recorded.conn.execute("DELETE FROM audit WHERE seq = 1")
    assert problems(recorded) == ["audit record 1 is missing (next is 2)"]


def test_deleted_last_audit_row_is_seen_in_the_tables(recorded: SqliteStore) -> None:
    # Record 12 closed session s2: without it the table says more than the chain does.
    recorded.conn.execute("DELETE FROM audit WHERE seq = 12")
    assert problems(recorded) == ["session s2: status differs from the audit record"]


def test_statement_inserted_without_audit(recorded: SqliteStore) -> None:
    recorded.conn.execute(
        "INSERT INTO statements (session_id, seq, protocol, text, started_at, status)"
        " VALUES ('s1', 99, 'simple', 'DROP TABLE evidence', '2026-01-01', 'ok')"
    )
    assert problems(recorded) == [
        "statement 99 of session s1: not in the audit (inserted later)"
    ]


def test_session_inserted_without_audit(recorded: SqliteStore) -> None:
    recorded.conn.execute(
        "INSERT INTO sessions (id, protocol, connection, started_at, status)"
        " VALUES ('ghost', 'postgres', 'shop', '2026-01-01', 'closed')"
    )
    assert problems(recorded) == ["session ghost: in the sessions table but not in the audit"]


def test_deleted_statement_row(recorded: SqliteStore) -> None:
    recorded.conn.execute("DELETE FROM statements WHERE session_id = 's2' AND seq = 2")
    assert problems(recorded) == ["statement 2 of session s2: missing"]


def test_deleted_session_row(recorded: SqliteStore) -> None:
    recorded.conn.execute("DELETE FROM sessions WHERE id = 's1'")
    assert problems(recorded) == ["session s1: recorded in the audit but missing"]
    assert verify(recorded, "s2").ok


def test_progress_is_reported_as_records_are_checked(recorded: SqliteStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys.modules["store.verifier"], "PROGRESS_EVERY", 2)
    seen: list[int] = []
    result = verify(recorded, progress=seen.append)
    assert result.ok and seen and sum(seen) == result.records - result.records % 2


# --- the journal beside the store ------------------------------------------------------------


def test_records_committed_to_the_journal_are_checked_and_noted(
    recorded: SqliteStore, db_path: Path,
) -> None:
    recorded.apply([session_open("s3"), statement_start("s3", 1, "DELETE FROM orders")])
    reader = open_store(db_path, readonly=True)  # as `gatewatch verify` beside the engine
    try:
        result = verify(reader)
    finally:
        reader.close()
    assert result.ok, result.problems
    assert (result.records, result.pending) == (12, 2)
    assert result.notes == [
        "2 records are committed to the journal and not yet in the tables: a running engine"
        " moves them within moments, a stopped one at its next start"]


def test_a_journal_record_edited_while_pending(recorded: SqliteStore, db_path: Path) -> None:
    recorded.apply([session_open("s3"), statement_start("s3", 1, "DELETE FROM orders")])
    journal = journal_path(db_path)
    journal.write_bytes(journal.read_bytes().replace(b"DELETE FROM orders", b"SELECT 1"))
    assert problems(recorded) == [
        "journal record 14 (statement.start, session s3) in gatewatch.db.journal: content does"
        " not match its hash (edited)"]


def test_a_lost_journal_file_is_a_gap(recorded: SqliteStore, db_path: Path) -> None:
    recorded.apply([session_open("s3")])
    assert recorded.start_checkpoint() is not None  # record 13 in .journal.1, job not run
    recorded.apply([statement_start("s3", 1, "DELETE FROM orders")])
    journal_path(db_path).with_name("gatewatch.db.journal.1").unlink()
    assert problems(recorded) == [
        "audit records 13 to 13 are missing: in neither the store nor its journal"]


def test_a_journal_record_that_differs_from_the_store(
    recorded: SqliteStore, db_path: Path,
) -> None:
    recorded.apply([session_open("s3")])
    job = recorded.start_checkpoint()
    assert job is not None and job() is None  # in the database; .journal.1 not yet removed
    rotated = journal_path(db_path).with_name("gatewatch.db.journal.1")
    rotated.write_bytes(rotated.read_bytes().replace(b"alice", b"mallory"))
    assert problems(recorded) == [
        "journal record 13 (session.open, session s3) in gatewatch.db.journal.1: differs from"
        " audit record 13 in the store"]


def test_bytes_in_the_journal_that_are_not_records(recorded: SqliteStore, db_path: Path) -> None:
    recorded.apply([session_open("s3")])
    with journal_path(db_path).open("ab") as f:
        f.write(b"not a record\n")
    assert problems(recorded) == [
        "the journal file gatewatch.db.journal: line 2 and what follows are not journal"
        f" records (13 bytes from byte {len(journal_lines(db_path)[0]) + 1})"]


def test_an_older_store_without_a_rejected_table(recorded: SqliteStore) -> None:
    recorded.conn.execute("DROP TABLE rejected")
    assert verify(recorded).ok
