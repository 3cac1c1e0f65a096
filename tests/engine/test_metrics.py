"""Metrics read off committed records, without an engine: records are chained as the store
chains them and handed to ``Metrics.committed`` as the recorder does."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import MAX_VALUES, Bounded, Metrics, MetricsServer, StreamStats, login_reason
from store import ops as O
from store import records as R
from store.chain import GENESIS, canonical, link
from store.journal import JournalRecord


class Chain:
    def __init__(self) -> None:
        self.seq, self.head = 0, GENESIS

    def __call__(self, *records: R.Record) -> list[JournalRecord]:
        out = []
        for record in records:
            op = record.op()
            self.seq += 1
            body = canonical(op.fields)
            prev, self.head = self.head, link(self.head, self.seq, op.kind, op.session_id,
                                              op.ref, body)
            out.append(JournalRecord(self.seq, op.kind, op.session_id, op.ref, prev, self.head,
                                     body.decode()))
        return out


def opened(sid: str, conn: str = "shop", status: str = "open", kind: str = "person",
           vendor: str | None = None) -> R.SessionOpen:
    return R.SessionOpen(sid, protocol="postgres", connection=conn, identity="alice",
                         identity_kind=kind, client_addr="127.0.0.1:1", application_name=None,
                         database="shop", started_at=O.utc(1000.0), status=status, target=None,
                         identity_vendor=vendor)


def started(sid: str, seq: int, verdict: str = "allow", rule: str | None = None,
            text: str = "select 1") -> R.StatementStart:
    return R.StatementStart(sid, seq, protocol="simple", text=text, params=None,
                            started_at=O.utc(1000.0), status="running", verdict=verdict,
                            rule=rule, approval_id=None)


def ended(sid: str, seq: int, masked: str | None = None) -> R.StatementEnd:
    return R.StatementEnd(sid, seq, finished_at=O.utc(1001.0), duration_ms=1.0, status="ok",
                          command="SELECT 1", rows=1, sqlstate=None, error=None,
                          exit_status=None, masked=masked)


def closed(sid: str, reason: str = "client disconnected", status: str = "closed",
           masked: str | None = None) -> R.SessionClose:
    return R.SessionClose(sid, ended_at=O.utc(1002.0), status=status, end_reason=reason,
                          masked=masked)


def sample(m: Metrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


def test_sessions_statements_and_masking_are_counted_by_bounded_labels() -> None:
    m, chain = Metrics(), Chain()
    m.committed(chain(opened("s1", vendor="acme"), started("s1", 1),
                      started("s1", 2, "block", "no-drop", "drop table secret_table")), 0.001)
    assert sample(m, "gatewatch_sessions_live", connection="shop", protocol="postgres",
                  identity_kind="person", vendor="acme") == 1
    m.committed(chain(ended("s1", 1, '{"personal-data:email/public.customers.email": 3}'),
                      closed("s1", masked='{"personal-data:email/recorded": 1,'
                                          ' "everything:exempt": 1}')), 0.002)
    assert sample(m, "gatewatch_sessions_opened_total", connection="shop",
                  protocol="postgres", identity_kind="person", vendor="acme") == 1
    assert sample(m, "gatewatch_sessions_live", connection="shop", protocol="postgres",
                  identity_kind="person", vendor="acme") == 0
    assert sample(m, "gatewatch_statements_total", connection="shop", protocol="postgres",
                  verdict="block", rule="no-drop") == 1
    assert sample(m, "gatewatch_statements_total", connection="shop", protocol="postgres",
                  verdict="allow", rule="") == 1
    assert sample(m, "gatewatch_masked_values_total", connection="shop",
                  rule="personal-data") == 4
    assert sample(m, "gatewatch_masked_values_total", connection="shop", rule="everything") == 0
    assert sample(m, "gatewatch_store_commit_seconds_count") == 2
    text = m.exposition().decode()
    assert "secret_table" not in text and "s1" not in text and "customers" not in text
    list(text_string_to_metric_families(text))  # Prometheus' own parser reads it


def test_a_rejected_login_is_a_failure_by_reason_not_a_session() -> None:
    m, chain = Metrics(), Chain()
    m.committed(chain(opened("r1", status="rejected"),
                      closed("r1", "authentication failed", "rejected"),
                      opened("r2", status="rejected"),
                      closed("r2", "locked out (L1234)", "rejected"),
                      opened("r3", status="rejected"),
                      closed("r3", "password 'hunter2' was wrong", "rejected")), 0.0)
    for reason, n in (("authentication failed", 1), ("locked out", 1), ("other", 1)):
        assert sample(m, "gatewatch_login_failures_total", connection="shop",
                      protocol="postgres", reason=reason) == n
    assert "hunter2" not in m.exposition().decode()
    assert sample(m, "gatewatch_sessions_opened_total", connection="shop", protocol="postgres",
                  identity_kind="person", vendor="") == 0
    assert login_reason(None) == "other"


def test_approvals_by_outcome_and_time_to_decision() -> None:
    m, chain = Metrics(), Chain()
    created = 1000.0
    request = R.ApprovalOpen("a1", session_id="s1", requester="alice", connection="shop",
                             statement="delete from t", statement_hash="0" * 64,
                             rule="review-unbounded-writes", reason="r",
                             created_at=O.utc(created), expires_at=O.utc(created + 300),
                             status="pending")
    vote = R.ApprovalUpdate("a1", status="pending", approvals="bob", decided_at=None,
                            decided_by="bob", decision_reason=None)
    done = R.ApprovalUpdate("a1", status="approved", approvals="bob,carol",
                            decided_at=O.utc(created + 42), decided_by="carol",
                            decision_reason=None)
    m.committed(chain(request, vote, done), 0.0)
    assert sample(m, "gatewatch_approvals_requested_total", connection="shop",
                  rule="review-unbounded-writes") == 1
    assert sample(m, "gatewatch_approvals_total", outcome="approved") == 1
    assert sample(m, "gatewatch_approvals_total", outcome="denied") == 0
    assert sample(m, "gatewatch_approval_decision_seconds_sum", outcome="approved") == 42
    assert sample(m, "gatewatch_approval_decision_seconds_bucket", outcome="approved",
                  le="60.0") == 1


def test_an_open_ended_label_is_capped() -> None:
    vendor = Bounded()
    values = {vendor(f"v{n}") for n in range(MAX_VALUES + 10)}
    assert len(values) == MAX_VALUES + 1 and "other" in values
    assert vendor("v0") == "v0"  # one seen before keeps its name


def test_live_values_are_read_at_scrape_time() -> None:
    m = Metrics()
    m.backlog = lambda: 17
    m.stream = StreamStats()
    m.stream.dropped, m.stream.gaps = 5, 1
    m.stream.queued = lambda: 3
    assert sample(m, "gatewatch_journal_backlog") == 17
    assert sample(m, "gatewatch_audit_stream_dropped_total") == 5
    assert sample(m, "gatewatch_audit_stream_gaps_total") == 1
    assert sample(m, "gatewatch_audit_stream_queue") == 3


def test_the_endpoint_answers_metrics_health_and_readiness() -> None:
    why: list[str | None] = [None]
    server = MetricsServer(Metrics(), "127.0.0.1", 0, lambda: why[0])
    status, ctype, body = server.answer(b"GET /metrics HTTP/1.1\r\n")
    assert status == "200 OK" and ctype.startswith("text/plain") and b"gatewatch_" in body
    assert server.answer(b"GET /healthz HTTP/1.1\r\n")[2] == b"ok\n"
    assert server.answer(b"GET /readyz HTTP/1.1\r\n")[0] == "200 OK"
    why[0] = "the store is not writable: disk full"
    status, _, body = server.answer(b"GET /readyz HTTP/1.1\r\n")
    assert status.startswith("503") and b"disk full" in body
    assert server.answer(b"POST /metrics HTTP/1.1\r\n")[0].startswith("405")
    assert server.answer(b"GET /etc/passwd HTTP/1.1\r\n")[0].startswith("404")
    assert server.answer(b"\r\n")[0].startswith("405")
