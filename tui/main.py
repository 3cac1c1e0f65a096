"""``gatewatch tui``: attach to a running engine as an operator."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from themes import DEFAULT, THEMES
from tui.app import GatewatchApp
from tui.client import ControlConnection, EngineGone, Refused, refused_message
from tui.source import LiveSource


class TokenRefused(Exception):
    """The engine refused the operator's token: the message says why and what to do."""


async def _hello(control: Path, token: str) -> None:
    connection = ControlConnection(control, token)
    try:
        await connection.connect()
    finally:
        await connection.close()


def check_token(control: Path, token: str) -> None:
    """Before the screen is taken: a wrong token is said on the command line (exit 1), not
    retried behind a banner. An engine that is not up yet is left to the TUI, which waits."""
    try:
        asyncio.run(_hello(control, token))
    except Refused as exc:
        raise TokenRefused(refused_message(str(exc))) from exc
    except EngineGone:
        pass


def run_tui(control: Path, token: str, theme: str | None = None) -> int:
    """``theme``: the flag, else ``GATEWATCH_THEME``, else the dark default. Returns the exit
    status: 1 when the engine refuses the token (at start, or after it restarted)."""
    check_token(control, token)
    chosen = theme or os.environ.get("GATEWATCH_THEME") or DEFAULT
    if chosen not in {t.name for t in THEMES}:
        chosen = DEFAULT
    app = GatewatchApp(LiveSource(control, token), theme=chosen)
    app.run()
    return app.return_code or 0
