"""Reading one session's records from the chain: order, approvals, the cut at a head, pages."""

from __future__ import annotations

import pytest

from recordings.export import events
from recordings.export.events import StoreMismatch, chain_head, session_records
from store import SqliteStore
from store import ops as O
from tests.recordings.export.recorded import a_pg_session, an_ssh_session, out, record, ssh_open


def test_records_of_one_session_in_chain_order_with_its_approvals(
        writer: SqliteStore, reader: SqliteStore) -> None:
    record(writer, [ssh_open("other"), *an_ssh_session("s1"), *a_pg_session("pg")])
    got = list(session_records(reader, "s1", chain_head(reader).seq))
    assert [r.seq for r in got] == list(range(2, 2 + len(an_ssh_session("s1"))))
    assert {r.key for r in got} == {"s1", "apr-1"}
    assert [r.kind for r in got if r.key == "apr-1"] == [O.APPROVAL_REQUEST, O.APPROVAL_UPDATE]
    chunks = [r for r in got if r.kind == O.SSH_OUTPUT]
    assert [r.ref for r in chunks] == list(range(1, 10))
    assert chunks[0].data == b"100x30"
    assert chunks[-1].data == b"saved\n"


def test_the_cut_at_a_head_leaves_out_later_records(writer: SqliteStore,
                                                    reader: SqliteStore) -> None:
    ops = an_ssh_session("s1")
    record(writer, ops[:6])
    head = chain_head(reader)
    record(writer, ops[6:])
    assert chain_head(reader).seq == len(ops)
    cut = list(session_records(reader, "s1", head.seq))
    assert [r.seq for r in cut] == [1, 2, 3, 4, 5, 6]


def test_without_data_no_output_is_read(writer: SqliteStore, reader: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    writer.conn.execute("DELETE FROM ssh_output")  # would fail a read with data
    got = list(session_records(reader, "s1", chain_head(reader).seq, data=False))
    assert all(r.data is None for r in got) and len(got) == len(an_ssh_session("s1"))


def test_reads_in_pages(writer: SqliteStore, reader: SqliteStore,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "AUDIT_PAGE", 3)
    monkeypatch.setattr(events, "OUTPUT_PAGE", 2)
    calls: list[int] = []
    output = reader.output

    def counted(session_id: str, after: int = 0, limit: int = 10_000) -> list[
            tuple[int, float, int, str, bytes]]:
        calls.append(limit)
        return output(session_id, after, limit)

    monkeypatch.setattr(reader, "output", counted)
    ops = [ssh_open("s1"), *(out("s1", n, n / 10, f"chunk {n}\r\n".encode())
                             for n in range(1, 11))]
    record(writer, ops)
    got = list(session_records(reader, "s1", chain_head(reader).seq))
    assert [r.data for r in got[1:]] == [f"chunk {n}\r\n".encode() for n in range(1, 11)]
    assert calls and set(calls) == {2}  # never more than a page of chunks at a time


def test_a_chunk_that_differs_from_its_audit_record_stops_the_read(
        writer: SqliteStore, reader: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    writer.conn.execute("UPDATE ssh_output SET data = x'41' WHERE seq = 3")
    with pytest.raises(StoreMismatch, match="output chunk 3 of session s1 differs"):
        list(session_records(reader, "s1", chain_head(reader).seq))


def test_a_missing_chunk_stops_the_read(writer: SqliteStore, reader: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    writer.conn.execute("DELETE FROM ssh_output WHERE seq = 9")
    with pytest.raises(StoreMismatch, match="output chunk 9 of session s1 is missing"):
        list(session_records(reader, "s1", chain_head(reader).seq))
