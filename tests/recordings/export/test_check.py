"""``check_export``: a file matches the store, or the first difference is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from recordings.export.check import check_export
from recordings.export.events import chain_head
from recordings.export.formats import FORMATS, export
from store import SqliteStore
from tests.recordings.export.recorded import (
    a_pg_session,
    an_ssh_session,
    command,
    command_end,
    out,
    record,
    ssh_close,
)


def exported(store: SqliteStore, session_id: str, fmt: str, path: Path) -> Path:
    session = store.find_session(session_id)
    assert session is not None
    with path.open("wb") as f:
        export(store, session, fmt, f, chain_head(store))
    return path


@pytest.fixture
def recorded(writer: SqliteStore) -> SqliteStore:
    """An SSH session still open (its close comes later) and a PostgreSQL session."""
    record(writer, [*an_ssh_session("s1")[:-1], *a_pg_session("pg")])
    return writer


def formats_of(session_id: str) -> list[str]:
    return list(FORMATS) if session_id == "s1" else ["jsonl", "csv"]


CASES = [(sid, fmt) for sid in ("s1", "pg") for fmt in formats_of(sid)]


@pytest.mark.parametrize(("session_id", "fmt"), CASES)
def test_an_untouched_file_matches(recorded: SqliteStore, reader: SqliteStore, tmp_path: Path,
                                   session_id: str, fmt: str) -> None:
    path = exported(reader, session_id, fmt, tmp_path / f"export.{fmt}")
    result = check_export(reader, path)
    assert result.ok, result.message
    assert result.message.startswith(f"ok: {path} is the {fmt} export of session {session_id}")
    assert check_export(reader, path, session_id).ok


@pytest.mark.parametrize(("session_id", "fmt"), CASES)
def test_one_edited_byte_fails(recorded: SqliteStore, reader: SqliteStore, tmp_path: Path,
                               session_id: str, fmt: str) -> None:
    path = exported(reader, session_id, fmt, tmp_path / f"export.{fmt}")
    data = bytearray(path.read_bytes())
    lines = data.split(b"\n")
    # a byte in the middle of the third line: an event, a record, a statement row
    at = len(lines[0]) + len(lines[1]) + 2 + len(lines[2]) // 2
    data[at] = data[at] ^ 0x01
    path.write_bytes(bytes(data))
    result = check_export(reader, path)
    assert not result.ok
    assert result.message == f"{path}: line 3 differs from the store's records (edited)"


@pytest.mark.parametrize(("session_id", "fmt"), CASES)
def test_a_truncated_file_fails(recorded: SqliteStore, reader: SqliteStore, tmp_path: Path,
                                session_id: str, fmt: str) -> None:
    path = exported(reader, session_id, fmt, tmp_path / f"export.{fmt}")
    data = path.read_bytes()
    for cut in (data[:-1], data[:data.rindex(b"\n", 0, -1) + 1]):  # in a line, at a line end
        path.write_bytes(cut)
        result = check_export(reader, path)
        assert not result.ok
        assert "where the store's export goes on (truncated)" in result.message


def test_appended_lines_fail(recorded: SqliteStore, reader: SqliteStore, tmp_path: Path) -> None:
    path = exported(reader, "s1", "asciicast", tmp_path / "s1.cast")
    lines = path.read_bytes().count(b"\n")
    with path.open("ab") as f:
        f.write(b'[99.0, "o", "rm -rf / done\\r\\n"]\n')
    result = check_export(reader, path)
    assert not result.ok
    assert result.message.endswith(f"goes on after line {lines}, where the store's export ends "
                                   "(appended to)")


def test_a_file_of_another_session_fails(recorded: SqliteStore, reader: SqliteStore,
                                         tmp_path: Path) -> None:
    path = exported(reader, "pg", "jsonl", tmp_path / "pg.jsonl")
    result = check_export(reader, path, "s1")
    assert not result.ok
    assert result.message == f"{path} is an export of session pg, not of session s1"


def test_a_file_relabelled_as_another_session_fails(recorded: SqliteStore, reader: SqliteStore,
                                                    tmp_path: Path) -> None:
    path = exported(reader, "pg", "csv", tmp_path / "pg.csv")
    path.write_bytes(path.read_bytes().replace(b'"id":"pg"', b'"id":"s1"', 1))
    result = check_export(reader, path, "s1")
    assert not result.ok
    assert "line 1 differs" in result.message


def test_a_session_that_went_on_after_the_export_still_matches(
        recorded: SqliteStore, reader: SqliteStore, tmp_path: Path) -> None:
    paths = [exported(reader, "s1", fmt, tmp_path / f"s1.{fmt}") for fmt in FORMATS]
    record(recorded, [command("s1", 5, "ls", 8.0), out("s1", 10, 8.1, b"a b c\r\n"),
                      command_end("s1", 5, 8.2), command_end("s1", 4, 8.3),
                      ssh_close("s1", 9.0)])
    for path in paths:
        result = check_export(reader, path, "s1")
        assert result.ok, result.message
    again = exported(reader, "s1", "asciicast", tmp_path / "later.cast")
    assert again.read_bytes() != paths[0].read_bytes()  # the later export does hold more


def test_an_unknown_chain_head_fails(recorded: SqliteStore, reader: SqliteStore,
                                     tmp_path: Path) -> None:
    path = exported(reader, "pg", "jsonl", tmp_path / "pg.jsonl")
    head = chain_head(reader)
    path.write_bytes(path.read_bytes().replace(f'"seq":{head.seq},'.encode(),
                                               f'"seq":{head.seq + 50},'.encode(), 1))
    result = check_export(reader, path)
    assert not result.ok
    assert f"its chain head (audit record {head.seq + 50}) is not a record of this store's" \
        in result.message


def test_a_head_from_another_store_fails(recorded: SqliteStore, reader: SqliteStore,
                                         tmp_path: Path) -> None:
    path = exported(reader, "pg", "jsonl", tmp_path / "pg.jsonl")
    head = chain_head(reader)
    path.write_bytes(path.read_bytes().replace(head.hash.encode(), b"f" * 64, 1))
    result = check_export(reader, path)
    assert not result.ok
    assert f"its chain head does not match audit record {head.seq}" in result.message


def test_a_store_that_does_not_verify_fails(recorded: SqliteStore, reader: SqliteStore,
                                            tmp_path: Path) -> None:
    path = exported(reader, "s1", "asciicast", tmp_path / "s1.cast")
    recorded.conn.execute("UPDATE ssh_output SET data = x'41' WHERE session_id = 's1' AND seq = 2")
    result = check_export(reader, path)
    assert not result.ok
    assert "the store itself does not verify: output chunk 2 of session s1" in result.message


@pytest.mark.parametrize("content", [b"", b"hello\n", b'{"version": 2, "width": 80}\n',
                                     b'{"gatewatch": {"format": "jsonl"}}\n',
                                     b"# gatewatch {not json\n"])
def test_files_that_are_not_exports_fail(recorded: SqliteStore, reader: SqliteStore,
                                         tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "thing"
    path.write_bytes(content)
    result = check_export(reader, path)
    assert not result.ok
    assert result.message.startswith(f"{path} is not a Gatewatch export: ")


def test_a_session_the_store_does_not_have_fails(recorded: SqliteStore, reader: SqliteStore,
                                                 tmp_path: Path) -> None:
    path = exported(reader, "pg", "jsonl", tmp_path / "pg.jsonl")
    path.write_bytes(path.read_bytes().replace(b'"id":"pg"', b'"id":"gone"', 1))
    result = check_export(reader, path)
    assert result == (False, f"{path} is an export of session gone, which is not in this store")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_session_another_node_recorded_exports_and_checks(db_path: Path, tmp_path: Path,
                                                             fmt: str) -> None:
    """Several engines (or one engine's workers) share a store, each node with its own chain:
    a session is exported from, and checked against, the chain of the node that held it —
    not the reading handle's own (issue 16, the demo's walk: with workers, every export
    failed with "no records up to audit record 0")."""
    from store import open_store

    worker = open_store(db_path, node="vm-w1")
    try:
        record(worker, an_ssh_session("s1"))
    finally:
        worker.close()
    reader = open_store(db_path, readonly=True)
    try:
        assert reader.audit_head()[0] == 0  # the reader's own node wrote nothing
        session = reader.find_session("s1")
        assert session is not None
        path = tmp_path / f"export.{fmt}"
        with path.open("wb") as f:
            export(reader, session, fmt, f, chain_head(reader, "s1"))
        assert chain_head(reader, "s1").seq > 0
        result = check_export(reader, path)
        assert result.ok, result.message
    finally:
        reader.close()
