"""JSON lines: every record, each checkable against its hash on its own."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import orjson

from recordings.export.events import chain_head
from recordings.export.jsonl import write_jsonl
from store import SqliteStore
from store.chain import link
from tests.recordings.export.recorded import EURO, a_pg_session, an_ssh_session, record


def lines(store: SqliteStore, session_id: str) -> list[dict[str, Any]]:
    sink = io.BytesIO()
    write_jsonl(store, session_id, chain_head(store), sink)
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_first_line_is_the_header(writer: SqliteStore, reader: SqliteStore) -> None:
    record(writer, a_pg_session("pg"))
    header = lines(reader, "pg")[0]
    head = chain_head(reader)
    assert list(header) == ["gatewatch"]
    assert header["gatewatch"]["format"] == "jsonl"
    assert header["gatewatch"]["chain"] == {"seq": head.seq, "hash": head.hash}
    assert header["gatewatch"]["session"]["database"] == "shop"


def test_every_record_with_its_hash(writer: SqliteStore, reader: SqliteStore) -> None:
    ops = an_ssh_session("s1")
    record(writer, ops)
    records = lines(reader, "s1")[1:]
    assert [r["kind"] for r in records] == [op.kind for op in ops]
    for r in records:  # what an auditor can do with nothing but the file and sha256
        body = orjson.dumps(r["fields"])
        assert link(r["prev"], r["seq"], r["kind"], r["id"], r["ref"], body) == r["hash"]
    assert records[-1]["hash"] == chain_head(reader).hash


def test_output_as_text_or_base64(writer: SqliteStore, reader: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    chunks = {r["ref"]: r for r in lines(reader, "s1")[1:] if r["kind"] == "ssh.output"}
    assert (chunks[2]["encoding"], chunks[2]["data"]) == ("utf-8", "$ ")
    assert chunks[8]["data"] == "line one\nline two\n"
    # the euro sign is split across chunks 3 and 4: neither is valid UTF-8 alone
    assert chunks[3]["encoding"] == chunks[4]["encoding"] == "base64"
    assert base64.b64decode(chunks[3]["data"]).endswith(EURO[:1])
    assert base64.b64decode(chunks[4]["data"]).startswith(EURO[1:])
    assert all("data" not in r for r in lines(reader, "s1")[1:] if r["kind"] != "ssh.output")
