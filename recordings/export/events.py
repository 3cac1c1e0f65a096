"""One session's recorded events, read from the audit chain in order, up to a chain head.

The audit chain is the source: it holds every change (a statement's start and its end, a
session's open and close, each approval update) as a record of its own, numbered, where the
tables only hold the latest state. Reading up to a head therefore gives the session exactly as
it stood when that head was the newest record, which is what makes an export reproducible.

SSH output bytes are not in the chain (only each chunk's size and SHA-256 are): they are joined
from ``ssh_output`` a page at a time, so that a session of 100 MB never sits in memory, and each
chunk is checked against its digest — an export never passes on bytes the chain disowns.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import orjson

from store import SqliteStore
from store import ops as O

# Output chunks are up to 256 KiB (engine/ssh/tape.py), so a page holds at most 16 MiB.
OUTPUT_PAGE = 64
AUDIT_PAGE = 2000


class ExportError(Exception):
    """The export cannot be made as asked (bad usage or input): exit status 2."""


class StoreMismatch(ExportError):
    """The store's tables disagree with its audit chain: a failed check, exit status 1."""


class Sink(Protocol):
    """Where an export goes: a binary file, stdout's buffer, or ``check``'s comparer."""

    def write(self, data: bytes, /) -> object: ...


class ChainHead(NamedTuple):
    seq: int
    hash: str


def chain_head(store: SqliteStore, session_id: str | None = None) -> ChainHead:
    """The newest record of the chain ``session_id`` is in (``node_of``); without one, of
    the chain of the store's own node."""
    seq, digest = store.audit_head(None if session_id is None else node_of(store, session_id))
    return ChainHead(seq, digest)


def node_of(store: SqliteStore, session_id: str) -> str | None:
    """The node whose audit chain holds the session: the engine (or worker) that opened it.
    Several nodes (engines, or an engine's workers) share a store, each with a chain of its
    own; a reading handle's own node has none of their records (None: no such session)."""
    return store.session_node(session_id)


@dataclass(frozen=True, slots=True)
class Record:
    """One audit record of the session; ``key`` is the session id, or the approval request's
    id for approval records; ``data`` the bytes of an ``ssh.output`` chunk when asked for."""

    seq: int
    kind: str
    key: str
    ref: int
    body: bytes  # exactly as hashed: ``store.chain.link(prev, seq, kind, key, ref, body)``
    prev: str
    hash: str
    fields: dict[str, Any]
    data: bytes | None = None


# Called with each record a writer has written: the CLI's progress line counts them.
Tick = Callable[[Record], object]


def session_records(store: SqliteStore, session_id: str, upto: int, *, after: int = 0,
                    data: bool = True) -> Iterator[Record]:
    """The session's records with ``after`` < seq <= ``upto``, oldest first; with ``data``,
    each output record carries its bytes (checked against the chain's digest).

    The audit has no index by session, so each read walks the chain's range: callers start
    later passes just before the session's first record (``opening(...).seq - 1``)."""
    chunks = _Chunks(store, session_id) if data else None
    node = node_of(store, session_id)
    while True:
        page = store.session_audit(session_id, after, upto, AUDIT_PAGE, node=node)
        for seq, kind, key, ref, text, prev, digest in page:
            body = text.encode()
            values: dict[str, Any] = orjson.loads(body)
            chunk = (chunks.take(ref, values)
                     if chunks is not None and kind == O.SSH_OUTPUT else None)
            yield Record(seq, kind, key, ref, body, prev, digest, values, chunk)
        if len(page) < AUDIT_PAGE:
            return
        after = page[-1][0]


class _Chunks:
    """``ssh_output`` rows of one session read ahead a page at a time, handed out by number."""

    def __init__(self, store: SqliteStore, session_id: str, after: int = 0) -> None:
        self._store = store
        self._session_id = session_id
        self._rows: deque[tuple[int, float, int, str, bytes]] = deque()
        self._after = after

    def take(self, ref: int, expected: dict[str, Any]) -> bytes:
        while True:
            if not self._rows:
                page = self._store.output(self._session_id, self._after, OUTPUT_PAGE)
                if not page:
                    break
                self._rows.extend(page)
                self._after = page[-1][0]
            if self._rows[0][0] >= ref:
                break
            self._rows.popleft()  # a row the chain does not hold: verify reports it
        if not self._rows or self._rows[0][0] != ref:
            raise StoreMismatch(f"output chunk {ref} of session {self._session_id} is missing "
                                "from the store: run gatewatch verify")
        seq, t, channel, stream, data = self._rows.popleft()
        if (len(data) != expected["size"]
                or hashlib.sha256(data).hexdigest() != expected["sha256"]
                or (t, channel, stream) != (expected["t"], expected["channel"],
                                            expected["stream"])):
            raise StoreMismatch(f"output chunk {seq} of session {self._session_id} differs "
                                "from its audit record: run gatewatch verify")
        return data


def chunk_data(store: SqliteStore, record: Record) -> bytes:
    """The bytes of one output record read without its neighbours (checked like the rest)."""
    return _Chunks(store, record.key, record.ref - 1).take(record.ref, record.fields)


def opening(store: SqliteStore, session_id: str, upto: int) -> Record:
    """The session's first record, its ``session.open``, from the chain up to ``upto``."""
    for record in session_records(store, session_id, upto, data=False):
        if record.kind == O.SESSION_OPEN:
            return record
        break
    raise ExportError(f"session {session_id} has no records up to audit record {upto}")


class Metadata(NamedTuple):
    """What every export's first line carries (under a "gatewatch" key): enough for an
    auditor to know what the file is and to have ``gatewatch verify --export`` recompute it."""

    format: str
    session: dict[str, Any]
    head: ChainHead
    options: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.format, "version": 1, "session": self.session,
                "chain": {"seq": self.head.seq, "hash": self.head.hash}, **self.options}


SESSION_KEYS = ("protocol", "identity", "identity_kind", "connection", "target", "database",
                "client_addr", "application_name", "started_at")


def metadata(fmt: str, session_id: str, opened: dict[str, Any], head: ChainHead,
             **options: Any) -> Metadata:
    session = {"id": session_id, **{k: opened.get(k) for k in SESSION_KEYS}}
    return Metadata(fmt, session, head, options)


def epoch(iso: str) -> float:
    """A stored time (ISO 8601, UTC) as seconds since the epoch."""
    return datetime.fromisoformat(iso).timestamp()
