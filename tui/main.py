"""``gatewatch tui``: attach to a running engine as an operator."""

from __future__ import annotations

from pathlib import Path

from themes import DEFAULT
from tui.app import GatewatchApp
from tui.source import LiveSource


def run_tui(control: Path, token: str, theme: str | None = None) -> None:
    GatewatchApp(LiveSource(control, token), theme=theme or DEFAULT).run()


async def run_tui_async(control: Path, token: str, theme: str | None = None) -> None:
    await GatewatchApp(LiveSource(control, token), theme=theme or DEFAULT).run_async()
