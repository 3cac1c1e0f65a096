"""``gatewatch tui``: attach to a running engine as an operator."""

from __future__ import annotations

import os
from pathlib import Path

from themes import DEFAULT, THEMES
from tui.app import GatewatchApp
from tui.source import LiveSource


def run_tui(control: Path, token: str, theme: str | None = None) -> None:
    """``theme``: the flag, else ``GATEWATCH_THEME``, else the dark default."""
    chosen = theme or os.environ.get("GATEWATCH_THEME") or DEFAULT
    if chosen not in {t.name for t in THEMES}:
        chosen = DEFAULT
    GatewatchApp(LiveSource(control, token), theme=chosen).run()

