"""The TUI never re-flows a statement (outside attack, round 18: joined onto one line, a real
line after a ``--`` comment read as part of the comment and the approver approved a setval
unseen): the approval's detail and a statement's shows it line by line, numbered, and a
table's cell marks each line break with ⏎."""

from __future__ import annotations

import re
from typing import Any

from textual.pilot import Pilot

from tests.tui.fixtures import NOW, fixed_source, iso
from tui.app import GatewatchApp
from tui.screens.session import SessionScreen
from tui.screens.statement import StatementDetail
from tui.source import FixedSource

FORGED = ("SELECT setval('orders_id_seq', 2001) -- bump past the import, ticket OPS-88\r"
          ", setval('orders_id_seq', 1)\n-- \x1b[2K")


def source() -> FixedSource:
    base = fixed_source()
    request: dict[str, Any] = {
        "id": "f0f0f0f0", "session_id": "5f2eb99776c24e55", "requester": "alice",
        "connection": "shop", "statement": FORGED, "rule": "review-sequence-resets",
        "reason": "setval", "created_at": iso(-60), "expires_at": iso(240),
        "status": "pending", "approvals": []}
    statements = {**base._statements, "5f2eb99776c24e55": [
        {"seq": 1, "started_at": iso(-42), "duration_ms": None, "rows": None,
         "verdict": "review", "rule": "review-sequence-resets", "status": "running",
         "sqlstate": None, "text": FORGED}]}
    return FixedSource(base._sessions, {"pending": [request], "recent": []}, statements,
                       base._stats)


async def settled(pilot: Pilot[None]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def screen_text(app: GatewatchApp) -> list[str]:
    return [line.text for line in app.screen._compositor.render_strips()]


def each_line_its_own(lines: list[str]) -> None:
    first = next(i for i, line in enumerate(lines) if "ticket OPS-88" in line)
    assert ", setval('orders_id_seq', 1)" not in lines[first]
    assert re.search(r"\b1\b.*SELECT setval\('orders_id_seq', 2001\)", lines[first])
    assert "\\x0d" in lines[first]  # a carriage return ends the comment: shown, and a break
    assert re.search(r"\b2\b.*, setval\('orders_id_seq', 1\)", lines[first + 1])
    assert "\x1b" not in "".join(lines) and "\\x1b[2K" in "\n".join(lines)


async def test_the_approval_shows_the_statement_line_by_line() -> None:
    app = GatewatchApp(source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        await pilot.press("2")
        await settled(pilot)
        each_line_its_own(screen_text(app))


async def test_a_session_s_statement_is_marked_in_its_row_and_whole_in_its_detail() -> None:
    app = GatewatchApp(source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(160, 36)) as pilot:
        await settled(pilot)
        await pilot.press("enter")  # alice's live session
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, SessionScreen)
        cell = screen._cells(screen.statements[0])[-1]  # (before the width cuts it)
        assert "OPS-88\\x0d ⏎ , setval('orders_id_seq', 1) ⏎ -- \\x1b[2K" in cell
        await pilot.press("enter")
        await settled(pilot)
        assert isinstance(app.screen, StatementDetail)
        each_line_its_own(screen_text(app))
