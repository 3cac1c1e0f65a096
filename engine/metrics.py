"""Prometheus metrics, and the small HTTP endpoint that serves them with health checks.

The counters are read off the records as the recorder commits them (``Recorder.listeners``),
not sprinkled through the front ends: what is counted is what the store holds, for both
protocols alike, and the data path pays one callback per group commit. A session's labels are
remembered from its open record until its close record, so a statement is counted under its
connection without the statement record naming it.

Labels are bounded: connection, protocol, identity kind, verdict, rule and outcome come from
the policies file or from small fixed sets; an identity's vendor (an OIDC claim) is capped at
``MAX_VALUES`` distinct values, beyond which it reads ``other``. Never a statement's text, a
table name, a session id or a value.

Masking counts arrive with a statement's end (PostgreSQL results) and with a session's close
(texts recorded, SSH output): an SSH session's masked values show when it ends.

The endpoint (``engine.metrics.listen``) runs on the engine's event loop, so a scrape reads the
engine's state without locks: ``/metrics`` (Prometheus text format), ``/healthz`` (the process
answers), ``/readyz`` (the store is writable and every connection is listening; 503 with the
reason when not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from store import ops as O
from store.journal import JournalRecord

log = logging.getLogger(__name__)

MAX_VALUES = 50  # distinct values of an open-ended label (a vendor) before "other"
_MAX_PENDING = 10_000  # approval requests remembered for their time to decision
OUTCOMES = ("approved", "denied", "expired", "withdrawn")
# Why a login was refused, as the front ends record it (the text before any detail in
# parentheses); anything else is "other".
LOGIN_REASONS = ("authentication failed", "not allowed", "locked out", "no TLS",
                 "access denied", "access expired", "access withdrawn", "too many attempts",
                 "login timed out", "unknown user")
_DECISION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
_COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 1.0)


class Bounded:
    """An open-ended label's values, capped: the first ``limit`` seen, then ``other``."""

    def __init__(self, limit: int = MAX_VALUES) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None or value == "":
            return ""
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return "other"
        self._seen.add(value)
        return value


def login_reason(end_reason: str | None) -> str:
    head = (end_reason or "").split(" (", 1)[0].split(":", 1)[0].strip()
    return head if head in LOGIN_REASONS else "other"


def _epoch(stamp: object) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


class StreamStats:
    """What the audit stream reports (``engine.audit_stream``), read at each scrape."""

    def __init__(self) -> None:
        self.sent = 0
        self.dropped = 0
        self.failed_writes = 0
        self.gaps = 0
        self.queued: Callable[[], int] = lambda: 0


class _Live(Collector):
    """Values read from the engine at scrape time: journal backlog, audit stream, reloads."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterable[Metric]:
        m = self._m
        backlog = GaugeMetricFamily("gatewatch_journal_backlog",
                                    "Records committed to the journal, not yet in SQLite")
        backlog.add_metric([], m.backlog())
        yield backlog
        relayed = CounterMetricFamily(
            "gatewatch_postgres_bytes", "PostgreSQL bytes relayed (in: from clients, out: to"
            " clients)", labels=["connection", "direction"])
        for (connection, direction), count in sorted(m.pg_bytes().items()):
            relayed.add_metric([connection, direction], count)
        yield relayed
        s = m.stream
        if s is not None:
            for name, doc, value in (
                ("gatewatch_audit_stream_sent", "Audit records delivered to the sink", s.sent),
                ("gatewatch_audit_stream_dropped",
                 "Audit records dropped (queue full or sink failing); each run is a gap record",
                 s.dropped),
                ("gatewatch_audit_stream_gaps", "Gap records written to the store", s.gaps),
                ("gatewatch_audit_stream_write_errors", "Failed writes to the sink",
                 s.failed_writes),
            ):
                family = CounterMetricFamily(name, doc)
                family.add_metric([], value)
                yield family
            queued = GaugeMetricFamily("gatewatch_audit_stream_queue",
                                       "Audit records waiting for the sink")
            queued.add_metric([], s.queued())
            yield queued


class Metrics:
    """The engine's Prometheus families, fed from committed records."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        session_labels = ("connection", "protocol", "identity_kind", "vendor")
        self.sessions_opened = Counter("gatewatch_sessions_opened", "Sessions opened",
                                       session_labels, registry=r)
        self.sessions_live = Gauge("gatewatch_sessions_live", "Sessions open now",
                                   session_labels, registry=r)
        self.statements = Counter(
            "gatewatch_statements", "Statements and commands judged and recorded",
            ("connection", "protocol", "verdict", "rule"), registry=r)
        self.approvals_requested = Counter(
            "gatewatch_approvals_requested", "Approval requests (statements held, access)",
            ("connection", "rule"), registry=r)
        self.approvals = Counter("gatewatch_approvals", "Approval requests ended, by outcome",
                                 ("outcome",), registry=r)
        self.decision_seconds = Histogram(
            "gatewatch_approval_decision_seconds", "Time from request to decision",
            ("outcome",), buckets=_DECISION_BUCKETS, registry=r)
        self.masked = Counter("gatewatch_masked_values", "Values masked, by masking rule",
                              ("connection", "rule"), registry=r)
        self.commit_seconds = Histogram(
            "gatewatch_store_commit_seconds", "Group commits to the store's journal",
            buckets=_COMMIT_BUCKETS, registry=r)
        self.login_failures = Counter("gatewatch_login_failures", "Logins refused, by reason",
                                      ("connection", "protocol", "reason"), registry=r)
        self.ssh_bytes = Counter(
            "gatewatch_ssh_bytes", "SSH bytes relayed and recorded (o: output, e: stderr,"
            " i: input without a terminal)", ("connection", "stream"), registry=r)
        self.reloads = Counter("gatewatch_policy_reloads", "Policy reloads, by result",
                               ("status",), registry=r)
        for status in ("applied", "refused"):
            self.reloads.labels(status)
        for outcome in OUTCOMES:
            self.approvals.labels(outcome)
        self.backlog: Callable[[], int] = lambda: 0
        self.pg_bytes: Callable[[], dict[tuple[str, str], int]] = dict
        self.stream: StreamStats | None = None
        self._vendor = Bounded()
        # session id → (labels of its sessions families, connection, protocol); rejected ones
        # wait for their close record, which carries the reason.
        self._sessions: dict[str, tuple[tuple[str, str, str, str], str, str]] = {}
        self._rejected: dict[str, tuple[str, str]] = {}
        self._requests: dict[str, float] = {}
        self._statement_children: dict[tuple[str, str, str, str], Counter] = {}
        r.register(_Live(self))

    # --- fed by the recorder ----------------------------------------------------------------

    def committed(self, records: list[JournalRecord], seconds: float) -> None:
        self.commit_seconds.observe(seconds)
        for record in records:
            handler = self._handlers.get(record.kind)
            if handler is not None:
                handler(self, record)

    def _session_open(self, record: JournalRecord) -> None:
        f = orjson.loads(record.body)
        conn, protocol = str(f.get("connection")), str(f.get("protocol"))
        if f.get("status") == "rejected":
            self._rejected[record.session_id] = (conn, protocol)
            return
        labels = (conn, protocol, str(f.get("identity_kind") or ""),
                  self._vendor(f.get("identity_vendor")))
        self._sessions[record.session_id] = (labels, conn, protocol)
        self.sessions_opened.labels(*labels).inc()
        self.sessions_live.labels(*labels).inc()

    def _session_close(self, record: JournalRecord) -> None:
        f = orjson.loads(record.body)
        rejected = self._rejected.pop(record.session_id, None)
        if rejected is not None:
            self.login_failures.labels(*rejected, login_reason(f.get("end_reason"))).inc()
            return
        known = self._sessions.pop(record.session_id, None)
        if known is None:
            return  # opened by an earlier run (closed as interrupted at start)
        self.sessions_live.labels(*known[0]).dec()
        self._count_masked(known[1], f.get("masked"))

    def _statement_start(self, record: JournalRecord) -> None:
        known = self._sessions.get(record.session_id)
        if known is None:
            return
        f = orjson.loads(record.body)
        key = (known[1], known[2], str(f.get("verdict")), str(f.get("rule") or ""))
        child = self._statement_children.get(key)
        if child is None:
            child = self._statement_children[key] = self.statements.labels(*key)
        child.inc()

    def _statement_end(self, record: JournalRecord) -> None:
        if record.body.endswith('"masked":null}'):
            return  # the common case, without parsing the body
        known = self._sessions.get(record.session_id)
        if known is not None:
            self._count_masked(known[1], orjson.loads(record.body).get("masked"))

    def _count_masked(self, connection: str, masked: object) -> None:
        if not isinstance(masked, str):
            return
        with contextlib.suppress(ValueError):
            counts = orjson.loads(masked)
            if not isinstance(counts, dict):
                return
            for key, n in counts.items():
                rule, _, detail = str(key).partition(":")
                if detail != "exempt" and isinstance(n, int):
                    self.masked.labels(connection, rule).inc(n)

    def _approval_request(self, record: JournalRecord) -> None:
        f = orjson.loads(record.body)
        self.approvals_requested.labels(str(f.get("connection")), str(f.get("rule") or "")).inc()
        created = _epoch(f.get("created_at"))
        if created is not None and len(self._requests) < _MAX_PENDING:
            self._requests[record.session_id] = created

    def _approval_update(self, record: JournalRecord) -> None:
        f = orjson.loads(record.body)
        outcome = f.get("status")
        if outcome not in OUTCOMES:
            return  # a vote: the request still waits
        self.approvals.labels(outcome).inc()
        created = self._requests.pop(record.session_id, None)
        decided = _epoch(f.get("decided_at"))
        if created is not None and decided is not None:
            self.decision_seconds.labels(outcome).observe(max(0.0, decided - created))

    def _ssh_output(self, record: JournalRecord) -> None:
        known = self._sessions.get(record.session_id)
        if known is None:
            return
        f = orjson.loads(record.body)
        self.ssh_bytes.labels(known[1], str(f.get("stream"))).inc(int(f.get("size") or 0))

    def _policy_reload(self, record: JournalRecord) -> None:
        status = orjson.loads(record.body).get("status")
        self.reloads.labels("applied" if status == "applied" else "refused").inc()

    _handlers: dict[str, Callable[[Metrics, JournalRecord], None]] = {
        O.SESSION_OPEN: _session_open,
        O.SESSION_CLOSE: _session_close,
        O.STATEMENT_START: _statement_start,
        O.STATEMENT_END: _statement_end,
        O.APPROVAL_REQUEST: _approval_request,
        O.APPROVAL_UPDATE: _approval_update,
        O.SSH_OUTPUT: _ssh_output,
        O.POLICY_RELOAD: _policy_reload,
    }

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# --- the endpoint -------------------------------------------------------------------------

Ready = Callable[[], str | None]  # why the engine is not ready, or None
_MAX_HEAD = 8192


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` over HTTP/1.1 on the engine's loop."""

    def __init__(self, metrics: Metrics, host: str, port: int, ready: Ready) -> None:
        self.metrics = metrics
        self.host, self.port = host, port
        self._ready = ready
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  reuse_address=True, limit=_MAX_HEAD)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]
        log.info("metrics on %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 10)
            while True:  # the headers: nothing here needs them
                line = await asyncio.wait_for(reader.readline(), 10)
                if line in (b"\r\n", b"\n", b""):
                    break
            status, ctype, body = self.answer(request)
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(head if request.startswith(b"HEAD ") else head + body)
            await writer.drain()
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass  # a scraper that went away or sent nonsense: nothing to answer
        finally:
            writer.close()

    def answer(self, request: bytes) -> tuple[str, str, bytes]:
        parts = request.decode("latin-1").split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = parts[1].split("?", 1)[0]
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, self.metrics.exposition()
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            why = self._ready()
            if why is None:
                return "200 OK", "text/plain", b"ready\n"
            return "503 Service Unavailable", "text/plain", f"not ready: {why}\n".encode()
        return "404 Not Found", "text/plain", b"/metrics, /healthz or /readyz\n"
