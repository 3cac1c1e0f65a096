"""A session's statements (or SSH commands) as CSV, one row each, for a spreadsheet.

CSV has no place for metadata, and an export must carry its chain head; so the first line is a
comment, ``# gatewatch {...}`` (the same JSON object the other formats carry), and the header
row follows. Readers skip it with ``comment="#"`` (pandas), ``skip=1`` (R) or by reading past
one line; the trade is one line that plain ``csv.reader`` shows as a row, against a file that
could not be checked at all.

``outcome`` is the verdict as the operator reads it (the statistics' rule): a held statement
says ``approved``, ``denied`` or ``withdrawn`` (its client withdrew it: nobody denied it).

A row is a statement as it stood at the chain head: a statement still running then has no
``finished_at`` and status ``running``. Rows come in statement order and are written as soon
as every earlier statement is complete, so only statements in flight wait in memory (a
pipelining client has a few; a session may have millions). Empty cells are NULLs.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from recordings.export.events import ChainHead, Sink, Tick, metadata, opening, session_records
from store import SqliteStore, reads
from store import ops as O

COLUMNS = ("seq", "started_at", "finished_at", "duration_ms", "verdict", "outcome", "rule",
           "approval_id", "status", "rows", "exit_status", "sqlstate", "error", "masked", "text",
           "params")
COMMENT = b"# gatewatch "


def write_csv(store: SqliteStore, session_id: str, head: ChainHead, sink: Sink, *,
              on_record: Tick | None = None) -> int:
    """Write the export; returns the number of statements."""
    opened = opening(store, session_id, head.seq)
    meta = metadata("csv", session_id, opened.fields, head)
    sink.write(COMMENT + orjson.dumps(meta.as_dict()) + b"\n")
    rows = _Rows(sink)
    rows.write(COLUMNS)
    waiting: dict[int, dict[str, Any]] = {}
    ended: set[int] = set()
    written = 0  # statements numbered up to this one are out
    for record in session_records(store, session_id, head.seq, after=opened.seq - 1,
                                  data=False):
        if record.kind == O.STATEMENT_START:
            waiting[record.ref] = dict(record.fields)
        elif record.kind == O.STATEMENT_END and record.ref in waiting:
            waiting[record.ref].update(record.fields)
            ended.add(record.ref)
        while written + 1 in ended:
            written += 1
            ended.discard(written)
            rows.statement(written, waiting.pop(written))
        if on_record is not None:
            on_record(record)
    for seq in sorted(waiting):
        rows.statement(seq, waiting[seq])
    rows.flush()
    return written + len(waiting)


class _Rows:
    """``csv.writer`` writes text; rows gather in a buffer and go to the sink as UTF-8."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def write(self, row: tuple[Any, ...] | list[Any]) -> None:
        self._writer.writerow(row)
        if self._buffer.tell() > 1 << 16:
            self.flush()

    def statement(self, seq: int, fields: dict[str, Any]) -> None:
        values = {**fields, "seq": seq, "outcome": reads.outcome(
            fields.get("verdict"), fields.get("status"), fields.get("error"))}
        self.write(["" if values.get(c) is None else values[c] for c in COLUMNS])

    def flush(self) -> None:
        text = self._buffer.getvalue()
        if text:
            self._sink.write(text.encode("utf-8"))
            self._buffer.seek(0)
            self._buffer.truncate()
