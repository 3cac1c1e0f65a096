"""Every recorded event of a session as JSON lines, each one checkable against the chain.

The first line is ``{"gatewatch": {...}}`` (format, session, chain head). Each following line
is one audit record of the session, oldest first::

    {"seq": 7, "kind": "statement.start", "id": "<session or approval id>", "ref": 2,
     "prev": "<hash of record 6>", "hash": "<its own hash>", "fields": {...}}

``fields`` is the record's body exactly as the chain hashed it (spliced in byte for byte), so
``sha256(f"{prev}\\n{seq}\\n{kind}\\n{id}\\n{ref}\\n" + fields)`` is ``hash`` for every line:
an auditor can check each event without Gatewatch (``store/chain.py`` is the whole rule).
Records of approval requests are keyed by the request's id, as in the chain. ``ssh.output``
lines add ``"data"`` and ``"encoding"``: ``"utf-8"`` when the chunk is valid UTF-8 on its own
(the text itself), else ``"base64"`` (a character split across two chunks makes both base64:
the bytes are kept exactly; the asciicast export is the one that reads them as a terminal).
"""

from __future__ import annotations

import base64

import orjson

from recordings.export.events import ChainHead, Sink, Tick, metadata, opening, session_records
from store import SqliteStore


def write_jsonl(store: SqliteStore, session_id: str, head: ChainHead, sink: Sink, *,
                on_record: Tick | None = None) -> int:
    """Write the export; returns the number of records."""
    opened = opening(store, session_id, head.seq)
    meta = metadata("jsonl", session_id, opened.fields, head)
    sink.write(orjson.dumps({"gatewatch": meta.as_dict()}) + b"\n")
    count = 0
    for record in session_records(store, session_id, head.seq, after=opened.seq - 1):
        line: dict[str, object] = {
            "seq": record.seq, "kind": record.kind, "id": record.key, "ref": record.ref,
            "prev": record.prev, "hash": record.hash, "fields": orjson.Fragment(record.body),
        }
        if record.data is not None:
            try:
                line["data"], line["encoding"] = record.data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                line["data"] = base64.b64encode(record.data).decode("ascii")
                line["encoding"] = "base64"
        sink.write(orjson.dumps(line) + b"\n")
        count += 1
        if on_record is not None:
            on_record(record)
    return count
