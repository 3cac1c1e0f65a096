"""What the CLI and the TUI show of a client's text (``engine.shown.escaped``)."""

from __future__ import annotations

import pytest

from engine.shown import escaped as safe
from gatewatch.cli.shown import safe as cli_safe


@pytest.mark.parametrize("blank", [
    "\u00a0", "\u1680", "\u2000", "\u2003", "\u2007", "\u202f", "\u205f", "\u3000",  # blanks
    "\u2060", "\u00ad", "\u3164", "\u115f", "\u2800", "\u034f", "\u180e",  # drawn as nothing
])
def test_every_blank_but_the_space_and_every_invisible_character_is_shown_escaped(
        blank: str) -> None:
    """Round 18 F8: a no-break space in front of ``-- gatewatch: …`` in a quoted identifier
    drew a line the approver took for the gateway's note."""
    text = f'UPDATE t SET a = 1 RETURNING a AS "\n{blank}-- note"'
    for shown in (safe(text), cli_safe(text)):
        escaped = f"\\u{ord(blank):04x}" if ord(blank) > 0xff else f"\\x{ord(blank):02x}"
        assert blank not in shown and escaped in shown
    assert safe("SELECT 'Zo\u00eb'\n\t-- a comment") == "SELECT 'Zo\u00eb'\n\t-- a comment"
