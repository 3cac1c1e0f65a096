"""CSV: one row per statement, as it stood at the chain head."""

from __future__ import annotations

import csv
import io
import json

from recordings.export.csvfile import COLUMNS, write_csv
from recordings.export.events import chain_head
from store import SqliteStore
from tests.recordings.export.recorded import a_pg_session, an_ssh_session, record
from tests.store.sample import session_open, statement_end, statement_start


def rows(store: SqliteStore, session_id: str) -> tuple[dict[str, object], list[dict[str, str]]]:
    sink = io.BytesIO()
    write_csv(store, session_id, chain_head(store), sink)
    text = sink.getvalue().decode()
    first, rest = text.split("\n", 1)
    assert first.startswith("# gatewatch ")
    return json.loads(first[len("# gatewatch "):]), list(csv.DictReader(io.StringIO(rest)))


def test_columns_and_values(writer: SqliteStore, reader: SqliteStore) -> None:
    ops = a_pg_session("pg")
    ops[1] = statement_start("pg", 1, "SELECT email\nFROM users WHERE id = $1", params='["7"]',
                             verdict="allow", rule=None, approval_id=None)
    ops[2] = statement_end("pg", 1, rows=1, masked='{"pii:email": 1}')
    record(writer, ops)
    meta, got = rows(reader, "pg")
    assert meta["format"] == "csv" and meta["session"]["id"] == "pg"
    assert tuple(got[0]) == COLUMNS
    assert [r["seq"] for r in got] == ["1", "2", "3"]
    first = got[0]
    assert first["text"] == "SELECT email\nFROM users WHERE id = $1"  # quoted, not split
    assert (first["params"], first["masked"]) == ('["7"]', '{"pii:email": 1}')
    assert (first["status"], first["rows"], first["duration_ms"]) == ("ok", "1", "250.0")
    assert (first["verdict"], first["rule"], first["sqlstate"]) == ("allow", "", "")


def test_ssh_commands_with_verdicts_and_exit_status(writer: SqliteStore,
                                                    reader: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    _, got = rows(reader, "s1")
    assert [(r["seq"], r["verdict"], r["rule"], r["status"], r["exit_status"]) for r in got] == [
        ("1", "allow", "", "ok", "0"),
        ("2", "block", "no-rm-root", "blocked", ""),
        ("3", "review", "review-sudo", "error", "1"),
        ("4", "allow", "", "ok", "0"),
    ]


def test_statements_in_order_and_as_they_stood_at_the_head(writer: SqliteStore,
                                                           reader: SqliteStore) -> None:
    record(writer, [session_open("pg"),
                    statement_start("pg", 1, "SELECT pg_sleep(9)"),
                    statement_start("pg", 2, "SELECT 2"),
                    statement_start("pg", 3, "SELECT 3"),
                    statement_end("pg", 3), statement_end("pg", 2)])
    _, got = rows(reader, "pg")
    assert [(r["seq"], r["status"], r["finished_at"] != "") for r in got] == [
        ("1", "running", False), ("2", "ok", True), ("3", "ok", True)]


def test_outcome_says_what_became_of_held_statements(writer: SqliteStore,
                                                      reader: SqliteStore) -> None:
    """A held statement reads approved, denied or withdrawn (its client withdrew it: nobody
    denied it), as the statistics and the replay say; the verdict stays as recorded."""
    held = {"verdict": "review", "rule": "review-deletes", "approval_id": "a1"}
    record(writer, [
        session_open("pg"),
        statement_start("pg", 1, "DELETE FROM t WHERE id = 1", **held),
        statement_end("pg", 1),
        statement_start("pg", 2, "DELETE FROM t WHERE id = 2", **held),
        statement_end("pg", 2, status="denied", sqlstate="42501",
                      error="statement denied by oncall: not on prod"),
        statement_start("pg", 3, "DELETE FROM t WHERE id = 3", **held),
        statement_end("pg", 3, status="denied", sqlstate="57014",
                      error="approval request a1 withdrawn: canceled by the client"),
        statement_start("pg", 4, "SELECT 1", verdict="allow", rule=None, approval_id=None),
        statement_end("pg", 4),
    ])
    _, got = rows(reader, "pg")
    assert [(r["verdict"], r["outcome"]) for r in got] == [
        ("review", "approved"), ("review", "denied"), ("review", "withdrawn"),
        ("allow", "allow")]
