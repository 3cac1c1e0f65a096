"""Deterministic data for snapshot tests: a fixed clock and a fixed engine state."""

from __future__ import annotations

from typing import Any

from tui.source import FixedSource

NOW = 1_795_000_000.0  # 2026-11-18T08:26:40Z


def iso(offset: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(NOW + offset, UTC).isoformat(timespec="microseconds")


def fixed_source() -> FixedSource:
    live = [
        {"id": "5f2eb99776c24e55", "identity": "alice", "connection": "shop",
         "client_addr": "10.1.2.3:51234", "application_name": "psql", "database": "shop",
         "started_at": iso(-754), "statements": 17, "waiting_for": "a1b2c3d4"},
        {"id": "77aa0c13e4b94d21", "identity": "report-bot", "connection": "shop",
         "client_addr": "10.1.9.9:40000", "application_name": "etl", "database": "shop",
         "started_at": iso(-3605), "statements": 18204, "waiting_for": None},
    ]
    recent: list[dict[str, Any]] = [
        {"id": "0849863e06c14fff", "identity": "bob", "connection": "billing",
         "client_addr": "10.1.2.8:50000", "application_name": "pgbench", "database": "billing",
         "started_at": iso(-7300), "ended_at": iso(-7000), "statements": 1576,
         "status": "closed", "end_reason": "client quit"},
        {"id": "effb1ef60d9242a9", "identity": "mallory", "connection": "shop",
         "client_addr": "10.6.6.6:666", "application_name": None, "database": "shop",
         "started_at": iso(-9000), "ended_at": iso(-9000), "statements": 0,
         "status": "rejected", "end_reason": "authentication failed"},
    ]
    pending = [
        {"id": "a1b2c3d4", "session_id": "5f2eb99776c24e55", "requester": "alice",
         "connection": "shop", "statement": "DELETE FROM orders\nWHERE status = 'new' OR true;",
         "rule": "review-unbounded-writes", "reason": "DELETE WITHOUT WHERE orders",
         "created_at": iso(-42), "expires_at": iso(258), "status": "pending", "approvals": []},
    ]
    statements = {"5f2eb99776c24e55": [
        {"seq": 1, "started_at": iso(-700), "duration_ms": 1.9, "rows": 200, "verdict": "allow",
         "rule": None, "status": "ok", "sqlstate": None, "text": "select count(*) from customers"},
        {"seq": 2, "started_at": iso(-600), "duration_ms": 0.0, "rows": None,
         "verdict": "block", "rule": "no-drop", "status": "blocked", "sqlstate": "42501",
         "text": "DROP TABLE orders"},
        {"seq": 3, "started_at": iso(-42), "duration_ms": None, "rows": None,
         "verdict": "review", "rule": "review-unbounded-writes", "status": "running",
         "sqlstate": None, "text": "DELETE FROM orders WHERE status = 'new' OR true"},
    ]}
    stats = {
        "by_connection": [("shop", 41), ("billing", 9)],
        "by_identity": [("alice", 20), ("report-bot", 18), ("bob", 11), ("mallory", 1)],
        "by_verdict": [("allow", 20531), ("block", 12), ("approved", 3), ("denied", 1)],
        "by_rule": [("no-drop", 7), ("review-unbounded-writes", 4), ("no-do-blocks", 5)],
        "blocks_per_hour": [("2026-11-18T08", 3), ("2026-11-18T07", 0), ("2026-11-18T06", 5),
                            ("2026-11-18T05", 1), ("2026-11-18T04", 0), ("2026-11-18T03", 2)],
        "reviews_per_hour": [("2026-11-18T08", 1), ("2026-11-18T06", 3), ("2026-11-18T02", 1)],
    }
    return FixedSource({"live": live, "recent": recent}, {"pending": pending, "recent": []},
                       statements, stats)
