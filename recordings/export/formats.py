"""One entry point for the three writers, shared by ``gatewatch export`` and ``check``.

``check`` recomputes a file by calling ``export`` with the head and options the file names, so
whatever decides a file's content — the writer, its options, the chain head — goes through
here and nowhere else.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from recordings.export.asciicast import write_asciicast
from recordings.export.csvfile import write_csv
from recordings.export.events import ChainHead, ExportError, Record, Sink, Tick
from recordings.export.jsonl import write_jsonl
from recordings.export.progress import Progress
from store import SqliteStore
from store import ops as O

FORMATS = ("asciicast", "jsonl", "csv")


class Exported(NamedTuple):
    format: str
    session_id: str
    head: ChainHead
    items: int  # events (asciicast), records (jsonl) or statements (csv)


def export(store: SqliteStore, session: dict[str, Any], fmt: str, sink: Sink, head: ChainHead,
           *, channel: int | None = None, progress: Progress | None = None) -> Exported:
    """Write ``session`` (a row of the sessions table) in ``fmt`` as of ``head``."""
    session_id = session["id"]
    tick = None if progress is None else _meter(progress)
    if fmt == "asciicast":
        items = write_asciicast(store, session_id, head, sink, channel=channel, on_record=tick)
    elif channel is not None:
        raise ExportError("--channel is for --format asciicast (the other formats hold every "
                          "channel)")
    elif fmt == "jsonl":
        items = write_jsonl(store, session_id, head, sink, on_record=tick)
    elif fmt == "csv":
        items = write_csv(store, session_id, head, sink, on_record=tick)
    else:
        raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    return Exported(fmt, session_id, head, items)


def progress_for(store: SqliteStore, session: dict[str, Any], label: str) -> Progress:
    """SSH sessions are measured in output bytes, PostgreSQL sessions in statements."""
    if session.get("protocol") == "ssh":
        return Progress(label, store.output_size(session["id"]))
    return Progress(label, int(session.get("statements") or 0), unit="statements")


def _meter(progress: Progress) -> Tick:
    if progress.unit == "bytes":
        def by_bytes(record: Record) -> None:
            if record.kind == O.SSH_OUTPUT:
                progress.advance(record.fields["size"])
        return by_bytes

    def by_statement(record: Record) -> None:
        if record.kind == O.STATEMENT_START:
            progress.advance(1)
    return by_statement
