"""The Grafana dashboard in deploy/ queries only metrics the engine exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import Metrics, StreamStats

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "gatewatch.json"


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    metrics = Metrics()
    metrics.stream = StreamStats()
    exported = {s.name for family in text_string_to_metric_families(
        metrics.exposition().decode()) for s in family.samples}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        # families with labels show no sample before their first use
        exported.add(family.name + ("_total" if family.type == "counter" else ""))
    exported |= {f"{name}_bucket" for name in ("gatewatch_approval_decision_seconds",
                                                "gatewatch_store_commit_seconds")}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs.append(dashboard["templating"]["list"][0]["query"]["query"])
    queried = {name for e in exprs for name in re.findall(r"\bgatewatch_[a-z_]+", e)}
    assert queried and queried <= exported, sorted(queried - exported)
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(titles) == len(set(titles))
