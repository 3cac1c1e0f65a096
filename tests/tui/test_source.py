"""The statistics the TUI reads from the store, run against a real store."""

from __future__ import annotations

import json
from pathlib import Path

from store import Op, open_store
from store import ops as O
from tests.store.sample import T0, session_open, statement_end, statement_start
from tui.source import STATS_QUERIES


def test_masking_statistics_by_rule_column_and_hour(tmp_path: Path) -> None:
    store = open_store(tmp_path / "g.db")
    try:
        pg = {"personal-data:email/email": 3, "national-ids:column/national_id": 2,
              "personal-data:email/recorded": 1}
        ssh = {"personal-data:payment_card": 4}
        store.apply([
            session_open("pg"),
            statement_start("pg", 1), statement_end("pg", 1, masked=json.dumps(
                {"personal-data:email/email": 3, "national-ids:column/national_id": 2})),
            statement_start("pg", 2), statement_end("pg", 2),
            Op(O.SESSION_CLOSE, "pg", 0, {"ended_at": O.utc(T0 + 60), "status": "closed",
                                          "end_reason": "client quit",
                                          "masked": json.dumps(pg)}),
            session_open("ssh", protocol="ssh", started_at=O.utc(T0 + 3600)),
            Op(O.SESSION_CLOSE, "ssh", 0, {"ended_at": O.utc(T0 + 3700), "status": "closed",
                                           "end_reason": "client quit",
                                           "masked": json.dumps(ssh)}),
            session_open("exempt", started_at=O.utc(T0 + 3600)),
            Op(O.SESSION_CLOSE, "exempt", 0, {"ended_at": O.utc(T0 + 3700),
                                              "status": "closed", "end_reason": "client quit",
                                              "masked": json.dumps({"auditors:exempt": 1})}),
        ])
        store.checkpoint()  # from the journal into the tables
        result = {name: [tuple(r) for r in store.conn.execute(sql)]
                  for name, sql in STATS_QUERIES.items()}
    finally:
        store.close()
    assert dict(result["masked"]) == {"personal-data:email": 4, "national-ids:column": 2,
                                      "personal-data:payment_card": 4, "auditors:exempt": 1}
    assert dict(result["masked_columns"]) == {"email": 3, "national_id": 2, "recorded": 1}
    hour = O.utc(T0)[:13]
    later = O.utc(T0 + 3600)[:13]
    assert result["masked_per_hour"] == [(later, 4), (hour, 5)]  # per statement, SSH per session
