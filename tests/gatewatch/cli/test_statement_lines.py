"""``gatewatch approvals`` and ``gatewatch show`` never re-flow a statement (outside attack,
round 18: ``approvals`` joined it onto one line, so a real line after a ``--`` comment was
shown as part of the comment, and the approver approved a setval unseen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatewatch.cli import operate
from gatewatch.cli.records import show
from store import open_store
from tests.recordings.replay.build import Recording, new_store
from tests.recordings.replay.test_statements import _held

FORGED = ("SELECT setval('orders_id_seq', 2001) -- bump past the import, ticket OPS-88\n"
          ", setval('orders_id_seq', 1)")


def test_approvals_show_each_line_of_the_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    pending = {"pending": [{
        "id": "adccac2b4", "requester": "alice", "connection": "shop",
        "rule": "review-sequence-resets", "expires_at": "2025-01-01T10:00:00Z",
        "approvals": [], "statement": FORGED}]}

    def call(config: Any, token: Any, op: str, **args: Any) -> Any:
        assert op == "approvals"
        return pending

    monkeypatch.setattr(operate, "_call", call)
    text = operate.approvals(None, "t", as_json=False)  # type: ignore[arg-type]
    lines = text.splitlines()
    assert lines[1] == ("    1│ SELECT setval('orders_id_seq', 2001) -- bump past the import, "
                        "ticket OPS-88")
    assert lines[2] == "    2│ , setval('orders_id_seq', 1)"


def test_show_lays_a_statement_of_several_lines_out_under_its_row(tmp_path: Path) -> None:
    rec = Recording(new_store(tmp_path), "f4f4", protocol="postgres")
    rec.approval("a1", 1.0, 3.0, "approved", FORGED, reason="ok")
    rec.store.apply([*_held("f4f4", 1, 3.0, FORGED, "approved", "a1", status="ok",
                            sqlstate=None, error=None, rows=1)])
    rec.close(5.0)
    rec.store.close()
    store = open_store(tmp_path / "gatewatch.db", readonly=True)
    try:
        session = store.find_session("f4f4")
        assert session is not None
        lines = show(store, session, as_json=False).splitlines()
    finally:
        store.close()
    row = next(i for i, line in enumerate(lines) if "SELECT setval" in line)
    assert "-- bump past the import, ticket OPS-88 ⏎ ," in lines[row]  # the cell, cut
    assert lines[row + 1].endswith("1│ SELECT setval('orders_id_seq', 2001) -- bump past the "
                                   "import, ticket OPS-88")
    assert lines[row + 2].endswith("2│ , setval('orders_id_seq', 1)")
