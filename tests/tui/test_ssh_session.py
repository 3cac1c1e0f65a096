"""An SSH session's view: the terminal through pyte, never the recorded bytes themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.tui.fixtures import NOW, ssh_source
from tui.app import GatewatchApp
from tui.screens.session import SessionScreen
from tui.widgets.terminal import TerminalView


async def test_the_terminal_shows_the_screen_and_swallows_hostile_sequences() -> None:
    app = GatewatchApp(ssh_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SessionScreen) and screen.ssh
        text = screen.query_one("#terminal", TerminalView).text()
        assert "deploy@web1:~$ ls" in text
        assert "app  notes.txt  .env" in text
        assert "[gatewatch] blocked by rule" in text
        # what the recording asked the terminal to do stayed inside the emulator
        assert "pwned-title" not in text and "cm0gLXJmIC8K" not in text
        assert "pwned" not in (app.title or "") + (app.sub_title or "")
        rendered = "".join(s.text for y in range(24)
                           for s in screen.query_one(TerminalView).render_line(y))
        assert "\x1b" not in rendered and "\x07" not in rendered
        assert screen.last_chunk == 6


def test_ssh_session_snapshot(snap_compare: Callable[..., bool]) -> None:
    async def settle(pilot: Any) -> None:
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    app = GatewatchApp(ssh_source(), clock=lambda: NOW, live=False)
    assert snap_compare(app, terminal_size=(100, 40), run_before=settle)
