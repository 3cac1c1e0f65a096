"""The audit stream: every audit record, as it is committed, to the SIEM's sink.

The recorder tells the stream of each group it commits (``Recorder.listeners``); the records go
into a bounded queue, and one writer thread sends them to the sink named by
``engine.audit_stream``: JSON lines in a file rotated by size, or syslog (RFC 5424) over UDP or
TCP (octet counting, RFC 6587). Each line carries the record's sequence number, its
predecessor's hash and its own, and its body exactly as hashed, so that the SIEM can recompute
the chain (``sha256(f"{prev}\\n{seq}\\n{kind}\\n{key}\\n{ref}\\n" + body)``, ``store/chain.py``).

The stream never slows or stops the data path: the engine's thread only appends to the queue.
When the queue is full (a sink too slow, or gone) or a write fails, records are dropped and
counted, and each run of dropped records is written to the store as an ``audit.gap`` record
(first and last sequence number, how many) when the run ends, and at least every
``GAP_EVERY`` seconds while it lasts — so the SIEM's copy has gaps that the store explains.
A run made only of gap records is not itself recorded again (that would never settle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson

from engine.config import AuditStreamSettings
from engine.metrics import StreamStats
from store import ops as O
from store import records as R
from store.journal import JournalRecord

log = logging.getLogger(__name__)

GAP_EVERY = 1.0  # seconds between gap records while records are being dropped
STOP_WAIT = 2.0  # seconds the engine's stop waits for the sink to take what is queued
BATCH_DELAY = 0.01  # seconds the writer waits after a write, for the next batch to gather
SINK_NAME = "audit-stream"
UDP_MAX = 60_000  # bytes of one syslog datagram; a longer record's body is cut (and says so)
_SD_ID = "gatewatch@32473"  # 32473: the private enterprise number for examples (RFC 5612)
_FACILITY_AUDIT = 13  # "log audit"
_SEVERITY_INFO = 6


def json_line(record: JournalRecord) -> bytes:
    """One record as the SIEM gets it: its place in the chain and its body as hashed."""
    return orjson.dumps({"seq": record.seq, "kind": record.kind, "key": record.session_id,
                         "ref": record.ref, "prev": record.prev, "hash": record.hash,
                         "body": record.body})


def syslog_message(record: JournalRecord, *, hostname: str, app_name: str, at: float,
                   limit: int | None = None) -> bytes:
    """RFC 5424: ``<110>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG``, the MSG being the JSON
    line; the structured data repeats the chain fields for collectors that index them."""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    head = (f"<{_FACILITY_AUDIT * 8 + _SEVERITY_INFO}>1 {stamp} {hostname or '-'} {app_name}"
            f" {os.getpid()} {record.kind} [{_SD_ID} seq=\"{record.seq}\""
            f" hash=\"{record.hash}\" prev=\"{record.prev}\"] ").encode()
    body = json_line(record)
    if limit is not None and len(head) + len(body) > limit:
        cut = record._replace(body=record.body[: max(0, limit - len(head) - 400)])
        body = orjson.dumps({**orjson.loads(json_line(cut)), "truncated": True})
    return head + body


class Sink(Protocol):
    def send(self, records: list[JournalRecord]) -> None:
        """Deliver records, in order (blocking is allowed: this runs in the writer thread);
        ``OSError`` when it could not (all of them count as lost)."""

    def close(self) -> None: ...


class FileSink:
    """JSON lines, appended; at ``max_size`` the file becomes ``.1`` (``.1`` becomes ``.2``
    ...) and ``keep`` old files are kept. Files are the engine user's only (0600)."""

    def __init__(self, path: Path, max_size: int, keep: int) -> None:
        self.path, self.max_size, self.keep = path, max_size, keep
        self._file = self._open()
        self._size = os.fstat(self._file).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def send(self, records: list[JournalRecord]) -> None:
        out = bytearray()
        for record in records:
            line = json_line(record) + b"\n"
            if self._size + len(out) + len(line) > self.max_size and (self._size or out):
                self._write(out)
                out.clear()
                self._rotate()
            out += line
        self._write(out)

    def _write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._file, view)
            self._size += n
            view = view[n:]

    def _rotate(self) -> None:
        os.close(self._file)
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = self._open()
        self._size = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._file)


class SyslogSink:
    """RFC 5424 to a collector: one datagram per record over UDP, or octet-counted frames
    over TCP (reconnected on the next record after a failure)."""

    def __init__(self, host: str, port: int, transport: str, app_name: str) -> None:
        self.address, self.transport, self.app_name = (host, port), transport, app_name
        self.hostname = socket.gethostname()
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            if self.transport == "udp":
                family = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)[0][0]
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
                self._sock.connect(self.address)
            else:
                self._sock = socket.create_connection(self.address, timeout=10)
                self._sock.settimeout(None)
        return self._sock

    def send(self, records: list[JournalRecord]) -> None:
        udp = self.transport == "udp"
        now = time.time()
        messages = [syslog_message(r, hostname=self.hostname, app_name=self.app_name, at=now,
                                   limit=UDP_MAX if udp else None) for r in records]
        sock = self._connect()
        try:
            if udp:
                for message in messages:
                    sock.send(message)
            else:
                sock.sendall(b"".join(b"%d %s" % (len(m), m) for m in messages))
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def make_sink(settings: AuditStreamSettings) -> Sink:
    if settings.sink == "file":
        assert settings.path is not None
        return FileSink(settings.path, settings.max_size, settings.keep)
    return SyslogSink(settings.host, settings.port, settings.transport, settings.app_name)


class _Run:
    """Records dropped in a row: which, and how many."""

    def __init__(self, seq: int) -> None:
        self.first = self.last = seq
        self.count = 0
        self.only_gaps = True
        self.causes: list[str] = []  # why, in the order they happened


class AuditStream:
    """The bounded queue between the recorder and the writer thread."""

    def __init__(self, settings: AuditStreamSettings, write: Callable[[R.Record], None],
                 stats: StreamStats | None = None,
                 sink: Callable[[], Sink] | None = None) -> None:
        self.settings = settings
        self._write = write  # the recorder's write: gap records ride with the next commit
        self.stats = stats or StreamStats()
        self.stats.queued = lambda: len(self._queue)
        self._make_sink = sink or (lambda: make_sink(settings))
        self._sink: Sink | None = None
        self._queue: deque[JournalRecord] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._run: _Run | None = None
        self._gap_timer: asyncio.TimerHandle | None = None
        self._closed = False  # stopped: the recorder takes no gap record any more

    def start(self) -> None:
        """Open the sink (``OSError`` when it cannot be: the engine does not start), then the
        writer thread."""
        self._loop = asyncio.get_running_loop()
        self._sink = self._make_sink()
        self._thread = threading.Thread(target=self._writer, name="gatewatch-audit-stream",
                                        daemon=True)
        self._thread.start()

    # --- the engine's side: never waits ----------------------------------------------------

    def committed(self, records: list[JournalRecord], seconds: float = 0.0) -> None:
        room = self.settings.queue - len(self._queue)  # read without the lock: a bound, not
        take = records if room >= len(records) else records[:max(room, 0)]  # an exact count
        if take:
            with self._ready:
                self._queue.extend(take)
                self._ready.notify()
            if self._run is not None:
                self._end_run()
        for record in records[len(take):]:
            self._dropped(record, "the queue was full (the sink fell behind)")

    def _dropped(self, record: JournalRecord, cause: str) -> None:
        self.stats.dropped += 1
        if self._closed:
            return
        if self._run is None:
            self._run = _Run(record.seq)
            assert self._loop is not None
            self._gap_timer = self._loop.call_later(GAP_EVERY, self._end_run)
        run = self._run
        run.first, run.last = min(run.first, record.seq), max(run.last, record.seq)
        run.count += 1
        run.only_gaps = run.only_gaps and record.kind == O.AUDIT_GAP
        if cause not in run.causes:
            run.causes.append(cause)

    def _lost(self, records: list[JournalRecord]) -> None:
        """The writer thread could not deliver ``records`` (on the engine's thread)."""
        self.stats.failed_writes += 1
        for record in records:
            self._dropped(record, "writes to the sink failed")

    def _end_run(self) -> None:
        run, self._run = self._run, None
        if self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None
        if run is None or run.only_gaps:
            return
        self.stats.gaps += 1
        reason = "; ".join(run.causes)
        log.warning("audit stream: %d records (%d to %d) not delivered: %s", run.count,
                    run.first, run.last, reason)
        self._write(R.AuditGap(SINK_NAME, run.first, run.last, run.count,
                               O.utc(time.time()), reason))

    # --- the writer thread -----------------------------------------------------------------

    def _writer(self) -> None:
        assert self._sink is not None and self._loop is not None
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
            try:
                self._sink.send(batch)
            except OSError as exc:
                log.debug("audit stream: records %d to %d not delivered: %s", batch[0].seq,
                          batch[-1].seq, exc)
                with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                    self._loop.call_soon_threadsafe(self._lost, batch)
            else:
                self.stats.sent += len(batch)
            if not self._stopping:
                # Let a batch gather: one write (and one switch of threads) per batch instead
                # of per record. Writing record by record cost a fifth of pgbench's TPS.
                time.sleep(BATCH_DELAY)

    async def stop(self) -> None:
        """Deliver what is queued (for up to ``STOP_WAIT`` seconds), record the last gap, close
        the sink. Call it before the recorder drains: the gap record goes through it."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join, STOP_WAIT)
            if thread.is_alive():  # a sink that blocks: what is still queued is dropped
                with self._ready:
                    left = list(self._queue)
                    self._queue.clear()
                for record in left:
                    self._dropped(record, "the engine stopped before the sink took them")
                if self._sink is not None:
                    self._sink.close()  # unblocks a send stuck on a socket
                await asyncio.to_thread(thread.join, STOP_WAIT)
            await asyncio.sleep(0)  # the writer's last reports of records it lost
        self._end_run()
        self._closed = True
        if self._sink is not None:
            self._sink.close()
