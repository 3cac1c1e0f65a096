"""SSH output chunks: bytes in ``ssh_output``, their size and digest in the audit chain."""

from __future__ import annotations

import os
from pathlib import Path

from store import SqliteStore, open_store, verify
from store import ops as O
from tests.store.sample import crash, session_open

BINARY = bytes(range(256)) + b"\x1b]52;c;aGk=\x07\r\n\t"  # every byte value, tabs, newlines


def test_output_is_stored_as_sent_and_verifies(store: SqliteStore) -> None:
    store.apply([session_open("s1"), O.output_op("s1", 1, 0.5, 0, "o", BINARY),
                 O.output_op("s1", 2, 0.75, 0, "r", b"120x40")])
    store.checkpoint()
    assert store.output("s1") == [(1, 0.5, 0, "o", BINARY), (2, 0.75, 0, "r", b"120x40")]
    assert store.output("s1", after=1) == [(2, 0.75, 0, "r", b"120x40")]
    body = store.conn.execute("SELECT body FROM audit WHERE kind = 'ssh.output'").fetchone()[0]
    assert "sha256" in body and len(body) < 200  # the chain holds the digest, not the bytes
    assert verify(store).ok


def test_output_replayed_from_the_journal_after_a_crash(db_path: Path) -> None:
    store = open_store(db_path)
    store.apply([session_open("s1"), O.output_op("s1", 1, 0.1, 0, "o", BINARY)])
    crash(store)
    again = open_store(db_path)
    try:
        assert again.output("s1") == [(1, 0.1, 0, "o", BINARY)]
        assert verify(again).ok
    finally:
        again.close()


def test_edited_or_removed_output_is_found(store: SqliteStore) -> None:
    store.apply([session_open("s1"), O.output_op("s1", 1, 0.1, 0, "o", b"ls\r\n"),
                 O.output_op("s1", 2, 0.2, 0, "o", os.urandom(64))])
    store.checkpoint()
    store.conn.execute("UPDATE ssh_output SET data = x'00' WHERE seq = 1")
    store.conn.execute("DELETE FROM ssh_output WHERE seq = 2")
    problems = verify(store, "s1").problems
    assert "output chunk 1 of session s1: differs from the audit" in problems
    assert "output chunk 2 of session s1: missing" in problems


def test_a_crash_in_the_middle_of_an_output_chunk_keeps_what_came_before(db_path: Path) -> None:
    store = open_store(db_path)
    store.apply([session_open("s1"), O.output_op("s1", 1, 0.1, 0, "o", b"first\n")])
    store.apply([O.output_op("s1", 2, 0.2, 0, "o", BINARY * 100)])
    crash(store)
    journal = db_path.with_name(db_path.name + ".journal")
    journal.write_bytes(journal.read_bytes()[:-3000])  # the write was torn inside the bytes
    again = open_store(db_path)
    try:
        assert again.output("s1") == [(1, 0.1, 0, "o", b"first\n")]
        assert verify(again).ok
        again.apply([O.output_op("s1", 3, 0.3, 0, "o", b"after")])  # appends on a clean line
        again.checkpoint()
        assert [c[0] for c in again.output("s1")] == [1, 3]
    finally:
        again.close()
