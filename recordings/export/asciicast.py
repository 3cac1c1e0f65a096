"""asciicast v2 of an SSH session: what ``asciinema play`` and ``asciinema cat`` read.

A cast is one terminal, so it follows **one channel**: by default the first channel that has a
terminal (its first record is a window size — the gateway records the size before it opens the
target side), else the first channel with output (`ssh host cmd` has no terminal, and its
output is what the user saw), or the channel asked for. Several shells over one connection
(ssh multiplexing) would interleave into garbage on one screen; each other channel gets a
marker where it opens, and its bytes stay in the jsonl export. Of the followed channel:

- streams ``o`` and ``e`` become ``"o"`` events (on a terminal stderr shares the screen);
- ``r`` (recorded as ``COLSxROWS``) becomes a ``"r"`` resize event; the first size before any
  output is the header's width and height (80x24 when the channel has none);
- ``i`` is recorded only on channels without a terminal (what is typed at a terminal comes back
  as its echo), and becomes an ``"i"`` event there; without a terminal, newlines in the output
  are shown as ``\\r\\n``, as the client's own terminal (``onlcr``) showed them.

Bytes are decoded with one incremental UTF-8 decoder per stream, so a character split between
two chunks comes out whole; undecodable bytes become U+FFFD (the jsonl export keeps them).
Markers (``"m"``) mark each command, block, approval request and decision, and the session's
end or kill, at the time the chain records for them. Times are seconds since the session
started; a chunk is stamped when its first byte arrived and a command when it was judged, so
the two clocks can cross by a few milliseconds: times are made non-decreasing, as players
expect.
"""

from __future__ import annotations

import codecs
from typing import Any, NamedTuple

import orjson

from recordings.export.events import (
    ChainHead,
    ExportError,
    Record,
    Sink,
    Tick,
    chunk_data,
    epoch,
    metadata,
    opening,
    session_records,
)
from store import SqliteStore
from store import ops as O

DEFAULT_SIZE = (80, 24)
_LABEL_MAX = 160


class Channel(NamedTuple):
    number: int | None
    terminal: bool
    width: int
    height: int


def pick_channel(store: SqliteStore, session_id: str, upto: int, wanted: int | None = None,
                 *, after: int = 0) -> Channel:
    """The channel the cast follows, found from the chain's records (no output is read but the
    one window size)."""
    seen: dict[int, None] = {}  # channels in the order they first recorded
    for record in session_records(store, session_id, upto, after=after, data=False):
        if record.kind != O.SSH_OUTPUT or record.fields["channel"] in seen:
            continue
        number, terminal = record.fields["channel"], record.fields["stream"] == "r"
        seen[number] = None
        if number == wanted or (wanted is None and terminal):
            width, height = DEFAULT_SIZE
            if terminal:
                width, height = _size(chunk_data(store, record), DEFAULT_SIZE)
            return Channel(number, terminal, width, height)
    if wanted is not None:
        have = ", ".join(map(str, seen)) or "none"
        raise ExportError(f"session {session_id} has no output on channel {wanted}"
                          f" (channels with output: {have})")
    if seen:  # no terminal at all (`ssh host cmd`): what the user saw is the first channel's
        return Channel(next(iter(seen)), False, *DEFAULT_SIZE)
    return Channel(None, False, *DEFAULT_SIZE)


def _size(data: bytes, fallback: tuple[int, int]) -> tuple[int, int]:
    cols, _, rows = data.decode("ascii", "replace").partition("x")
    if cols.isdigit() and rows.isdigit() and int(cols) > 0 and int(rows) > 0:
        return int(cols), int(rows)
    return fallback


def write_asciicast(store: SqliteStore, session_id: str, head: ChainHead, sink: Sink, *,
                    channel: int | None = None, on_record: Tick | None = None) -> int:
    """Write the cast; returns the number of events."""
    first = opening(store, session_id, head.seq)
    opened = first.fields
    if opened.get("protocol") != "ssh":
        raise ExportError(f"session {session_id} is a {opened.get('protocol')} session: only "
                          "SSH sessions have terminal output; use --format jsonl or csv")
    picked = pick_channel(store, session_id, head.seq, channel, after=first.seq - 1)
    start = epoch(opened["started_at"])
    meta = metadata("asciicast", session_id, opened, head, channel=picked.number)
    header = {
        "version": 2, "width": picked.width, "height": picked.height,
        "timestamp": int(start),
        "title": f"gatewatch session {session_id}: {opened.get('identity')} → "
                 f"{opened.get('connection')} ({opened.get('target')})",
        "gatewatch": meta.as_dict(),
    }
    sink.write(orjson.dumps(header) + b"\n")
    cast = _Cast(sink, start, picked)
    for record in session_records(store, session_id, head.seq, after=first.seq - 1):
        cast.add(record)
        if on_record is not None:
            on_record(record)
    cast.finish()
    return cast.events


class _Cast:
    def __init__(self, sink: Sink, start: float, channel: Channel) -> None:
        self._sink = sink
        self._start = start
        self._channel = channel
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._others: set[int] = set()
        self.last = 0.0
        self.events = 0

    def emit(self, t: float, code: str, text: str) -> None:
        self.last = t = round(max(t, self.last), 6)
        self._sink.write(orjson.dumps([t, code, text]) + b"\n")
        self.events += 1

    def at(self, iso: str | None) -> float:
        return self.last if iso is None else epoch(iso) - self._start

    def add(self, record: Record) -> None:
        f = record.fields
        if record.kind == O.SSH_OUTPUT:
            self._output(f, record.data or b"")
        elif record.kind == O.STATEMENT_START:
            self.emit(self.at(f.get("started_at")), "m", _started(record.ref, f))
        elif record.kind == O.STATEMENT_END:
            label = _ended(record.ref, f)
            if label:
                self.emit(self.at(f.get("finished_at")), "m", label)
        elif record.kind == O.APPROVAL_REQUEST:
            self.emit(self.at(f.get("created_at")), "m", _label(
                f"approval {record.key} requested (rule \"{f.get('rule')}\"): "
                f"{f.get('statement')}"))
        elif record.kind == O.APPROVAL_UPDATE:
            self.emit(self.at(f.get("decided_at")), "m", _decided(record.key, f))
        elif record.kind == O.SESSION_CLOSE:
            status = f.get("status")
            what = "session killed" if status == "killed" else f"session {status}"
            reason = f": {f['end_reason']}" if f.get("end_reason") else ""
            self.emit(self.at(f.get("ended_at")), "m", _label(what + reason))

    def _output(self, f: dict[str, Any], data: bytes) -> None:
        number, stream, t = f["channel"], f["stream"], f["t"]
        if number != self._channel.number:
            if number not in self._others:
                self._others.add(number)
                note = ("a terminal of its own: not in this cast; see the jsonl export"
                        if stream == "r" else "no terminal: its bytes are in the jsonl export")
                self.emit(t, "m", f"channel {number} opened ({note})")
            return
        if stream == "r":
            cols, rows = _size(data, DEFAULT_SIZE)
            self.emit(t, "r", f"{cols}x{rows}")
            return
        text = self._decoder(stream).decode(data)
        if text:
            self._text(t, stream, text)

    def _text(self, t: float, stream: str, text: str) -> None:
        if not self._channel.terminal:
            text = text.replace("\n", "\r\n")
        self.emit(t, "i" if stream == "i" else "o", text)

    def _decoder(self, stream: str) -> codecs.IncrementalDecoder:
        decoder = self._decoders.get(stream)
        if decoder is None:
            decoder = self._decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        return decoder

    def finish(self) -> None:
        """Bytes of a character cut off by the end of the recording (or of the export)."""
        for stream, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                self._text(self.last, stream, tail)


def _started(seq: int, f: dict[str, Any]) -> str:
    verdict, rule, text = f.get("verdict") or "allow", f.get("rule"), f.get("text") or ""
    if verdict == "block":
        return _label(f'command {seq} blocked by rule "{rule}": {text}')
    if verdict == "review":
        return _label(f'command {seq} held for approval (rule "{rule}"): {text}')
    return _label(f"command {seq}: {text}")


def _ended(seq: int, f: dict[str, Any]) -> str | None:
    """A marker for an end worth finding: not for plain successes nor for blocks (marked when
    judged)."""
    status, exit_status, error = f.get("status"), f.get("exit_status"), f.get("error")
    if status == "blocked" or (status == "ok" and exit_status in (None, 0)):
        return None
    label = f"command {seq} {status}"
    if exit_status not in (None, 0):
        label += f" (exit status {exit_status})"
    if error:
        label += f": {error}"
    return _label(label)


def _decided(approval_id: str, f: dict[str, Any]) -> str:
    status = f.get("status")
    by = f" by {f['decided_by']}" if f.get("decided_by") else ""
    why = f": {f['decision_reason']}" if f.get("decision_reason") else ""
    if status == "pending":  # one approver of several
        return _label(f"approval {approval_id} approved{by} (more approvals needed){why}")
    return _label(f"approval {approval_id} {status}{by}{why}")


def _label(text: str) -> str:
    """One line, bounded: a marker is a label on a timeline, not the evidence itself."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _LABEL_MAX else flat[:_LABEL_MAX - 1] + "…"
