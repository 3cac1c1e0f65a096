"""The metrics endpoint of a real engine: scraped with urllib and read with the Prometheus
client's own parser before and after real traffic (psycopg, psql)."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import errors

from engine.config import load_config
from tests.conftest import Gateway, Target, stop_gateway, write_policy
from tests.enginethread import run_engine
from tests.integration.guarded import example_rules, operator, wait_for_request

pytestmark = pytest.mark.integration


def start_with_engine_keys(target: Target, work: Path, keys: str, **settings: Any) -> Gateway:
    """A gateway whose policies file has ``keys`` (indented YAML lines) in its engine
    section."""
    path = write_policy(target, work, **settings)
    path.write_text(path.read_text().replace("engine:\n", "engine:\n" + keys, 1))
    engine, loop, thread = run_engine(load_config(path))
    return Gateway(engine, loop, thread, work, target)


@pytest.fixture
def metered(pg_target: Target, tmp_path: Path) -> Iterator[Gateway]:
    gw = start_with_engine_keys(pg_target, tmp_path, "  metrics: {listen: 127.0.0.1:0}\n",
                                rules=example_rules())
    try:
        yield gw
    finally:
        stop_gateway(gw)


def url(gw: Gateway, path: str = "/metrics") -> str:
    server = gw.engine.metrics_server
    assert server is not None
    return f"http://{server.host}:{server.port}{path}"


def scrape(gw: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, keyed by name and sorted labels."""
    with urllib.request.urlopen(url(gw), timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    """The sum of ``name`` over samples whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and set(labels.items()) <= set(ls))


def test_health_and_readiness(metered: Gateway) -> None:
    for path, body in (("/healthz", b"ok\n"), ("/readyz", b"ready\n")):
        with urllib.request.urlopen(url(metered, path), timeout=10) as answer:
            assert answer.status == 200 and answer.read() == body
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url(metered, "/nothing"), timeout=10)
    assert missing.value.code == 404


def test_counters_move_with_traffic_and_labels_carry_no_text_or_data(
        metered: Gateway) -> None:
    before = scrape(metered)
    # An allowed statement and a blocked one, on the same session.
    with psycopg.connect(metered.dsn(), autocommit=True) as conn:
        conn.execute("select 1")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("drop table if exists metrics_probe_secret_table")
    # A masked SELECT: emails are masked on shop_masked.
    with psycopg.connect(metered.dsn("shop_masked"), autocommit=True) as conn:
        rows = conn.execute("select email from customers order by id limit 3").fetchall()
        assert rows and all("@" not in r[0] or "*" in r[0] for r in rows)
    # A DELETE held for review and approved.
    held: dict[str, Any] = {}

    def run_held() -> None:
        with psycopg.connect(metered.dsn(), autocommit=True) as conn:
            conn.execute("create temp table t as select 1 as a")
            held["rows"] = conn.execute("delete from t").rowcount

    worker = threading.Thread(target=run_held)
    worker.start()
    request = wait_for_request(metered)
    with operator(metered) as client:
        client.call("approve", request=request["id"], reason="metrics test")
    worker.join(30)
    assert held["rows"] == 1
    # A failed login.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(metered.dsn(user="alice", password="wrong-token"))

    after = scrape(metered)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("gatewatch_sessions_opened_total", connection="shop", protocol="postgres",
                 identity_kind="person") == 2
    assert moved("gatewatch_sessions_opened_total", connection="shop_masked") == 1
    assert value(after, "gatewatch_sessions_live") == 0
    assert moved("gatewatch_statements_total", connection="shop", verdict="allow") >= 2
    assert moved("gatewatch_statements_total", connection="shop", verdict="block",
                 rule="no-drop") == 1
    assert moved("gatewatch_approvals_requested_total", connection="shop",
                 rule="review-unbounded-writes") == 1
    assert moved("gatewatch_approvals_total", outcome="approved") == 1
    assert moved("gatewatch_approval_decision_seconds_count", outcome="approved") == 1
    assert moved("gatewatch_masked_values_total", connection="shop_masked",
                 rule="personal-data") >= 3
    assert moved("gatewatch_login_failures_total", connection="shop",
                 reason="authentication failed") == 1
    assert moved("gatewatch_store_commit_seconds_count") > 0
    assert ("gatewatch_journal_backlog", ()) in after
    labels = {v for (_, ls) in after for _, v in ls}
    for text in ("metrics_probe_secret_table", "drop table", "customers", "select", "@"):
        assert not any(text in v.lower() for v in labels), text
    sessions = {s["id"] for s in metered.sessions()}
    assert not labels & sessions


def test_postgres_bytes_relayed_are_counted_live_and_after_the_session(
        metered: Gateway) -> None:
    def relayed(direction: str) -> float:
        return scrape(metered).get(("gatewatch_postgres_bytes_total",
                                    (("connection", "shop"), ("direction", direction))), 0.0)

    before_in, before_out = relayed("in"), relayed("out")
    with psycopg.connect(metered.dsn(), autocommit=True) as conn:
        conn.execute("select repeat('x', 100000)").fetchone()
        live_out = relayed("out")  # counted while the session is live
        assert live_out - before_out >= 100_000
    after_in, after_out = relayed("in"), relayed("out")  # and kept once it ended
    assert after_out >= live_out and after_in - before_in > len("select repeat('x', 100000)")
