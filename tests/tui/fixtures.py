"""Deterministic data for snapshot tests: a fixed clock and a fixed engine state."""

from __future__ import annotations

from typing import Any

from tui.source import FixedSource

NOW = 1_795_000_000.0  # 2026-11-18T11:06:40Z


def iso(offset: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(NOW + offset, UTC).isoformat(timespec="microseconds")


def fixed_source() -> FixedSource:
    live = [
        {"id": "5f2eb99776c24e55", "identity": "alice", "connection": "shop",
         "client_addr": "10.1.2.3:51234", "application_name": "psql", "database": "shop",
         "started_at": iso(-754), "statements": 17, "waiting_for": "a1b2c3d4"},
        {"id": "77aa0c13e4b94d21", "identity": "report-bot", "identity_kind": "agent",
         "identity_vendor": "example-ai", "connection": "shop",
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
        "by_identity": [("alice", 20), ("report-bot", 18), ("bob", 11)],
        "by_verdict": [("allow", 20531), ("block", 12), ("approved", 3), ("withdrawn", 2),
                       ("denied", 1)],
        "by_rule": [("no-drop", 7), ("review-unbounded-writes", 4), ("no-do-blocks", 5)],
        "blocks_per_hour": [("2026-11-18T11", 3), ("2026-11-18T10", 0), ("2026-11-18T09", 5),
                            ("2026-11-18T08", 1), ("2026-11-18T07", 0), ("2026-11-18T06", 2)],
        "reviews_per_hour": [("2026-11-18T11", 1), ("2026-11-18T09", 3), ("2026-11-18T05", 1)],
        "masked": [("personal-data:email", 312), ("personal-data:payment_card", 120),
                   ("national-ids:column", 200)],
        "masked_columns": [("email", 300), ("national_id", 200), ("card_number", 120),
                           ("recorded", 12)],
        "masked_per_hour": [("2026-11-18T11", 140), ("2026-11-18T10", 90),
                            ("2026-11-18T08", 310), ("2026-11-18T07", 92)],
    }
    decided = [
        {**pending[0], "id": "a9f00001", "requester": "bob", "statement": "UPDATE stock SET n = 0",
         "created_at": iso(-300), "status": "withdrawn", "decided_at": iso(-280),
         "decided_by": None, "decision_reason": "canceled by the client"},
        {**pending[0], "id": "a9f00002", "statement": "TRUNCATE audit_tmp",
         "created_at": iso(-900), "status": "approved", "decided_at": iso(-870),
         "decided_by": "oncall", "decision_reason": "cleanup ticket 4411"},
    ]
    return FixedSource({"live": live, "recent": recent}, {"pending": pending, "recent": decided},
                       statements, stats)


SSH_ID = "9c0ffee5ab12cd34"

# What a recorded shell printed: colours, a title, an OSC 52 clipboard write, device queries,
# a bell and an oversized sequence — none of which may reach the operator's terminal.
SSH_OUTPUT = [
    (1, 0.0, 1, "r", b"80x24"),
    (2, 0.1, 1, "o", b"\x1b]0;pwned-title\x07\x1b[1;32mdeploy@web1\x1b[0m:~$ "),
    (3, 1.0, 1, "o", b"ls\r\n\x1b[34mapp\x1b[0m  notes.txt  \x1b[31m.env\x1b[0m\r\n"),
    (4, 1.2, 1, "o", b"\x1b]52;c;cm0gLXJmIC8K\x07\x1b[6n\x1b[c\x07"
                     b"\x1b[" + b"9" * 5000 + b"m"),
    (5, 1.3, 1, "o", b"\x1b[1;32mdeploy@web1\x1b[0m:~$ rm -rf /etc\r\n"
                     b"[gatewatch] blocked by rule \"no-recursive-rm-of-system-paths\"\r\n"),
    (6, 2.0, 1, "o", b"\x1b[1;32mdeploy@web1\x1b[0m:~$ "),
]


def ssh_source() -> FixedSource:
    live = [
        {"id": SSH_ID, "protocol": "ssh", "identity": "alice", "connection": "web",
         "client_addr": "10.1.2.3:50022", "application_name": "SSH-2.0-OpenSSH_9.2p1",
         "database": None, "target": "deploy@10.0.0.5:22", "started_at": iso(-120),
         "statements": 2, "waiting_for": None},
    ]
    statements = {SSH_ID: [
        {"seq": 1, "started_at": iso(-119), "duration_ms": 0.0, "rows": None, "exit_status": None,
         "verdict": "allow", "rule": None, "status": "ok", "sqlstate": None, "text": "ls"},
        {"seq": 2, "started_at": iso(-118), "duration_ms": 0.0, "rows": None, "exit_status": None,
         "verdict": "block", "rule": "no-recursive-rm-of-system-paths", "status": "blocked",
         "sqlstate": None, "text": "rm -rf /etc"},
    ]}
    return FixedSource({"live": live, "recent": []}, {"pending": [], "recent": []}, statements,
                       {}, output={SSH_ID: list(SSH_OUTPUT)})
